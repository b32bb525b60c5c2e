"""The garbage list, server-wide settings, and what the orphan sweeps ask."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    delete,
    select,
)

from icevault.core.models import (
    UploadState,
)
from icevault.store.metadata import schema as t
from icevault.store.metadata.base import (
    GarbageItem,
    GarbageKind,
)
from icevault.store.metadata.sql.engine import SqlEngine


class MaintenanceRows(SqlEngine):
    # -- garbage --------------------------------------------------------------------------
    def enqueue_garbage(self, kind: GarbageKind, key: str) -> None:
        with self._tx(write=True) as conn:
            self._garbage(conn, kind, key)

    def take_garbage(self, limit: int) -> list[GarbageItem]:
        with self._tx() as conn:
            rows = conn.execute(select(t.garbage).order_by(t.garbage.c.seq).limit(limit))
            return [GarbageItem(r.seq, GarbageKind(r.kind), r.key) for r in rows]

    def drop_garbage(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        with self._tx(write=True) as conn:
            conn.execute(delete(t.garbage).where(t.garbage.c.seq.in_(list(seqs))))

    def blob_keys_in_use(self, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        wanted = list(keys)
        with self._tx() as conn:
            used = {
                r[0]
                for r in conn.execute(
                    select(t.archives.c.blob_key).where(t.archives.c.blob_key.in_(wanted))
                )
            }
            used |= {
                r[0]
                for r in conn.execute(
                    select(t.jobs.c.output_blob_key).where(t.jobs.c.output_blob_key.in_(wanted))
                )
            }
        return used

    def staging_keys_in_use(self, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        with self._tx() as conn:
            return {
                r[0]
                for r in conn.execute(
                    select(t.uploads.c.staging_key).where(
                        t.uploads.c.staging_key.in_(list(keys)),
                        t.uploads.c.state == UploadState.OPEN,
                    )
                )
            }
