"""The metadata contract for archive copies (--copy-url), on every metadata backend: what a
store is owed, claims with leases, verified and failed copies with their retries, repairs,
and copies dropped with their archive."""

from __future__ import annotations

from icevault.store.metadata.base import GarbageKind, MetadataStore
from icevault.store.metadata.copy_port import CopyState
from tests.contract.test_metadata_store import ACCOUNT, V, archive, archive_job, garbage_keys

STORE = "file:///mnt/second"
OTHER_STORE = "s3://offsite/copies"
LEASE = 60_000


def _setup(meta: MetadataStore) -> None:
    meta.create_account(ACCOUNT, 1)
    assert meta.create_vault(V, 1, 1000)


def test_every_stored_archive_is_owed_and_claimed_once(meta: MetadataStore) -> None:
    _setup(meta)
    items = [archive(f"k{i}", size=10 + i, at=1000 + i) for i in range(3)]
    for item in items:
        assert meta.insert_archive(item, b"\0" * 32)
    owed = meta.copy_backlog(STORE, 5000)
    assert (owed.archives, owed.bytes, owed.oldest_created_at) == (3, 33, 1000)
    first = meta.claim_owed_copies(STORE, 5000, LEASE, 2)
    assert [(a.id, failures) for a, failures in first] == [(items[0].id, 0), (items[1].id, 0)]
    rest = meta.claim_owed_copies(STORE, 5000, LEASE, 10)  # another server, at once
    assert [a.id for a, _ in rest] == [items[2].id]
    assert meta.claim_owed_copies(STORE, 5000, LEASE, 10) == []
    # Each store is owed its own copy.
    assert len(meta.claim_owed_copies(OTHER_STORE, 5000, LEASE, 10)) == 3
    # A claim whose server died is taken over once its lease ends.
    assert [a.id for a, _ in meta.claim_owed_copies(STORE, 5000 + LEASE, LEASE, 1)] == [
        items[0].id]


def test_verified_and_failed_copies(meta: MetadataStore) -> None:
    _setup(meta)
    good, bad = archive("k1"), archive("k2")
    for item in (good, bad):
        assert meta.insert_archive(item, b"\0" * 32)
    assert len(meta.claim_owed_copies(STORE, 5000, LEASE, 10)) == 2
    assert meta.finish_copy(good.id, STORE, 6000, "c0ffee", None, None)
    assert not meta.finish_copy(good.id, STORE, 6001, "late", None, None)  # not claimed
    assert meta.finish_copy(bad.id, STORE, 6000, None, "store down", 9000)
    [copy] = meta.archive_copies(good.id)
    assert (copy.store, copy.state, copy.blob_key, copy.attempts) == (
        STORE, CopyState.VERIFIED, "c0ffee", 1)
    [failed] = meta.archive_copies(bad.id)
    assert (failed.state, failed.error, failed.retry_at) == (CopyState.FAILED, "store down",
                                                             9000)
    assert meta.copy_backlog(STORE, 6000).archives == 1
    assert meta.claim_owed_copies(STORE, 8999, LEASE, 10) == []  # not before its retry
    assert [(a.id, n) for a, n in meta.claim_owed_copies(STORE, 9000, LEASE, 10)] == [
        (bad.id, 1)]
    assert meta.copy_keys_in_use(STORE, ["c0ffee", "dead"]) == {"c0ffee"}
    assert meta.copy_stores() == [STORE]
    # A verified copy found bad is made again; its object stays named until replaced.
    meta.mark_copy_failed(good.id, STORE, 7000, "scrubbed")
    assert meta.archive_copies(good.id)[0].state is CopyState.FAILED
    assert meta.copy_keys_in_use(STORE, ["c0ffee"]) == {"c0ffee"}
    [(seq, listed, copies)] = [row for row in meta.vault_copies(V, 0, 10)
                               if row[1].id == good.id]
    assert seq > 0 and listed.id == good.id and [c.store for c in copies] == [STORE]


def test_a_repair_replaces_the_hot_bytes_once(meta: MetadataStore) -> None:
    _setup(meta)
    item = archive("hot1")
    assert meta.insert_archive(item, b"\0" * 32)
    assert meta.mark_archive_corrupt(item.id, 5000, "block 0 differs")
    garbage_keys(meta)
    assert meta.replace_archive_blob(item.id, "hot1", "hot2", 6000)
    repaired = meta.get_archive(V, item.id)
    assert repaired is not None
    assert (repaired.blob_key, repaired.corrupt_at, repaired.corrupt_reason) == (
        "hot2", None, None)
    assert garbage_keys(meta) == [(GarbageKind.BLOB, "hot1")]
    # A second repair from the same bad key (another server, at the same time) changes
    # nothing.
    assert not meta.replace_archive_blob(item.id, "hot1", "hot3", 6001)
    assert meta.get_archive(V, item.id).blob_key == "hot2"  # type: ignore[union-attr]


def test_a_deleted_archives_copies_are_dropped(meta: MetadataStore) -> None:
    _setup(meta)
    item = archive("k9")
    assert meta.insert_archive(item, b"\0" * 32)
    meta.claim_owed_copies(STORE, 5000, LEASE, 10)
    assert meta.finish_copy(item.id, STORE, 6000, "beef", None, None)
    meta.delete_archive(V, item.id, 7000)
    [dropping] = meta.copies_to_drop(10)
    assert (dropping.archive_id, dropping.state, dropping.blob_key) == (
        item.id, CopyState.DROPPING, "beef")
    assert meta.copy_backlog(STORE, 8000).archives == 0  # a deleted archive owes nothing
    meta.drop_copies([(item.id, STORE)])
    assert meta.copies_to_drop(10) == [] and meta.archive_copies(item.id) == []
    # A copy finished after its archive was deleted is the copier's to delete.
    other = archive("k10")
    assert meta.insert_archive(other, b"\0" * 32)
    meta.claim_owed_copies(STORE, 9000, LEASE, 10)
    meta.delete_archive(V, other.id, 9500)
    assert not meta.finish_copy(other.id, STORE, 9600, "late", None, None)


def test_a_copy_made_before_the_acknowledgement_is_recorded_verified(
        meta: MetadataStore) -> None:
    _setup(meta)
    item = archive("k11")
    assert meta.insert_archive(item, b"\0" * 32)
    meta.record_verified_copy(item.id, STORE, "feed", 5000)
    [copy] = meta.archive_copies(item.id)
    assert (copy.state, copy.blob_key, copy.attempts) == (CopyState.VERIFIED, "feed", 1)
    assert meta.claim_owed_copies(STORE, 5000, LEASE, 10) == []
    assert meta.copy_backlog(STORE, 5000).archives == 0


def test_released_claims_are_claimable_at_once(meta: MetadataStore) -> None:
    _setup(meta)
    item = archive("k12")
    assert meta.insert_archive(item, b"\0" * 32)
    assert len(meta.claim_owed_copies(STORE, 5000, LEASE, 10)) == 1
    assert meta.claim_owed_copies(STORE, 5001, LEASE, 10) == []
    meta.release_copy_claims()  # the only server started again
    assert [a.id for a, _ in meta.claim_owed_copies(STORE, 5002, LEASE, 10)] == [item.id]


def test_hot_bytes_removed_and_brought_back(meta: MetadataStore) -> None:
    _setup(meta)
    item = archive("hotk")
    assert meta.insert_archive(item, b"\0" * 32)
    assert meta.evictable_archives([STORE], 9000, 10) == []  # no verified copy yet
    meta.claim_owed_copies(STORE, 5000, LEASE, 10)
    assert meta.finish_copy(item.id, STORE, 6000, "c1", None, None)
    assert meta.evictable_archives([STORE, OTHER_STORE], 9000, 10) == []  # not in every store
    assert meta.evictable_archives([STORE], 5999, 10) == []  # not verified long enough
    [evictable] = meta.evictable_archives([STORE], 6000, 10)
    assert evictable.id == item.id
    job = archive_job(item)
    assert meta.insert_job(job)
    assert meta.evictable_archives([STORE], 6000, 10) == []  # a job will read it
    garbage_keys(meta)
    assert meta.evict_hot(item.id, "hotk", 7000)
    assert not meta.evict_hot(item.id, "hotk", 7001)
    assert garbage_keys(meta) == [(GarbageKind.BLOB, "hotk")]
    evicted = meta.get_archive(V, item.id)
    assert evicted is not None and (evicted.blob_key, evicted.hot_evicted_at) == (None, 7000)
    assert meta.jobs_waiting_for_copies() == 1
    meta.defer_job(job.id, 70_000, "Waiting for a restore")
    deferred = meta.get_job(V, job.id)
    assert deferred is not None and deferred.status_message == "Waiting for a restore"
    assert meta.claim_due_jobs(69_999, 10, LEASE) == []
    meta.note_restore_requested(item.id, STORE, 8000)
    assert meta.archive_copies(item.id)[0].restore_requested_at == 8000
    meta.note_restored(item.id, STORE, 8000 + 2 * 86_400_000)
    [restored] = meta.archive_copies(item.id)
    assert (restored.restore_requested_at, restored.restored_until) == (
        8000, 8000 + 2 * 86_400_000)
    assert meta.rehydrate(item.id, "back1", 9000)
    assert not meta.rehydrate(item.id, "back2", 9001)  # it has bytes again
    back = meta.get_archive(V, item.id)
    assert back is not None and (back.blob_key, back.hot_evicted_at) == ("back1", None)
    assert meta.jobs_waiting_for_copies() == 0


def test_a_job_completes_from_a_restored_copy(meta: MetadataStore) -> None:
    from icevault.core.models import JobStatus
    from icevault.store.metadata.base import JobCompletion

    _setup(meta)
    item = archive("hot9")
    assert meta.insert_archive(item, b"\0" * 32)
    served, unserved = archive_job(item), archive_job(item)
    assert meta.insert_job(served) and meta.insert_job(unserved)
    assert meta.evict_hot(item.id, "hot9", 3000)
    done = meta.finish_job(served.id, JobCompletion(
        JobStatus.SUCCEEDED, "Succeeded", 4000, source_store=STORE, source_key="cold1"))
    assert done is not None and done.status is JobStatus.SUCCEEDED
    assert (done.source_store, done.source_key) == (STORE, "cold1")
    again = meta.get_job(V, served.id)
    assert again is not None and (again.source_store, again.source_key) == (STORE, "cold1")
    # Without a copy to serve it, a job of an archive with no hot bytes cannot succeed.
    failed = meta.finish_job(unserved.id, JobCompletion(JobStatus.SUCCEEDED, "Succeeded", 4000))
    assert failed is not None and failed.status is JobStatus.FAILED


def test_a_renewed_claim_holds_the_copy_until_the_new_end(meta: MetadataStore) -> None:
    _setup(meta)
    held, done = archive("k1", at=1000), archive("k2", at=1001)
    for item in (held, done):
        assert meta.insert_archive(item, b"\0" * 32)
    assert len(meta.claim_owed_copies(STORE, 5000, LEASE, 10)) == 2
    assert meta.finish_copy(done.id, STORE, 6000, "c0ffee", None, None)
    meta.renew_copy_claims(STORE, [held.id, done.id], 5000 + 3 * LEASE)
    meta.renew_copy_claims(OTHER_STORE, [held.id], 5000 + 9 * LEASE)  # held by no one
    assert meta.claim_owed_copies(STORE, 5000 + 3 * LEASE - 1, LEASE, 10) == []
    assert [a.id for a, _ in meta.claim_owed_copies(STORE, 5000 + 3 * LEASE, LEASE, 10)] == [
        held.id]
    [verified] = meta.archive_copies(done.id)
    assert (verified.state, verified.blob_key) == (CopyState.VERIFIED, "c0ffee")
    assert len(meta.claim_owed_copies(OTHER_STORE, 5000, LEASE, 10)) == 2
