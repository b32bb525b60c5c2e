"""Services on a temporary SQLite database and a local blob store, with a clock the test
moves: use cases tested without a server process, and without sleeping."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from icevault import stores
from icevault.core.models import Archive, VaultRef
from icevault.core.treehash import tree_hash
from icevault.service.archives import UploadRequest
from icevault.service.context import Context
from icevault.service.glacier import Glacier
from icevault.store.metadata.sql import SqlMetadataStore
from tests.support import ManualClock


@pytest.fixture()
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture()
def meta(tmp_path: Path) -> Iterator[SqlMetadataStore]:
    store = stores.open_metadata(tmp_path, None)
    yield store
    store.close()


def make_glacier(meta: SqlMetadataStore, tmp_path: Path, clock: ManualClock) -> Glacier:
    """One server's services; two built over the same stores stand for two servers."""
    return Glacier(Context(meta=meta, blobs=stores.open_blobs(tmp_path, None), clock=clock))


@pytest.fixture()
def glacier(meta: SqlMetadataStore, tmp_path: Path, clock: ManualClock) -> Glacier:
    return make_glacier(meta, tmp_path, clock)


def upload(glacier: Glacier, ref: VaultRef, data: bytes, description: str | None = None) -> Archive:
    """``data`` stored as an archive of ``ref``, as UploadArchive stores it."""
    upload = glacier.archives.begin_upload(UploadRequest(
        vault=ref, description=description, tree_hash=tree_hash(data), content_sha256=None,
        content_length=len(data)))
    upload.write(data)
    return upload.finish()
