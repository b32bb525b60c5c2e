"""A retrieval job's life through the services, with the clock moved by the test: it waits
its tier's delay, serves whole and ranged output with the right tree hashes, and is gone
once its output expires. No server, no sleep."""

from __future__ import annotations

from pathlib import Path

import pytest

from icevault import stores
from icevault.config import ServerSettings
from icevault.core.errors import InvalidParameterValueError, ResourceNotFoundError
from icevault.core.models import JobStatus, Tier, VaultRef
from icevault.core.ranges import ByteRange
from icevault.core.treehash import MIB, tree_hash
from icevault.service.context import Context, Timing
from icevault.service.glacier import Glacier
from icevault.service.jobs import JobRequest
from icevault.store.metadata.sql import SqlMetadataStore
from tests.service.conftest import upload
from tests.support import ManualClock, pattern

HOUR_MS = 3_600_000


@pytest.fixture()
def slow(meta: SqlMetadataStore, tmp_path: Path, clock: ManualClock) -> Glacier:
    """Services with Glacier's Bulk delay (5 h) and a 24 h output lifetime."""
    settings = ServerSettings(tier_delays_s={Tier.BULK: 5 * 3600.0}, job_expiry_s=24 * 3600.0)
    return Glacier(Context(meta=meta, blobs=stores.open_blobs(tmp_path, None), clock=clock,
                           timing=Timing.of(settings)))


def _upload(glacier: Glacier, ref: VaultRef, data: bytes) -> str:
    return upload(glacier, ref, data, description="kept").id


def test_a_bulk_retrieval_waits_serves_and_expires(slow: Glacier, clock: ManualClock) -> None:
    ref = slow.vaults.create(VaultRef(slow.identity.default_account(), "cold"))
    data = pattern(3 * MIB + 5, seed=3)
    archive_id = _upload(slow, ref, data)
    job = slow.jobs.initiate(ref, JobRequest(type="archive-retrieval", archive_id=archive_id,
                                             tier=Tier.BULK))
    clock.advance(5 * HOUR_MS - 1)
    assert slow.jobs.run_due() == []
    assert slow.jobs.describe(ref, job.id).status is JobStatus.IN_PROGRESS
    with pytest.raises(InvalidParameterValueError, match="not currently available"):
        slow.jobs.open_output(ref, job.id, None)

    clock.advance(1)
    assert [done.id for done in slow.jobs.run_due()] == [job.id]
    whole = slow.jobs.open_output(ref, job.id, None)
    try:
        assert (whole.partial, whole.start, whole.end, whole.total) == (
            False, 0, len(data) - 1, len(data))
        assert whole.checksum == tree_hash(data)
        assert whole.reader.read(len(data) + 1) == data
    finally:
        whole.reader.close()
    ranged = slow.jobs.open_output(ref, job.id, ByteRange.parse(f"bytes={MIB}-{2 * MIB - 1}"))
    try:
        assert (ranged.partial, ranged.start, ranged.end, ranged.total) == (
            True, MIB, 2 * MIB - 1, len(data))
        assert ranged.checksum == tree_hash(data[MIB:2 * MIB])  # aligned: a tree hash
        assert ranged.reader.read(MIB + 1) == data[MIB:2 * MIB]
    finally:
        ranged.reader.close()
    # An unaligned range has bytes but no tree hash (Glacier sends none either).
    odd = slow.jobs.open_output(ref, job.id, ByteRange.parse("bytes=10-20"))
    try:
        assert odd.checksum is None and odd.reader.read(100) == data[10:21]
    finally:
        odd.reader.close()

    clock.advance(24 * HOUR_MS + 1)
    with pytest.raises(ResourceNotFoundError):
        slow.jobs.describe(ref, job.id)
