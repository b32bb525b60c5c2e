"""The metadata contract for integrity marks, scrub positions, topics and declared upload
sizes, on every metadata backend."""

from __future__ import annotations

from icevault.core.ids import new_upload_id
from icevault.core.models import Upload, UploadState, VaultRef
from icevault.store.metadata.base import MetadataStore
from tests.contract.test_metadata_store import ACCOUNT, V, archive

OTHER = VaultRef(ACCOUNT, "other")


def _setup(meta: MetadataStore) -> None:
    meta.create_account(ACCOUNT, 1)
    assert meta.create_vault(V, 1, 1000)
    assert meta.create_vault(OTHER, 1, 1000)


def test_corrupt_marks_and_verification(meta: MetadataStore) -> None:
    _setup(meta)
    a, b = archive("b1"), archive("b2")
    c = archive("b3", vault=OTHER)
    for item in (a, b, c):
        assert meta.insert_archive(item, b"\0" * 32)
    assert meta.corrupt_archives() == []
    assert meta.mark_archive_corrupt(b.id, 5000, "block 0 differs")
    assert not meta.mark_archive_corrupt(b.id, 6000, "again")  # the first mark stays
    marked = meta.get_archive(V, b.id)
    assert marked is not None and (marked.corrupt_at, marked.corrupt_reason) == (5000, "block 0 differs")
    assert [x.id for x in meta.corrupt_archives()] == [b.id]
    meta.mark_archive_verified(a.id, 7000)
    assert meta.get_archive(V, a.id).corrupt_at is None  # type: ignore[union-attr]


def test_stored_archives_in_order_by_vault_and_with_deleted_bytes(meta: MetadataStore) -> None:
    _setup(meta)
    items = [archive(f"k{i}", vault=V if i % 2 else OTHER) for i in range(5)]
    for item in items:
        assert meta.insert_archive(item, b"\0" * 32)
    everything = meta.stored_archives(0, None, 100)
    assert [a.id for _, a in everything] == [a.id for a in items]
    seqs = [seq for seq, _ in everything]
    assert seqs == sorted(seqs)
    page = meta.stored_archives(seqs[1], None, 2)
    assert [a.id for _, a in page] == [items[2].id, items[3].id]
    assert [a.id for _, a in meta.stored_archives(0, V, 100)] == [items[1].id, items[3].id]
    # a deleted archive's bytes stay while a job serves them: still listed while stored
    meta.delete_archive(V, items[1].id, 9000)
    still = [a.id for _, a in meta.stored_archives(0, V, 100)]
    gone = meta.get_archive(V, items[1].id)
    assert (items[1].id in still) == (gone is not None and gone.blob_key is not None)


def test_settings_round_trip(meta: MetadataStore) -> None:
    assert meta.get_setting("scrub:all") is None
    meta.set_setting("scrub:all", "42")
    meta.set_setting("scrub:all", "43")
    assert meta.get_setting("scrub:all") == "43"
    meta.set_setting("scrub:all", None)
    assert meta.get_setting("scrub:all") is None


def test_topics(meta: MetadataStore) -> None:
    assert meta.get_topic_url(ACCOUNT, "t") is None
    meta.put_topic(ACCOUNT, "t", "http://a/", 1)
    meta.put_topic(ACCOUNT, "t", "http://b/", 2)  # replaced
    meta.put_topic(ACCOUNT, "a", "http://c/", 3)
    meta.put_topic("444455556666", "t", "http://d/", 4)
    assert meta.get_topic_url(ACCOUNT, "t") == "http://b/"
    assert meta.list_topics(ACCOUNT) == [("a", "http://c/"), ("t", "http://b/")]
    assert meta.delete_topic(ACCOUNT, "t")
    assert not meta.delete_topic(ACCOUNT, "t")
    assert meta.get_topic_url("444455556666", "t") == "http://d/"


def test_declared_upload_size_is_set_once(meta: MetadataStore) -> None:
    _setup(meta)
    upload = Upload(new_upload_id(), V, None, 1 << 20, 1, 1, "s1", UploadState.OPEN)
    assert meta.insert_upload(upload)
    assert meta.declare_upload_size("no-such-upload", 5) is None
    assert meta.declare_upload_size(upload.id, 3 << 20) == 3 << 20
    assert meta.declare_upload_size(upload.id, 4 << 20) == 3 << 20
    stored = meta.get_upload(V, upload.id)
    assert stored is not None and stored.declared_size == 3 << 20
