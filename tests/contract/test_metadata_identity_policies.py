"""The metadata contract for identity (accounts, keys, users, identity policies), vault
policies and locks, notifications, account settings and capacity, on every backend."""

from __future__ import annotations

from icevault.core.identity import AccessKey, KeyStatus
from icevault.core.ids import new_job_id, new_upload_id
from icevault.core.models import (
    CapacityUnit,
    Job,
    JobAction,
    JobStatus,
    LockState,
    NotificationConfig,
    Part,
    Tier,
    Upload,
    UploadState,
    VaultLock,
)
from icevault.store.metadata.base import NO_VAULT, MetadataStore
from icevault.store.metadata.sql import SqlMetadataStore
from tests.contract.test_metadata_store import ACCOUNT, V, archive

OTHER_ACCOUNT = "444455556666"


def _key(key_id: str, user: str | None = None, account: str = ACCOUNT) -> AccessKey:
    return AccessKey(key_id, "s" * 40, account, user, KeyStatus.ACTIVE, 1)


def test_accounts_and_access_keys(meta: MetadataStore) -> None:
    assert not meta.account_exists(ACCOUNT)
    assert meta.create_account(ACCOUNT, 1)
    assert not meta.create_account(ACCOUNT, 2)
    assert meta.account_exists(ACCOUNT)
    before = meta.count_access_keys()
    meta.insert_access_key(_key("AKIVROOT0000000000001"))
    assert meta.count_access_keys() == before + 1
    got = meta.get_access_key("AKIVROOT0000000000001")
    assert got is not None and got.status is KeyStatus.ACTIVE and got.user is None
    assert meta.get_access_key("AKIVNOPE") is None
    assert meta.set_access_key_status("AKIVROOT0000000000001", KeyStatus.INACTIVE)
    assert meta.get_access_key("AKIVROOT0000000000001").status is KeyStatus.INACTIVE  # type: ignore[union-attr]
    assert not meta.set_access_key_status("AKIVNOPE", KeyStatus.ACTIVE)
    assert [k.id for k in meta.list_access_keys(ACCOUNT)] == ["AKIVROOT0000000000001"]
    assert meta.delete_access_key("AKIVROOT0000000000001")
    assert not meta.delete_access_key("AKIVROOT0000000000001")
    assert meta.list_access_keys(ACCOUNT) == []


def test_users_and_identity_policies(meta: MetadataStore) -> None:
    meta.create_account(ACCOUNT, 1)
    assert meta.create_user(ACCOUNT, "alice", 1)
    assert not meta.create_user(ACCOUNT, "alice", 2)
    assert meta.user_exists(ACCOUNT, "alice")
    assert not meta.user_exists(OTHER_ACCOUNT, "alice")
    meta.create_user(ACCOUNT, "bob", 1)
    assert meta.list_users(ACCOUNT) == ["alice", "bob"]
    meta.put_user_policy(ACCOUNT, "alice", "read", '{"Statement": []}')
    meta.put_user_policy(ACCOUNT, "alice", "read", '{"Statement": [1]}')  # replaced
    meta.put_user_policy(ACCOUNT, "alice", "write", "{}")
    assert meta.user_policies(ACCOUNT, "alice") == [("read", '{"Statement": [1]}'), ("write", "{}")]
    assert meta.delete_user_policy(ACCOUNT, "alice", "write")
    assert not meta.delete_user_policy(ACCOUNT, "alice", "write")
    meta.insert_access_key(_key("AKIVALICE000000000001", "alice"))
    assert meta.delete_user(ACCOUNT, "alice")  # with its keys and policies
    assert not meta.delete_user(ACCOUNT, "alice")
    assert meta.get_access_key("AKIVALICE000000000001") is None
    assert meta.user_policies(ACCOUNT, "alice") == []
    assert meta.list_users(ACCOUNT) == ["bob"]


def test_access_policy_and_lock(meta: MetadataStore) -> None:
    meta.create_account(ACCOUNT, 1)
    assert meta.get_access_policy(V) is None
    assert not meta.set_access_policy(V, "{}", 1)  # no vault yet
    assert meta.create_vault(V, 1, 10)
    assert meta.set_access_policy(V, '{"a": 1}', 2)
    assert meta.get_access_policy(V) == '{"a": 1}'
    lock = VaultLock("lock-1", '{"b": 2}', LockState.IN_PROGRESS, 10, 10 + 86_400_000)
    assert meta.initiate_lock(V.__class__(ACCOUNT, "nope"), lock, 10) is NO_VAULT
    assert meta.initiate_lock(V, lock, 10) is None
    blocking = meta.initiate_lock(V, VaultLock("lock-2", "{}", LockState.IN_PROGRESS, 11, 99), 11)
    assert blocking is not None and blocking.lock_id == "lock-1"
    assert meta.get_lock(V, 12) == lock
    assert meta.get_vault_policies(V, 12) == ('{"a": 1}', lock)
    later = 10 + 86_400_000
    assert meta.get_lock(V, later) is None  # an unfinished lock lapses
    again = VaultLock("lock-3", "{}", LockState.IN_PROGRESS, later, later + 86_400_000)
    assert meta.initiate_lock(V, again, later) is None
    wrong = meta.complete_lock(V, "other", later + 1)
    assert wrong is not None and wrong.state is LockState.IN_PROGRESS
    done = meta.complete_lock(V, "lock-3", later + 2)
    assert done is not None and done.state is LockState.LOCKED and done.expires_at is None
    assert meta.abort_lock(V, later + 3) is not None  # a locked vault keeps its lock
    assert meta.get_lock(V, later + 4).state is LockState.LOCKED  # type: ignore[union-attr]
    assert meta.set_access_policy(V, None, later + 5)
    assert meta.get_access_policy(V) is None


def test_abort_in_progress_lock(meta: MetadataStore) -> None:
    meta.create_account(ACCOUNT, 1)
    meta.create_vault(V, 1, 10)
    lock = VaultLock("lock-1", "{}", LockState.IN_PROGRESS, 10, 10_000)
    assert meta.abort_lock(V, 5) is None  # nothing to abort
    meta.initiate_lock(V, lock, 10)
    assert meta.abort_lock(V, 11) is None
    assert meta.get_lock(V, 12) is None


def test_notifications_and_their_log(meta: MetadataStore) -> None:
    meta.create_account(ACCOUNT, 1)
    assert not meta.set_notifications(V, NotificationConfig("arn:t", ("E",)))
    meta.create_vault(V, 1, 10)
    assert meta.get_notifications(V) is None
    config = NotificationConfig("arn:aws:sns:us-east-1:111122223333:t", ("A", "B"))
    assert meta.set_notifications(V, config)
    assert meta.get_notifications(V) == config
    assert meta.set_notifications(V, None)
    assert meta.get_notifications(V) is None
    meta.record_notification(V, "job-1", "arn:t", "http://h/", '{"JobId": "job-1"}',
                             "delivered 204", 5)
    meta.record_notification(V, "job-1", "arn:t", None, "{}", "recorded", 6)
    log = meta.list_notifications(V)
    assert [(n["job_id"], n["target"], n["status"]) for n in log] == [
        ("job-1", "http://h/", "delivered 204"), ("job-1", None, "recorded")]


def test_account_settings_capacity_and_retrieval_bytes(meta: MetadataStore) -> None:
    meta.create_account(ACCOUNT, 1)
    assert meta.get_account_setting(ACCOUNT, "k") is None
    meta.set_account_setting(ACCOUNT, "k", "v1")
    meta.set_account_setting(ACCOUNT, "k", "v2")
    assert meta.get_account_setting(ACCOUNT, "k") == "v2"
    assert meta.get_account_setting(OTHER_ACCOUNT, "k") is None
    assert meta.purchase_capacity(ACCOUNT, CapacityUnit("c1", 100, 200), 100, 2)
    assert meta.purchase_capacity(ACCOUNT, CapacityUnit("c2", 110, 210), 110, 2)
    assert not meta.purchase_capacity(ACCOUNT, CapacityUnit("c3", 120, 220), 120, 2)
    assert meta.purchase_capacity(ACCOUNT, CapacityUnit("c4", 205, 300), 205, 2)  # c1 lapsed
    assert {u.id for u in meta.list_capacity(ACCOUNT)} >= {"c2", "c4"}
    meta.create_vault(V, 1, 10)
    a = archive()
    meta.insert_archive(a, b"\0" * 32)
    for at, (start, end) in ((1000, (0, 4)), (5000, (5, 9))):
        meta.insert_job(Job(
            id=new_job_id(), vault=V, action=JobAction.ARCHIVE_RETRIEVAL,
            status=JobStatus.IN_PROGRESS, created_at=at, ready_at=at, tier=Tier.STANDARD,
            archive_id=a.id, archive_size=a.size, archive_tree_hash=a.tree_hash,
            retrieval_start=start, retrieval_end=end, range_tree_hash=None))
    assert meta.retrieval_bytes_since(ACCOUNT, 0) == 10
    assert meta.retrieval_bytes_since(ACCOUNT, 2000) == 5
    assert meta.retrieval_bytes_since(OTHER_ACCOUNT, 0) == 0


def test_part_leaves_in_offset_order(meta: MetadataStore) -> None:
    meta.create_account(ACCOUNT, 1)
    meta.create_vault(V, 1, 10)
    upload = Upload(new_upload_id(), V, None, 1 << 20, 1, 1, "st", UploadState.OPEN)
    meta.insert_upload(upload)
    second = Part(1 << 20, (2 << 20) - 1, "b" * 64)
    first = Part(0, (1 << 20) - 1, "a" * 64)
    assert meta.put_part(upload.id, second, b"2" * 32, 5)
    assert meta.put_part(upload.id, first, b"1" * 32, 6)
    assert meta.part_leaves(upload.id) == [(first, b"1" * 32), (second, b"2" * 32)]
    assert meta.part_leaves("no-such-upload") == []


def test_the_installation_id_is_made_once_and_shared(meta: SqlMetadataStore) -> None:
    made = meta.installation_id()
    assert len(made) == 32 and int(made, 16) >= 0
    assert meta.installation_id() == made
    other = SqlMetadataStore(meta.url)  # another server on the same database
    try:
        assert other.installation_id() == made
    finally:
        other.close()
