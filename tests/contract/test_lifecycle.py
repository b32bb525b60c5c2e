"""Expiry, garbage collection and orphan sweeps, driven by an injected clock (no sleeping)."""

from __future__ import annotations

from pathlib import Path

import pytest

from icevault.core.errors import ResourceNotFoundError
from icevault.core.models import JobStatus, VaultRef
from icevault.core.treehash import tree_hash
from icevault.service.archives import UploadRequest
from icevault.service.context import HOUR_MS, Context
from icevault.service.glacier import Glacier
from icevault.service.jobs import JobRequest
from icevault.store.blobs.base import BlobStore
from icevault.store.metadata.base import MetadataStore
from tests.support import ManualClock


@pytest.fixture()
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture()
def glacier(meta: MetadataStore, blobs: BlobStore, clock: ManualClock) -> Glacier:
    return Glacier(Context(meta=meta, blobs=blobs, clock=clock))


V = VaultRef("111122223333", "v")


def upload(glacier: Glacier, data: bytes) -> str:
    request = UploadRequest(V, None, tree_hash(data), None, len(data))
    writer = glacier.archives.begin_upload(request)
    writer.write(data)
    return writer.finish().id


def blob_files(blobs: BlobStore) -> set[str]:
    return set(blobs.iter_keys())


def test_job_output_expires_and_bytes_are_reclaimed(glacier: Glacier, clock: ManualClock, blobs: BlobStore) -> None:
    glacier.vaults.create(V)
    archive_id = upload(glacier, b"retrieve me")
    job = glacier.jobs.initiate(V, JobRequest(type="archive-retrieval", archive_id=archive_id))
    assert len(glacier.jobs.run_due()) == 1
    glacier.archives.delete(V, archive_id)
    glacier.maintenance.collect_garbage()
    assert len(blob_files(blobs)) == 1  # the succeeded job still serves the bytes
    clock.advance(24 * HOUR_MS - 1)
    assert glacier.jobs.describe(V, job.id).status is JobStatus.SUCCEEDED
    output = glacier.jobs.open_output(V, job.id, None)
    assert output.reader.read(100) == b"retrieve me"
    output.reader.close()
    clock.advance(1)
    with pytest.raises(ResourceNotFoundError):
        glacier.jobs.describe(V, job.id)
    with pytest.raises(ResourceNotFoundError):
        glacier.jobs.open_output(V, job.id, None)
    assert glacier.maintenance.expire() == (1, 0)
    glacier.maintenance.collect_garbage()
    assert blob_files(blobs) == set()


def test_inventory_output_is_reclaimed_on_expiry(glacier: Glacier, clock: ManualClock, blobs: BlobStore) -> None:
    glacier.vaults.create(V)
    upload(glacier, b"a")
    glacier.jobs.initiate(V, JobRequest(type="inventory-retrieval"))
    glacier.jobs.run_due()
    assert len(blob_files(blobs)) == 2
    clock.advance(24 * HOUR_MS)
    glacier.maintenance.expire()
    glacier.maintenance.collect_garbage()
    assert len(blob_files(blobs)) == 1


def test_idle_uploads_are_reclaimed(glacier: Glacier, clock: ManualClock, blobs: BlobStore) -> None:
    glacier.vaults.create(V)
    stale = glacier.uploads.initiate(V, 1 << 20, None)
    clock.advance(23 * HOUR_MS)
    fresh = glacier.uploads.initiate(V, 1 << 20, None)
    clock.advance(HOUR_MS + 1)
    assert glacier.maintenance.expire() == (0, 1)
    glacier.maintenance.collect_garbage()
    assert set(blobs.iter_staging_keys()) == {fresh.blob_key}
    assert [u.id for u in glacier.uploads.list_uploads(V, None, 10).uploads] == [fresh.id]
    assert stale.blob_key not in set(blobs.iter_staging_keys())


def test_orphans_are_swept(glacier: Glacier, blobs: BlobStore, tmp_path: Path) -> None:
    glacier.vaults.create(V)
    kept = upload(glacier, b"kept")
    orphan = blobs.create()
    orphan.write(b"committed bytes whose metadata never landed")
    orphan.commit()
    half = blobs.create()
    half.write(b"an upload cut off mid-way")
    stray_staging = blobs.create_staging()
    report = glacier.maintenance.sweep_orphans()
    assert (report.temporary, report.blobs, report.staging) == (1, 1, 1)
    assert stray_staging not in set(blobs.iter_staging_keys())
    archive = glacier.ctx.meta.get_archive(V, kept)
    assert archive is not None and blob_files(blobs) == {archive.blob_key}
    assert blobs.sweep_temporary(0) == 0  # the cut-off upload's temporary file is gone
