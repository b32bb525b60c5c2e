"""Work that outlasts its lease (a copy paced behind requests, a large archive's check
before its job completes) stays with the server doing it: its claim is renewed while it
runs, so a second server sharing the database never takes it over and does it again.

The work here is slowed by a store whose every read waits four tenths of a second while
the test's clock moves half a lease: the renewals run on real time, the claims' deadlines
are told by the test's clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from icevault.config import ServerSettings
from icevault.core.errors import StorageUnavailableError
from icevault.core.models import JobStatus, Tier, VaultRef
from icevault.core.treehash import MIB
from icevault.service.context import Context, Timing
from icevault.service.glacier import Glacier
from icevault.service.jobs import JobRequest
from icevault.service.leases import LeaseKeeper
from icevault.store.blobs.base import BlobStore
from icevault.store.blobs.local import LocalBlobStore, _LocalReader
from icevault.store.metadata.copy_port import CopyState
from icevault.store.metadata.sql import SqlMetadataStore
from tests.service.conftest import upload
from tests.support import ManualClock, pattern

LEASE_MS = 300
COPY_STORE = "second"
DATA = pattern(4 * MIB + 1, seed=7)


class _SlowReader:
    def __init__(self, reader: _LocalReader, on_read: Callable[[], None]) -> None:
        self._reader, self._on_read = reader, on_read

    def __getattr__(self, name: str) -> object:
        return getattr(self._reader, name)

    def read(self, size: int) -> bytes:
        self._on_read()
        return self._reader.read(size)


class SlowStore(LocalBlobStore):
    """Every read of stored bytes waits while the clock moves: ``on_read`` is called first."""

    on_read: Callable[[], None] = staticmethod(lambda: None)

    def open_range(self, key: str, start: int, length: int) -> _LocalReader:
        return _SlowReader(super().open_range(key, start, length),  # type: ignore[return-value]
                           self.on_read)


def _server(meta: SqlMetadataStore, blobs: LocalBlobStore, clock: ManualClock,
            **copies: BlobStore) -> Glacier:
    timing = Timing.of(ServerSettings(job_lease_s=LEASE_MS / 1000,
                                      tier_delays_s=dict.fromkeys(Tier, 0.0)))
    return Glacier(Context(meta=meta, blobs=blobs, clock=clock, timing=timing, copies=copies))


def _stored(glacier: Glacier) -> tuple[VaultRef, str]:
    ref = glacier.vaults.create(VaultRef(glacier.identity.default_account(), "slow"))
    return ref, upload(glacier, ref, DATA).id


def _slowly(clock: ManualClock, took_over: Callable[[], list[object]],
            seen: list[object]) -> Callable[[], None]:
    """A read that takes four tenths of a second and half a lease on ``clock``; once the
    first claim's lease is over, what a second server could take over is recorded."""
    started = clock.now_ms()

    def on_read() -> None:
        clock.advance(LEASE_MS // 2)
        if clock.now_ms() - started > LEASE_MS:
            seen.extend(took_over())
        time.sleep(0.4)
    return on_read


def test_a_copy_that_outlasts_its_lease_is_not_taken_over(
        meta: SqlMetadataStore, tmp_path: Path, clock: ManualClock) -> None:
    hot = SlowStore(tmp_path / "hot")
    target = LocalBlobStore(tmp_path / "copy")
    glacier = _server(meta, hot, clock, **{COPY_STORE: target})
    _, archive_id = _stored(glacier)
    taken: list[object] = []
    hot.on_read = _slowly(clock, lambda: list(meta.claim_owed_copies(
        COPY_STORE, clock.now_ms(), LEASE_MS, 10)), taken)

    report = glacier.copies.copy_owed(COPY_STORE)

    assert clock.now_ms() - 1_700_000_000_000 > 2 * LEASE_MS  # it did outlast its lease
    assert (report.made, report.failed) == (1, 0)
    assert taken == []
    [copy] = meta.archive_copies(archive_id)
    assert (copy.state, copy.attempts, list(target.iter_keys())) == (
        CopyState.VERIFIED, 1, [copy.blob_key])


def test_a_job_whose_check_outlasts_its_lease_is_not_taken_over(
        meta: SqlMetadataStore, tmp_path: Path, clock: ManualClock) -> None:
    hot = SlowStore(tmp_path / "hot")
    glacier = _server(meta, hot, clock)
    ref, archive_id = _stored(glacier)
    job = glacier.jobs.initiate(ref, JobRequest(type="archive-retrieval",
                                                archive_id=archive_id, tier=Tier.EXPEDITED))
    taken: list[object] = []
    hot.on_read = _slowly(clock, lambda: list(meta.claim_due_jobs(
        clock.now_ms(), 10, LEASE_MS)), taken)

    [done] = glacier.jobs.run_due()

    assert clock.now_ms() - 1_700_000_000_000 > 2 * LEASE_MS
    assert (done.id, done.status) == (job.id, JobStatus.SUCCEEDED)
    assert taken == []


def test_renewals_go_on_after_the_database_refused_one(clock: ManualClock) -> None:
    asked: list[tuple[list[str], int]] = []

    def renew(ids: list[str], until: int) -> None:
        asked.append((ids, until))
        if len(asked) == 1:
            raise StorageUnavailableError("The metadata database does not answer")

    def until(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 5
        while not condition():
            assert time.monotonic() < deadline, asked
            time.sleep(0.01)

    with LeaseKeeper(renew, ["a", "b"], 30, clock) as kept:
        until(lambda: len(asked) >= 3)
        clock.advance(1000)
        kept.release("a")
        until(lambda: asked[-1][0] == ["b"])
    stopped = len(asked)
    time.sleep(0.05)
    assert asked[0] == (["a", "b"], clock.now - 1000 + 30)
    assert asked[-1] == (["b"], clock.now + 30)
    assert len(asked) == stopped  # none after the block ended
