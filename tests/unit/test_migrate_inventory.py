"""Inventories as Glacier writes them, read as streams; damaged ones refused with where."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from icevault.migrate.inventory import InventoryError, read_inventory
from icevault.migrate.state import MigrationState, Stage

HASH = "ab" * 32
CSV = (
    "ArchiveId,ArchiveDescription,CreationDate,Size,SHA256TreeHash\n"
    f'id-1,"report, ""final"".pdf",2014-01-02T03:04:05Z,10,{HASH}\n'
    f"id-2,,2015-06-07T08:09:10Z,1,{HASH.upper()}\n"
)


def _stream(text: str) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(text.encode()))


def test_csv_with_quotes_commas_and_empty_descriptions() -> None:
    entries = list(read_inventory(_stream(CSV)))
    assert [(e.archive_id, e.description, e.size, e.tree_hash) for e in entries] == [
        ("id-1", 'report, "final".pdf', 10, HASH), ("id-2", "", 1, HASH)]
    assert entries[0].created_ms == 1388631845000


def test_json_is_read_as_a_stream() -> None:
    archives = [{"ArchiveId": f"id-{n}", "ArchiveDescription": "d", "CreationDate":
                 "2016-01-01T00:00:00Z", "Size": n + 1, "SHA256TreeHash": HASH}
                for n in range(3)]
    text = json.dumps({"VaultARN": "arn", "InventoryDate": "2016-01-02T00:00:00Z",
                       "ArchiveList": archives})
    entries = read_inventory(_stream("  \n" + text))
    first = next(entries)  # yielded before the rest is parsed
    assert first.archive_id == "id-0"
    assert [e.size for e in entries] == [2, 3]


@pytest.mark.parametrize(("text", "message"), [
    ("ArchiveId,Size\nx,1\n", "header"),
    (CSV.replace(",10,", ",0,"), "line 2"),
    (CSV.replace(HASH.upper(), "nothex"), "line 3"),
    (CSV.replace("2014-01-02T03:04:05Z", "yesterday"), "line 2"),
    ('{"ArchiveList": [{"ArchiveId": "x"}]}', r"ArchiveList\[0\]"),
    ('{"ArchiveList": [{"ArchiveId": "x", "Size": 1', "malformed"),
])
def test_damaged_inventories_are_refused_with_where(text: str, message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        list(read_inventory(_stream(text)))


def test_state_loads_all_or_nothing_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    state = MigrationState(path)
    with pytest.raises(InventoryError):
        state.load_inventory(read_inventory(_stream(CSV + "id-3,,bad,1,x\n")))
    assert state.counts() == {} and not state.inventory_loaded
    assert state.load_inventory(read_inventory(_stream(CSV))) == 2
    state.job_requested("id-1", "job-1")
    state.upload_started("id-1", "upload-1")
    state.part_landed("id-1", 3)
    state.close()
    again = MigrationState(path)
    archive = again.get_archive("id-1")
    assert (archive.stage, archive.job_id, archive.upload_id, archive.parts_done) == (
        Stage.TRANSFERRING, "job-1", "upload-1", 3)
    assert again.inventory_loaded
    again.failed("id-2", "bad bytes", verification=True)
    assert again.retry_failed() == 1
    assert again.get_archive("id-2").stage is Stage.PLANNED
    assert again.counts()[Stage.PLANNED] == (1, 1)
    again.close()


def test_a_job_output_near_its_expiry_is_not_used() -> None:
    from datetime import UTC, datetime, timedelta

    from icevault.migrate.runner import output_fresh_enough

    completed = "2026-01-01T00:00:00.000Z"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    margin = timedelta(hours=1)
    assert output_fresh_enough(completed, start + timedelta(hours=22, minutes=59), margin)
    assert not output_fresh_enough(completed, start + timedelta(hours=23, minutes=1), margin)
    assert output_fresh_enough(None, start, margin)  # not completed yet
