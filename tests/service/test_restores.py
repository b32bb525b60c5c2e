"""A retrieval of an archive whose only copy is cold, through the services with a clock the
test moves: the job waits for the restore, says what for, asks again no sooner than a
minute later, joins a restore already running, and completes with exact bytes once the
copy is readable."""

from __future__ import annotations

from pathlib import Path

from icevault import stores
from icevault.core.models import JobStatus, Tier, VaultRef, iso8601
from icevault.core.treehash import MIB, tree_hash
from icevault.service.context import Context
from icevault.service.glacier import Glacier
from icevault.service.jobs import JobRequest
from icevault.store.blobs.base import RestoreState, RestoreStatus
from icevault.store.blobs.local import LocalBlobStore
from icevault.store.metadata.sql import SqlMetadataStore
from tests.service.conftest import upload
from tests.support import ManualClock, pattern

COLD = "s3://cold/test"


class ColdStore(LocalBlobStore):
    """A local store that behaves as an archive class: unreadable until restored, with the
    restore's progress set by the test."""

    readable_at_once = False
    restore_tiers = frozenset({"Standard", "Bulk"})  # as DEEP_ARCHIVE
    restore_days = 3

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.state = RestoreState.ARCHIVED
        self.until_ms: int | None = None  # a restored copy's expiry, as the store says it
        self.requests: list[tuple[str, int, str]] = []
        self.asked = 0

    def restore_state(self, key: str) -> RestoreStatus:
        self.asked += 1
        return RestoreStatus(self.state, self.until_ms)

    def request_restore(self, key: str, days: int, tier: str) -> RestoreStatus:
        self.requests.append((key, days, tier))
        self.state = RestoreState.RESTORING
        return RestoreStatus(self.state)


def test_a_job_waits_for_the_restore_then_serves_exact_bytes(
        meta: SqlMetadataStore, tmp_path: Path, clock: ManualClock) -> None:
    cold = ColdStore(tmp_path / "cold")
    glacier = Glacier(Context(meta=meta, blobs=stores.open_blobs(tmp_path, None), clock=clock,
                              copies={COLD: cold}))
    ref = glacier.vaults.create(VaultRef(glacier.identity.default_account(), "v"))
    data = pattern(3 * MIB + 1, seed=21)
    archive = upload(glacier, ref, data)
    assert glacier.copies.copy_owed(COLD).made == 1
    assert glacier.copies.evict_hot(0) == 1
    assert meta.get_archive(ref, archive.id).blob_key is None  # type: ignore[union-attr]

    job = glacier.jobs.initiate(ref, JobRequest(type="archive-retrieval",
                                                archive_id=archive.id, tier=Tier.EXPEDITED))
    assert glacier.jobs.run_due() == []  # waiting: asked for, not readable yet
    assert glacier.maintenance.jobs_waiting_for_copies() == 1
    [(_key, days, tier)] = cold.requests
    assert (days, tier) == (3, "Standard")  # the store's restore days; no Expedited here
    waiting = glacier.jobs.describe(ref, job.id)
    assert waiting.status is JobStatus.IN_PROGRESS
    assert waiting.status_message is not None
    assert f"Waiting for the archive's copy in {COLD} to be restored" in waiting.status_message
    assert "Expedited is not offered there: Standard" in waiting.status_message
    asked = cold.asked
    clock.advance(59_999)
    assert glacier.jobs.run_due() == [] and cold.asked == asked  # not before a minute
    clock.advance(1)
    assert glacier.jobs.run_due() == [] and cold.asked == asked + 1  # still restoring
    assert len(cold.requests) == 1  # the running restore is followed, not asked again
    cold.state = RestoreState.RESTORED
    clock.advance(60_000)
    [done] = glacier.jobs.run_due()
    assert done.status is JobStatus.SUCCEEDED
    assert glacier.maintenance.jobs_waiting_for_copies() == 0
    output = glacier.jobs.open_output(ref, job.id, None)
    try:
        assert output.checksum == tree_hash(data)
        assert output.reader.read(len(data) + 1) == data
    finally:
        output.reader.close()


def test_the_copies_listing_says_where_each_copy_and_its_restore_stand(
        meta: SqlMetadataStore, tmp_path: Path, clock: ManualClock) -> None:
    """owed, verified, restoring, restored until the store's expiry, and verified (archived)
    again once that has passed."""
    cold = ColdStore(tmp_path / "cold")
    glacier = Glacier(Context(meta=meta, blobs=stores.open_blobs(tmp_path, None), clock=clock,
                              copies={COLD: cold}))
    account = glacier.identity.default_account()
    ref = glacier.vaults.create(VaultRef(account, "v"))
    data = pattern(MIB + 3, seed=5)
    archive = upload(glacier, ref, data)

    def states() -> list[tuple[str, str]]:
        listed = glacier.admin.operations.list_copies(account, "v", archive.id, None)
        assert listed is not None
        [one] = listed["Archives"]
        return [(c["Store"], c["State"]) for c in one["Copies"]]

    assert states() == [(COLD, "owed")]
    assert glacier.copies.copy_owed(COLD).made == 1
    assert states() == [(COLD, "verified")]
    assert glacier.copies.evict_hot(0) == 1
    glacier.jobs.initiate(ref, JobRequest(type="archive-retrieval", archive_id=archive.id,
                                          tier=Tier.BULK))
    assert glacier.jobs.run_due() == []
    assert states() == [(COLD, "restoring")]
    cold.state, cold.until_ms = RestoreState.RESTORED, clock.now_ms() + 3 * 86_400_000
    clock.advance(60_000)
    assert len(glacier.jobs.run_due()) == 1
    assert states() == [(COLD, f"restored until {iso8601(cold.until_ms)}")]
    clock.advance(3 * 86_400_000)
    assert states() == [(COLD, "verified")]
