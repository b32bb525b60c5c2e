"""What to move: the source vault's inventory, and what the target holds already.

An inventory comes from a file the user has, or from an inventory-retrieval job on the
source (a recent succeeded one is reused; on AWS a new one takes hours, so the job is
recorded in the state and the command can exit and be rerun). Its output is downloaded with
the client's verified ranged downloader into a temporary file and parsed as a stream.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError as BotoClientError

from icevault.client.download import JOURNAL_SUFFIX, PART_SUFFIX, download_job_output
from icevault.client.exceptions import ClientError
from icevault.migrate.inventory import InventoryEntry, read_inventory
from icevault.migrate.state import MigrationState, Stage
from icevault.migrate.transfer import error_code

INVENTORY_JOB_KEY = "inventory_job"
OUTPUT_LIFETIME = timedelta(hours=24)


class InventoryNotReadyError(ClientError):
    """The source's inventory job has not finished; rerun later (the job is recorded)."""

    exit_code = 4


def _parse_date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _usable(job: dict[str, Any], now: datetime) -> bool:
    completed = job.get("CompletionDate")
    if job.get("StatusCode") != "Succeeded" or not completed:
        return job.get("StatusCode") == "InProgress"
    return _parse_date(completed) + OUTPUT_LIFETIME - timedelta(minutes=30) > now


def _find_inventory_job(source: Any, vault: str, account: str) -> str | None:
    """A succeeded (or running) inventory job whose output is still there, newest first."""
    now = datetime.now(UTC)
    best: tuple[str, str] | None = None
    for page in source.get_paginator("list_jobs").paginate(accountId=account, vaultName=vault):
        for job in page["JobList"]:
            if job.get("Action") == "InventoryRetrieval" and _usable(job, now):
                key = ((job.get("StatusCode") == "Succeeded" and "1") or "0") + job["CreationDate"]
                if best is None or key > best[0]:
                    best = (key, job["JobId"])
    return None if best is None else best[1]


def _job_status(source: Any, vault: str, account: str, job_id: str) -> dict[str, Any] | None:
    try:
        job: dict[str, Any] = source.describe_job(accountId=account, vaultName=vault,
                                                  jobId=job_id)
    except BotoClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return None
        raise
    return job


def inventory_job(source: Any, vault: str, account: str, state: MigrationState, *,
                  start: bool) -> str | None:
    """The inventory job to use: the recorded one while it is usable, else a recent one
    found on the source, else (with ``start``) a new one. None: none, and none started."""
    recorded = state.get(INVENTORY_JOB_KEY)
    if recorded is not None:
        job = _job_status(source, vault, account, recorded)
        if job is not None and _usable(job, datetime.now(UTC)):
            return recorded
    found = _find_inventory_job(source, vault, account)
    if found is None and start:
        found = str(source.initiate_job(accountId=account, vaultName=vault, jobParameters={
            "Type": "inventory-retrieval", "Format": "JSON"})["jobId"])
    if found is not None:
        state.put(INVENTORY_JOB_KEY, found)
    return found


def wait_for_inventory(source: Any, vault: str, account: str, job_id: str, *, wait: bool,
                       poll_cap_s: float, sleep: Callable[[float], None] = time.sleep,
                       on_poll: Callable[[dict[str, Any]], None] | None = None) -> None:
    delay = 0.5
    while True:
        job = _job_status(source, vault, account, job_id)
        if job is not None and on_poll is not None and wait:
            on_poll(job)
        if job is None:
            raise ClientError(f"the inventory job {job_id} is gone from the source; rerun")
        if job["StatusCode"] == "Succeeded":
            return
        if job["StatusCode"] == "Failed":
            raise ClientError(f"the inventory job {job_id} failed: {job.get('StatusMessage')}")
        if not wait:
            raise InventoryNotReadyError(
                f"the inventory job {job_id} on vault {vault} is still in progress (on AWS this "
                "takes hours); rerun the same command later"
            )
        sleep(delay)
        delay = min(poll_cap_s, delay * 1.5)


@contextlib.contextmanager
def job_inventory(source: Any, vault: str, account: str, job_id: str,
                  state: MigrationState) -> Iterator[Iterator[InventoryEntry]]:
    """The entries of a finished inventory job, downloaded (verified, ranged) into a file
    beside the state file and read as a stream; the file is removed afterwards. Beside the
    state, a run killed meanwhile leaves one file that the next run overwrites, not a
    directory per run in the temp dir."""
    with contextlib.ExitStack() as cleanup:
        if state.in_memory:  # a dry run keeps no file
            work = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="icevault-inventory-"))
            path = Path(work) / "inventory"
        else:
            path = Path(f"{state.path}.inventory")
            for leftover in (path, path.with_name(path.name + PART_SUFFIX),
                             path.with_name(path.name + JOURNAL_SUFFIX)):
                cleanup.callback(leftover.unlink, missing_ok=True)
        download_job_output(vault, job_id, path, account_id=account, client=source,
                            resume=False)
        with open(path, "rb") as stream:
            yield read_inventory(stream)


def load_source_inventory(source: Any, vault: str, account: str, state: MigrationState, *,
                          inventory_file: Path | None, wait: bool, start_job: bool,
                          poll_cap_s: float,
                          report: Callable[[str], Any] | None = None) -> int:
    """Fill the state with the source's archives (once); returns how many there are.
    ``report`` makes, for a job id, what is told of the wait (``on_poll`` and ``sleep``)."""
    if state.inventory_loaded:
        return sum(n for n, _ in state.counts().values())
    if inventory_file is not None:
        with open(inventory_file, "rb") as stream:
            return state.load_inventory(read_inventory(stream))
    job_id = inventory_job(source, vault, account, state, start=start_job)
    if job_id is None:
        raise InventoryNotReadyError(
            f"no inventory of {vault} is ready on the source; run without --no-wait to start "
            "one and wait for it, or pass --inventory FILE"
        )
    watcher = None if report is None else report(job_id)
    try:
        if watcher is None:
            wait_for_inventory(source, vault, account, job_id, wait=wait, poll_cap_s=poll_cap_s)
        else:
            wait_for_inventory(source, vault, account, job_id, wait=wait,
                               poll_cap_s=poll_cap_s, sleep=watcher.sleep,
                               on_poll=watcher.on_poll)
    finally:
        if watcher is not None:
            watcher.close()
    with job_inventory(source, vault, account, job_id, state) as entries:
        return state.load_inventory(entries)  # all or nothing: a bad inventory loads none


def skip_present(target: Any, vault: str, account: str, state: MigrationState, *,
                 poll_cap_s: float) -> tuple[int, int]:
    """Mark archives the target holds already (same ID and tree hash) as skipped, and those
    it holds with another tree hash as failed. Returns (skipped, conflicts)."""
    try:
        target.describe_vault(accountId=account, vaultName=vault)
    except BotoClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return 0, 0
        raise
    job_id = str(target.initiate_job(accountId=account, vaultName=vault, jobParameters={
        "Type": "inventory-retrieval", "Format": "JSON"})["jobId"])
    wait_for_inventory(target, vault, account, job_id, wait=True, poll_cap_s=poll_cap_s)
    skipped = conflicts = 0
    open_stages = (Stage.PLANNED, Stage.JOB, Stage.TRANSFERRING, Stage.FAILED)
    with job_inventory(target, vault, account, job_id, state) as entries:
        for entry in entries:
            try:
                archive = state.get_archive(entry.archive_id)
            except ValueError:
                continue  # on the target, not from this source
            if archive.stage not in open_stages:
                continue
            if entry.tree_hash == archive.tree_hash and entry.size == archive.size:
                if archive.upload_id is not None and archive.stage is Stage.TRANSFERRING:
                    # Completed by a run that was stopped before it could record it.
                    with contextlib.suppress(BotoClientError):
                        target.abort_multipart_upload(accountId=account, vaultName=vault,
                                                      uploadId=archive.upload_id)
                state.skipped(archive.source_id)
                skipped += 1
            else:
                state.failed(archive.source_id, f"the target holds {entry.archive_id} with tree "
                             f"hash {entry.tree_hash} and size {entry.size}", verification=True)
                conflicts += 1
    return skipped, conflicts
