"""``python -m bench soak``: well-behaved clients beside idle and slowloris connections.

A server on loopback serves ``--clients`` threads doing mixed Glacier operations (uploads,
multipart uploads, listings, jobs and their output) while ``--idle`` connections sit open
and ``--slowloris`` connections send their headers a byte a second; both reconnect whenever
the server drops them, as an attacker would. It reports request counts, p50 and p99
latency, and the server's memory and open files over time, and fails on any error seen by a
well-behaved client or on memory or descriptors that keep growing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from botocore.exceptions import BotoCoreError, ClientError

from bench.peers import Peer, launch_icevault
from bench.workdir import problems_found, run_in_work_dir
from icevault.core.treehash import MIB, tree_hash

# Allowed growth from the first tenth of the run (after warm-up) to the last.
RSS_GROWTH_LIMIT = 40 * 1024 * 1024
FD_GROWTH_LIMIT = 64


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)

    def fail(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)


def _client_loop(peer: Peer, worker: int, until: float, tally: Tally) -> None:
    rng = random.Random(worker)
    client = peer.client()
    vault = f"soak-{worker % 8}"
    mine: list[str] = []
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            choice = rng.random()
            if choice < 0.3 or not mine:
                body = rng.randbytes(rng.randint(1, 256 * 1024))
                done = client.upload_archive(vaultName=vault, body=body)
                if done["checksum"] != tree_hash(body):
                    tally.fail("UploadArchive returned the wrong checksum")
                mine.append(done["archiveId"])
            elif choice < 0.4:
                body = rng.randbytes(MIB + rng.randint(1, 1000))
                upload = client.initiate_multipart_upload(vaultName=vault, partSize=str(MIB))
                for start in (0, MIB):
                    piece = body[start:start + MIB]
                    client.upload_multipart_part(
                        vaultName=vault, uploadId=upload["uploadId"], body=piece,
                        range=f"bytes {start}-{start + len(piece) - 1}/*")
                client.complete_multipart_upload(vaultName=vault, uploadId=upload["uploadId"],
                                                 archiveSize=str(len(body)),
                                                 checksum=tree_hash(body))
            elif choice < 0.55:
                client.describe_vault(vaultName=vault)
            elif choice < 0.65:
                client.list_vaults()
            elif choice < 0.75:
                client.list_jobs(vaultName=vault)
            else:
                archive_id = rng.choice(mine)
                job = client.initiate_job(vaultName=vault, jobParameters={
                    "Type": "archive-retrieval", "ArchiveId": archive_id})
                deadline = time.monotonic() + 30
                while not client.describe_job(vaultName=vault, jobId=job["jobId"])["Completed"]:
                    if time.monotonic() > deadline:
                        tally.fail("a job did not complete in 30 s")
                        break
                    time.sleep(0.05)
                output = client.get_job_output(vaultName=vault, jobId=job["jobId"])
                data = output["body"].read()
                if tree_hash(data) != output["checksum"]:
                    tally.fail("GetJobOutput bytes do not match their checksum")
            tally.record(time.monotonic() - started)
        except (ClientError, BotoCoreError, OSError) as exc:
            tally.fail(f"{type(exc).__name__}: {exc}")


async def _hold(port: int, count: int, slow: bool, until: float, stats: dict[str, int]) -> None:
    """Keep ``count`` connections open; slow ones trickle a header a byte a second."""

    async def one(index: int) -> None:
        while time.monotonic() < until:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                stats["connect_failures"] += 1
                await asyncio.sleep(1)
                continue
            stats["opened"] += 1
            header = f"GET /-/vaults HTTP/1.1\r\nHost: x\r\nX-Slow-{index}: ".encode() + b"a" * 4000
            try:
                for byte in header if slow else b"":
                    if time.monotonic() >= until:
                        break
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(1.0)
                while time.monotonic() < until:  # idle, or out of header to send
                    data = await asyncio.wait_for(reader.read(1024), timeout=until - time.monotonic())
                    if not data:
                        break
            except (TimeoutError, OSError):
                pass
            finally:
                stats["closed"] += 1
                writer.close()

    await asyncio.gather(*(one(i) for i in range(count)))


def _attackers(port: int, idle: int, slowloris: int, until: float) -> dict[str, int]:
    stats = {"opened": 0, "closed": 0, "connect_failures": 0}

    async def main() -> None:
        await asyncio.gather(_hold(port, idle, False, until, stats),
                             _hold(port, slowloris, True, until, stats))

    asyncio.run(main())
    return stats


def run(seconds: float, clients: int, idle: int, slowloris: int, work: Path,
        idle_timeout: str) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    log = work / "server.log"
    peer = launch_icevault(work / "data", "sigv4", log=log,
                           extra=["--idle-timeout", idle_timeout])
    process = psutil.Process(peer.proc.pid)
    setup = peer.client()
    for index in range(8):
        setup.create_vault(vaultName=f"soak-{index}")
    until = time.monotonic() + seconds
    tally = Tally()
    attack: dict[str, int] = {}
    samples: list[tuple[float, int, int]] = []
    threads = [threading.Thread(target=_client_loop, args=(peer, i, until, tally), daemon=True)
               for i in range(clients)]
    attacker = threading.Thread(
        target=lambda: attack.update(_attackers(peer.port, idle, slowloris, until)), daemon=True)
    attacker.start()
    for thread in threads:
        thread.start()
    started = time.monotonic()
    while time.monotonic() < until:
        samples.append((time.monotonic() - started, process.memory_info().rss, process.num_fds()))
        time.sleep(1.0)
    for thread in threads:
        thread.join(timeout=60)
    attacker.join(timeout=30)
    alive = peer.proc.poll() is None
    peer.stop()
    problems = list(dict.fromkeys(tally.errors))[:20]
    if not alive:
        problems.append("the server died")
    if "Traceback" in log.read_text(errors="replace"):
        problems.append(f"the server logged a traceback (see {log})")
    tenth = max(1, len(samples) // 10)
    early = samples[tenth:2 * tenth] or samples[:1]
    late = samples[-tenth:]
    rss_start = int(statistics.median(s[1] for s in early))
    rss_end = int(statistics.median(s[1] for s in late))
    fds_start = int(statistics.median(s[2] for s in early))
    fds_end = int(statistics.median(s[2] for s in late))
    if rss_end - rss_start > RSS_GROWTH_LIMIT:
        problems.append(f"memory grew from {rss_start >> 20} to {rss_end >> 20} MiB")
    if fds_end - fds_start > FD_GROWTH_LIMIT:
        problems.append(f"open files grew from {fds_start} to {fds_end}")
    if not tally.latencies:
        problems.append("no request completed")
    latencies = sorted(tally.latencies) or [0.0]
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return {
        "seconds": seconds, "clients": clients, "idle": idle, "slowloris": slowloris,
        "requests": len(tally.latencies), "errors": len(tally.errors),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
        "rss_mib_start": rss_start >> 20, "rss_mib_end": rss_end >> 20,
        "open_files_start": fds_start, "open_files_end": fds_end,
        "open_files_peak": max(s[2] for s in samples) if samples else 0,
        "attack": attack, "problems": problems,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--slowloris", type=int, default=500)
    parser.add_argument("--idle-timeout", default="15s", help="the server's --idle-timeout")
    parser.add_argument("--work-dir", default=None)
    args = parser.parse_args(argv)
    report = run_in_work_dir(
        args.work_dir, "icevault-soak-",
        lambda work: run(args.seconds, args.clients, args.idle, args.slowloris, work,
                         args.idle_timeout),
        problems_found)
    print(json.dumps(report, indent=2))
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
