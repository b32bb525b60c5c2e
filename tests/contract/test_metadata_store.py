"""The metadata store contract, run on every metadata backend."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from icevault.core.ids import new_archive_id, new_job_id, new_upload_id
from icevault.core.models import (
    Archive,
    InventoryParams,
    Job,
    JobAction,
    JobStatus,
    Part,
    Tier,
    Upload,
    UploadState,
    VaultRef,
)
from icevault.store.metadata.base import (
    ArchiveFilter,
    DeleteArchiveOutcome,
    DeleteVaultOutcome,
    GarbageKind,
    JobCompletion,
    MetadataStore,
)

ACCOUNT = "111122223333"
V = VaultRef(ACCOUNT, "vault")


def archive(key: str = "b1", size: int = 10, at: int = 1000, vault: VaultRef = V) -> Archive:
    return Archive(new_archive_id(), vault, "d", size, "ab" * 32, at, key)


def archive_job(a: Archive, at: int = 2000) -> Job:
    return Job(
        id=new_job_id(), vault=a.vault, action=JobAction.ARCHIVE_RETRIEVAL,
        status=JobStatus.IN_PROGRESS, created_at=at, ready_at=at, tier=Tier.STANDARD,
        archive_id=a.id, archive_size=a.size, archive_tree_hash=a.tree_hash,
        retrieval_start=0, retrieval_end=a.size - 1, range_tree_hash=a.tree_hash,
    )


def garbage_keys(meta: MetadataStore) -> list[tuple[GarbageKind, str]]:
    return [(g.kind, g.key) for g in meta.take_garbage(100)]


def test_schema_is_migrated_and_reopens(meta: MetadataStore) -> None:
    from icevault.store.metadata import migrations
    from icevault.store.metadata.sql import SqlMetadataStore

    assert isinstance(meta, SqlMetadataStore)
    assert meta.schema_revision() == migrations.head()
    again = SqlMetadataStore(meta.url)
    assert again.schema_revision() == migrations.head()
    assert again.default_account() == meta.default_account()
    again.close()


def test_vault_lifecycle_and_counts(meta: MetadataStore) -> None:
    assert meta.create_vault(V, 5, max_vaults=10)
    assert meta.create_vault(V, 6, max_vaults=10)  # idempotent
    vault = meta.get_vault(V)
    assert vault is not None and vault.created_at == 5 and vault.archive_count == 0
    a = archive(size=7)
    assert meta.insert_archive(a, b"\x00" * 32)
    vault = meta.get_vault(V)
    assert vault is not None and (vault.archive_count, vault.size_bytes) == (1, 7)
    assert meta.delete_vault(V) is DeleteVaultOutcome.NOT_EMPTY
    assert meta.delete_archive(V, a.id, 9) is DeleteArchiveOutcome.DELETED
    assert meta.delete_archive(V, a.id, 9) is DeleteArchiveOutcome.ALREADY_DELETED
    assert meta.delete_archive(V, "nope", 9) is DeleteArchiveOutcome.NOT_FOUND
    vault = meta.get_vault(V)
    assert vault is not None and (vault.archive_count, vault.size_bytes) == (0, 0)
    assert (GarbageKind.BLOB, "b1") in garbage_keys(meta)
    assert meta.delete_vault(V) is DeleteVaultOutcome.DELETED
    assert meta.delete_vault(V) is DeleteVaultOutcome.NOT_FOUND
    assert meta.get_vault(V) is None


def test_vault_limit_and_listing(meta: MetadataStore) -> None:
    for name in ["b", "a", "c"]:
        assert meta.create_vault(VaultRef(ACCOUNT, name), 1, max_vaults=3)
    assert not meta.create_vault(VaultRef(ACCOUNT, "d"), 1, max_vaults=3)
    assert meta.create_vault(VaultRef("999988887777", "d"), 1, max_vaults=3)
    assert [v.ref.name for v in meta.list_vaults(ACCOUNT, None, 10)] == ["a", "b", "c"]
    assert [v.ref.name for v in meta.list_vaults(ACCOUNT, "b", 1)] == ["b"]


def test_vaults_sort_in_ascii_order(meta: MetadataStore) -> None:
    names = ["B", "a", "_x", "-y", ".z", "Z9", "a.b"]
    for name in names:
        meta.create_vault(VaultRef(ACCOUNT, name), 1, max_vaults=100)
    listed = [v.ref.name for v in meta.list_vaults(ACCOUNT, None, 100)]
    assert listed == sorted(names, key=lambda n: n.encode()) == ["-y", ".z", "B", "Z9", "_x", "a", "a.b"]
    assert [v.ref.name for v in meta.list_vaults(ACCOUNT, "_x", 2)] == ["_x", "a"]


def test_tags(meta: MetadataStore) -> None:
    assert meta.get_tags(V) is None
    meta.create_vault(V, 1, 10)
    assert meta.add_tags(V, {"a": "1", "b": "2"}, max_tags=2) is True
    assert meta.add_tags(V, {"c": "3"}, max_tags=2) is False
    assert meta.add_tags(V, {"a": "9"}, max_tags=2) is True
    assert meta.get_tags(V) == {"a": "9", "b": "2"}
    assert meta.remove_tags(V, ["a", "zz"])
    assert meta.get_tags(V) == {"b": "2"}


def test_deleted_archive_bytes_live_while_a_succeeded_job_reads_them(meta: MetadataStore) -> None:
    meta.create_vault(V, 1, 10)
    a = archive("kept")
    meta.insert_archive(a, b"\x00" * 32)
    job = archive_job(a)
    assert meta.insert_job(job)
    finished = meta.finish_job(job.id, JobCompletion(JobStatus.SUCCEEDED, "Succeeded", 3000))
    assert finished is not None and finished.status is JobStatus.SUCCEEDED
    meta.delete_archive(V, a.id, 4000)
    assert garbage_keys(meta) == []
    stored = meta.get_archive(V, a.id)
    assert stored is not None and stored.blob_key == "kept" and stored.deleted_at == 4000
    assert meta.expire_jobs(completed_before=3001) == 1
    assert garbage_keys(meta) == [(GarbageKind.BLOB, "kept")]
    assert meta.blob_keys_in_use(["kept"]) == set()


def test_job_on_deleted_archive_fails(meta: MetadataStore) -> None:
    meta.create_vault(V, 1, 10)
    a = archive("gone")
    meta.insert_archive(a, b"\x00" * 32)
    job = archive_job(a)
    meta.insert_job(job)
    meta.delete_archive(V, a.id, 2500)
    finished = meta.finish_job(job.id, JobCompletion(JobStatus.SUCCEEDED, "Succeeded", 3000))
    assert finished is not None and finished.status is JobStatus.FAILED
    assert meta.finish_job(job.id, JobCompletion(JobStatus.SUCCEEDED, "Succeeded", 3001)) is None


def test_jobs_listing_filters_and_due(meta: MetadataStore) -> None:
    meta.create_vault(V, 1, 10)
    a = archive()
    meta.insert_archive(a, b"\x00" * 32)
    jobs = [replace(archive_job(a, at=100 + i), ready_at=100 + i * 10) for i in range(3)]
    for job in jobs:
        meta.insert_job(job)
    assert meta.next_due_time() == 100
    assert [j.id for j in meta.claim_due_jobs(115, 10, 1000)] == [jobs[0].id, jobs[1].id]
    meta.finish_job(jobs[0].id, JobCompletion(JobStatus.SUCCEEDED, "Succeeded", 200))
    listed = meta.list_jobs(V, completed=None, status=None, start_seq=None, limit=10)
    assert [j.id for j in listed] == [j.id for j in jobs]
    done = meta.list_jobs(V, completed=True, status=None, start_seq=None, limit=10)
    assert [j.id for j in done] == [jobs[0].id]
    waiting = meta.list_jobs(V, completed=False, status=JobStatus.IN_PROGRESS, start_seq=None, limit=10)
    assert [j.id for j in waiting] == [jobs[1].id, jobs[2].id]
    later = meta.list_jobs(V, completed=None, status=None, start_seq=listed[1].seq, limit=1)
    assert [j.id for j in later] == [jobs[1].id]


def test_a_claimed_job_is_held_until_its_lease_ends(meta: MetadataStore) -> None:
    meta.create_vault(V, 1, 10)
    a = archive()
    meta.insert_archive(a, b"\x00" * 32)
    first, second = (replace(archive_job(a, at=100), ready_at=100) for _ in range(2))
    meta.insert_job(first)
    meta.insert_job(second)
    assert [j.id for j in meta.claim_due_jobs(200, 1, 1000)] == [first.id]
    # Another server claiming now gets the other job, then nothing while the leases run.
    assert [j.id for j in meta.claim_due_jobs(200, 10, 1000)] == [second.id]
    assert meta.claim_due_jobs(1199, 10, 1000) == []
    assert meta.next_due_time() == 1200
    # The first server released its job (it could not finish it now): due again at once.
    meta.release_jobs([second.id])
    assert meta.next_due_time() == 100
    assert [j.id for j in meta.claim_due_jobs(300, 10, 1000)] == [second.id]
    # The server holding the first job died: at the lease's end another takes it.
    assert [j.id for j in meta.claim_due_jobs(1200, 10, 1000)] == [first.id]
    done = JobCompletion(JobStatus.SUCCEEDED, "Succeeded", 1300)
    assert meta.finish_job(first.id, done) is not None
    # The server that died comes back and finishes it too: it is not finished twice.
    assert meta.finish_job(first.id, done) is None
    meta.release_jobs([first.id])  # a finished job stays finished
    assert [j.id for j in meta.claim_due_jobs(5000, 10, 1000)] == [second.id]
    # The only server restarts: everything it held is due again at once.
    assert meta.claim_due_jobs(5001, 10, 1000) == []
    assert [c.job.id for c in meta.claim_notifications(1300, 10, 1000)] == [first.id]
    meta.release_jobs(None)
    assert [j.id for j in meta.claim_due_jobs(5001, 10, 1000)] == [second.id]
    assert [c.job.id for c in meta.claim_notifications(1301, 10, 1000)] == [first.id]


def test_a_finished_job_notification_is_claimed_retried_and_settled(meta: MetadataStore) -> None:
    meta.create_vault(V, 1, 10)
    a = archive()
    meta.insert_archive(a, b"\x00" * 32)
    job = archive_job(a)
    meta.insert_job(job)
    assert meta.claim_notifications(10_000, 10, 500) == []  # not finished: nothing to send
    meta.finish_job(job.id, JobCompletion(JobStatus.SUCCEEDED, "Succeeded", 3000))
    claims = meta.claim_notifications(3000, 10, 500)
    assert [(c.job.id, c.attempt, c.job.status) for c in claims] == [
        (job.id, 1, JobStatus.SUCCEEDED)]
    assert meta.claim_notifications(3499, 10, 500) == []  # held by its sender
    meta.settle_notification(job.id, retry_at=4000)  # delivery failed: retry at 4000
    assert meta.claim_notifications(3999, 10, 500) == []
    assert [c.attempt for c in meta.claim_notifications(4000, 10, 500)] == [2]
    # The sender died: the claim ends with its lease and the next server tries again.
    assert [c.attempt for c in meta.claim_notifications(4500, 10, 500)] == [3]
    meta.record_notification(V, job.id, "arn:t", "http://h/", "{}", "delivered 204", 4500)
    meta.record_notification(V, job.id, "arn:t", "http://o/", "{}", "failed 500", 4500)
    meta.record_notification(V, job.id, "arn:u", None, "{}", "recorded", 4500)
    assert meta.delivered_notifications(job.id) == {("arn:t", "http://h/")}
    meta.settle_notification(job.id, retry_at=None)
    assert meta.claim_notifications(10**12, 10, 500) == []


def test_inventory_completion_sets_last_inventory(meta: MetadataStore) -> None:
    meta.create_vault(V, 1, 10)
    job = Job(id=new_job_id(), vault=V, action=JobAction.INVENTORY_RETRIEVAL,
              status=JobStatus.IN_PROGRESS, created_at=1, ready_at=1, inventory=InventoryParams())
    meta.insert_job(job)
    meta.finish_job(job.id, JobCompletion(JobStatus.SUCCEEDED, "Succeeded", 77, "inv", 12, None))
    vault = meta.get_vault(V)
    assert vault is not None and vault.last_inventory_at == 77
    stored = meta.get_job(V, job.id)
    assert stored is not None and (stored.output_blob_key, stored.output_size) == ("inv", 12)
    assert meta.blob_keys_in_use(["inv", "other"]) == {"inv"}
    meta.expire_jobs(100)
    assert garbage_keys(meta) == [(GarbageKind.BLOB, "inv")]


def test_multipart_lifecycle(meta: MetadataStore) -> None:
    meta.create_vault(V, 1, 10)
    upload = Upload(new_upload_id(), V, None, 1 << 20, 10, 10, "stage1", UploadState.OPEN)
    assert meta.insert_upload(upload)
    assert meta.put_part(upload.id, Part(0, 9, "aa" * 32), b"\x01" * 32, 11)
    assert meta.put_part(upload.id, Part(0, 4, "bb" * 32), b"\x02" * 32, 12)  # replaces
    assert [p.end for p in meta.list_parts(upload.id, 0, 10)] == [4]
    assert meta.staging_keys_in_use(["stage1", "x"]) == {"stage1"}
    a = archive("final", size=5)
    stored = meta.complete_upload(upload, a, b"\x02" * 32)
    assert stored == a
    assert meta.complete_upload(upload, archive("other"), b"") == a  # repeat: same archive
    assert not meta.put_part(upload.id, Part(0, 4, "bb" * 32), b"\x02" * 32, 13)
    assert meta.list_uploads(V, None, 10) == []
    assert (GarbageKind.STAGING, "stage1") in garbage_keys(meta)
    completed = meta.abort_upload(V, upload.id, 20)
    assert completed is not None and completed.state is UploadState.COMPLETED


def test_idle_uploads_expire(meta: MetadataStore) -> None:
    meta.create_vault(V, 1, 10)
    old = Upload(new_upload_id(), V, None, 1 << 20, 10, 10, "s-old", UploadState.OPEN)
    new = Upload(new_upload_id(), V, None, 1 << 20, 500, 500, "s-new", UploadState.OPEN)
    meta.insert_upload(old)
    meta.insert_upload(new)
    assert meta.expire_uploads(idle_before=100, finished_before=0) == 1
    assert [u.id for u in meta.list_uploads(V, None, 10)] == [new.id]
    assert (GarbageKind.STAGING, "s-old") in garbage_keys(meta)
    aborted = meta.get_upload(V, old.id)
    assert aborted is not None and aborted.state is UploadState.ABORTED
    meta.expire_uploads(idle_before=0, finished_before=10_000)
    assert meta.get_upload(V, old.id) is None


def test_garbage_queue(meta: MetadataStore) -> None:
    meta.enqueue_garbage(GarbageKind.BLOB, "k1")
    meta.enqueue_garbage(GarbageKind.STAGING, "k2")
    items = meta.take_garbage(10)
    assert [(g.kind, g.key) for g in items] == [(GarbageKind.BLOB, "k1"), (GarbageKind.STAGING, "k2")]
    meta.drop_garbage([items[0].seq])
    assert [g.key for g in meta.take_garbage(10)] == ["k2"]


def test_listing_archives_for_inventory(meta: MetadataStore) -> None:
    meta.create_vault(V, 1, 10)
    made = [archive(f"k{i}", at=100 * i) for i in range(5)]
    for a in made:
        meta.insert_archive(a, b"\x00" * 32)
    meta.delete_archive(V, made[2].id, 999)
    rows = meta.list_archives(V, 0, None, None, 10)
    assert [a.id for _, a in rows] == [made[i].id for i in (0, 1, 3, 4)]
    window = meta.list_archives(V, 0, 100, 400, 10)
    assert [a.id for _, a in window] == [made[1].id, made[3].id]
    after = meta.list_archives(V, rows[1][0], None, None, 1)
    assert [a.id for _, a in after] == [made[3].id]


def test_archive_leaves_whole_and_in_ranges(meta: MetadataStore) -> None:
    assert meta.create_vault(V, 1, max_vaults=10)
    leaves = bytes(range(256)) * 10  # 80 leaves of 32 bytes, every byte value present
    a = archive(size=80 * 1024 * 1024)
    assert meta.insert_archive(a, leaves)
    assert meta.get_archive_leaves(a.id) == leaves
    assert meta.get_archive_leaves(a.id, 0, 1) == leaves[:32]
    assert meta.get_archive_leaves(a.id, 8, 16) == leaves[8 * 32:24 * 32]
    assert meta.get_archive_leaves(a.id, 79, 1) == leaves[-32:]
    assert meta.get_archive_leaves(a.id, 64) == leaves[64 * 32:]
    assert meta.get_archive_leaves("no-such-archive", 0, 1) is None
    assert meta.get_archive_leaves("no-such-archive") is None


def test_insert_archives_in_one_transaction(meta: MetadataStore) -> None:
    other = VaultRef(ACCOUNT, "other")
    meta.create_vault(V, 1, 10)
    meta.create_vault(other, 1, 10)
    batch = [(archive(f"k{i}", size=i + 1, vault=V if i % 2 else other), bytes([i]) * 32)
             for i in range(6)]
    assert meta.insert_archives(batch)
    for ref, wanted in ((V, [1, 3, 5]), (other, [0, 2, 4])):
        vault = meta.get_vault(ref)
        assert vault is not None
        assert (vault.archive_count, vault.size_bytes) == (3, sum(i + 1 for i in wanted))
    first = batch[3][0]
    assert meta.get_archive(V, first.id) == first
    assert meta.get_archive_leaves(first.id) == bytes([3]) * 32
    # A vault that is gone: nothing of the batch is recorded.
    late = [(archive("z1", vault=V), b"\x00" * 32),
            (archive("z2", vault=VaultRef(ACCOUNT, "gone")), b"\x00" * 32)]
    assert not meta.insert_archives(late)
    assert meta.get_archive(V, late[0][0].id) is None
    assert meta.insert_archives([])


def test_delete_vault_with_contents(meta: MetadataStore) -> None:
    meta.create_vault(V, 1, 10)
    a = archive("blob-a", size=3)
    meta.insert_archive(a, b"\x00" * 32)
    upload = Upload(new_upload_id(), V, None, 1 << 20, 10, 10, "stage-a", UploadState.OPEN)
    meta.insert_upload(upload)
    job = archive_job(a)
    meta.insert_job(job)
    assert meta.delete_vault(V) is DeleteVaultOutcome.NOT_EMPTY
    assert meta.delete_vault(V, with_contents=True) is DeleteVaultOutcome.DELETED
    assert meta.get_vault(V) is None
    assert meta.get_archive(V, a.id) is None
    assert meta.get_upload(V, upload.id) is None
    assert meta.get_job(V, job.id) is None
    assert {(GarbageKind.BLOB, "blob-a"), (GarbageKind.STAGING, "stage-a")} <= set(
        garbage_keys(meta))


def test_archives_filtered_by_description_and_size(meta: MetadataStore) -> None:
    meta.create_vault(V, 1, 10)
    described = ["Photos 2019", "photos 2020", "100%_done", "100 percent", None, "taxes"]
    made = []
    for n, text in enumerate(described):
        a = replace(archive(f"k{n}", size=10 * (n + 1), at=1000 + n), description=text)
        meta.insert_archive(a, b"\x00" * 32)
        made.append(a)

    def ids(**filters: Any) -> list[str]:
        rows = meta.list_archives(V, 0, None, None, 100, ArchiveFilter(**filters))
        return [a.id for _, a in rows]

    assert ids(description="PHOTOS") == [made[0].id, made[1].id]
    # LIKE's wildcards are plain characters in a filter.
    assert ids(description="%_") == [made[2].id]
    assert ids(description="100") == [made[2].id, made[3].id]
    assert ids(min_size=30, max_size=50) == [made[2].id, made[3].id, made[4].id]
    assert ids(description="o", min_size=20) == [made[1].id, made[2].id]
    assert ids() == [a.id for a in made]


def test_storage_history_by_day(meta: MetadataStore) -> None:
    day = 24 * 3600 * 1000
    meta.create_vault(V, 1, 10)
    other = VaultRef("999999999999", "v")
    meta.create_vault(other, 1, 10)
    first = archive("a", size=100, at=day + 5)
    second = archive("b", size=40, at=day + 6)
    third = archive("c", size=7, at=3 * day + 1)
    for a in (first, second, third):
        meta.insert_archive(a, b"\x00" * 32)
    meta.insert_archive(archive("x", size=999, at=day, vault=other), b"\x00" * 32)
    meta.delete_archive(V, second.id, 3 * day + 2)
    meta.delete_archive(V, first.id, 4 * day)
    assert meta.storage_history(V.account_id) == [
        (day, 140), (3 * day, 7 - 40), (4 * day, -100)]
    assert meta.storage_history("000000000000") == []


def test_a_renewed_lease_holds_the_job_until_the_new_end(meta: MetadataStore) -> None:
    meta.create_vault(V, 1, 10)
    a = archive()
    meta.insert_archive(a, b"\x00" * 32)
    held, finished, deferred = (replace(archive_job(a, at=100), ready_at=100) for _ in range(3))
    for job in (held, finished, deferred):
        meta.insert_job(job)
    assert len(meta.claim_due_jobs(200, 10, 1000)) == 3
    meta.finish_job(finished.id, JobCompletion(JobStatus.SUCCEEDED, "Succeeded", 300))
    meta.defer_job(deferred.id, 2000, "waiting")
    # Its server is still at work on it: held until 2500 now, not 1200.
    meta.renew_job_leases([held.id, finished.id, deferred.id], 2500)
    # A job waiting for its time is not leased again, nor a finished one.
    assert [j.id for j in meta.claim_due_jobs(2000, 10, 1000)] == [deferred.id]
    assert meta.claim_due_jobs(2499, 10, 1000) == []
    assert [j.id for j in meta.claim_due_jobs(2500, 10, 1000)] == [held.id]
    assert meta.get_job(V, finished.id).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]
