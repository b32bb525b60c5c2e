"""A store marked by another installation (another metadata database) is neither written
nor swept: each installation sweeps what its own records do not name."""

from __future__ import annotations

from pathlib import Path

import pytest

from icevault import stores
from icevault.core.models import VaultRef
from icevault.service.context import Context
from icevault.service.glacier import Glacier
from icevault.service.ownership import StoreOwnedElsewhereError
from icevault.store.blobs.local import LocalBlobStore
from icevault.store.metadata.sql import SqlMetadataStore
from tests.service.conftest import upload
from tests.support import ManualClock

SHARED = "file:///shared"


def test_another_installations_store_is_neither_written_nor_swept(
        meta: SqlMetadataStore, tmp_path: Path, clock: ManualClock) -> None:
    shared = LocalBlobStore(tmp_path / "shared")
    shared.write_owner("f" * 32)  # the other installation's mark, and one of its objects
    writer = shared.create()
    writer.write(b"theirs")
    theirs = writer.commit()
    glacier = Glacier(Context(meta=meta, blobs=stores.open_blobs(tmp_path, None), clock=clock,
                              copies={SHARED: shared}))
    with pytest.raises(StoreOwnedElsewhereError, match="another icevault installation"):
        glacier.maintenance.start_up(0.0)
    assert glacier.maintenance.sweep_orphans(0.0).copies == 0
    ref = glacier.vaults.create(VaultRef(glacier.identity.default_account(), "v"))
    archive = upload(glacier, ref, b"ours")
    report = glacier.copies.copy_owed(SHARED)
    assert (report.made, report.failed) == (0, 1)
    assert list(shared.iter_keys()) == [theirs]
    [copy] = glacier.copies.copies_of(ref, archive.id)[1]
    assert copy.error is not None and "another icevault installation" in copy.error


def test_an_unmarked_store_is_marked_with_this_installation(
        meta: SqlMetadataStore, tmp_path: Path, clock: ManualClock) -> None:
    shared = LocalBlobStore(tmp_path / "shared")
    glacier = Glacier(Context(meta=meta, blobs=stores.open_blobs(tmp_path, None), clock=clock,
                              copies={SHARED: shared}))
    glacier.maintenance.start_up(0.0)
    assert shared.read_owner() == meta.installation_id()
    assert glacier.ctx.blobs.read_owner() == meta.installation_id()
