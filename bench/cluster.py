"""``python -m bench cluster``: icevault behind HAProxy with one server and with three.

One PostgreSQL database, one SeaweedFS bucket, three icevault servers started from
``deploy/systemd/icevault@.service``, and two HAProxy balancers from ``deploy/haproxy.cfg``
in the same run: one sending everything to the first server, one spreading requests over the
three. Through each, measured one after the other:

- DescribeVault requests per second (64 connections, a SigV4-signed request replayed, with
  wrk when installed);
- GetJobOutput throughput: parallel clients each reading a retrieval job's whole output.

Each phase reports every server's CPU-seconds (and HAProxy's), so it shows whether the work
spreads over the servers or queues somewhere they share. On a 2-core machine three servers
cannot be three times as fast; the point is that nothing serialises across them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench.load import run_load
from icevault.config import parse_size
from icevault.core.treehash import MIB

REGION = "us-east-1"


@dataclass
class Phase:
    name: str
    servers: int
    value: float
    unit: str
    cpu_s: list[float] = field(default_factory=list)  # per icevault server
    balancer_cpu_s: float = 0.0
    database_cpu_s: float = 0.0
    object_store_cpu_s: float = 0.0
    note: str = ""


def _signed(url: str, path: str, key: str, secret: str) -> dict[str, str]:
    request = AWSRequest(method="GET", url=url + path,
                         headers={"x-amz-glacier-version": "2012-06-01"})
    SigV4Auth(Credentials(key, secret), "glacier", REGION).add_auth(request)
    return {k: v for k, v in request.headers.items() if k.lower() != "host"}


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _tree_cpu(pid: int) -> float:
    """CPU-seconds of a process and its children, ended ones included (HAProxy's workers,
    PostgreSQL's backends)."""
    process = psutil.Process(pid)
    times = process.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in process.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += child_times.user + child_times.system
    return float(total)


def _download_throughput(port: int, path: str, headers: dict[str, str], clients: int,
                         seconds: float) -> float:
    """MB/s of whole-output GETs by ``clients`` parallel connections for ``seconds``."""
    received = [0] * clients
    deadline = time.monotonic() + seconds

    def reader(slot: int) -> None:
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                if response.status != 200:
                    raise RuntimeError(f"GetJobOutput answered {response.status}: "
                                       f"{response.read()[:300]!r}")
                while chunk := response.read(MIB):
                    received[slot] += len(chunk)
            finally:
                conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=reader, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return sum(received) / elapsed / 1e6


def measure(size: int, seconds: float, connections: int = 64, clients: int = 8,
            work_dir: Path | None = None) -> list[Phase]:
    # The tests' harnesses for PostgreSQL, SeaweedFS and the deploy/-started cluster.
    from tests.cluster import Cluster, start_balancer
    from tests.postgres import PostgresServer
    from tests.seaweed import SeaweedServer
    from tests.support import pattern, wait_for_job

    root = Path(tempfile.mkdtemp(prefix="icevault-bench-cluster-", dir=work_dir))
    database = PostgresServer().start()
    seaweed = SeaweedServer().start()
    cluster = Cluster(root, database.new_database(), seaweed.new_store_url())
    balancers: list[Any] = []
    measured = False
    try:
        cluster.start()
        client = cluster.client()
        client.create_vault(vaultName="bench")
        data = pattern(size, seed=1)
        archive_id = client.upload_archive(vaultName="bench", body=data)["archiveId"]
        job_id = client.initiate_job(vaultName="bench", jobParameters={
            "Type": "archive-retrieval", "ArchiveId": archive_id})["jobId"]
        wait_for_job(client, "bench", job_id)
        key, secret = cluster.credentials()
        one_proc, one_port = start_balancer([f"127.0.0.1:{cluster.members[0].port}"],
                                            root / "haproxy-one.log")
        balancers.append(one_proc)
        three_port = cluster.balancer_port
        assert cluster.balancer is not None
        setups = ((1, one_port, one_proc.pid), (3, three_port, cluster.balancer.pid))
        pids = [m.proc.pid for m in cluster.members if m.proc is not None]
        postmaster = int((database.root / "data" / "postmaster.pid").read_text().split()[0])
        assert seaweed.proc is not None
        shared = {"database": postmaster, "object_store": seaweed.proc.pid}
        phases: list[Phase] = []
        describe = "/-/vaults/bench"
        output = f"/-/vaults/bench/jobs/{job_id}/output"
        for servers, port, balancer_pid in setups:
            url = f"http://127.0.0.1:{port}"
            watched = {"balancer": balancer_pid, **shared}
            for name, unit, run in (
                (f"DescribeVault through HAProxy, {connections} connections", "req/s",
                 lambda: run_load(url + describe, _signed(url, describe, key, secret),
                                  connections, seconds)),
                (f"GetJobOutput through HAProxy, {clients} clients, {size // MIB} MiB each",
                 "MB/s", lambda: _download_throughput(
                     port, output, _signed(url, output, key, secret), clients, seconds)),
            ):
                before = [_cpu(pid) for pid in pids]
                others = {k: _tree_cpu(pid) for k, pid in watched.items()}
                result = run()
                used = {k: _tree_cpu(pid) - others[k] for k, pid in watched.items()}
                if isinstance(result, float):
                    value, note = result, ""
                else:
                    value = result.requests_per_s
                    note = (f"{result.tool}; p50 {result.p50_ms:.2f} ms, "
                            f"p99 {result.p99_ms:.2f} ms")
                phases.append(Phase(
                    name, servers, value, unit,
                    [_cpu(pid) - b for pid, b in zip(pids, before, strict=True)],
                    used["balancer"], used["database"], used["object_store"], note))
        measured = True
        return phases
    finally:
        for proc in balancers:
            proc.terminate()
            proc.wait(timeout=20)
        cluster.stop()
        seaweed.stop()
        database.stop()
        if measured:
            shutil.rmtree(root, ignore_errors=True)  # the servers' logs are kept on failure


def describe(phase: Phase) -> str:
    cpu = " + ".join(f"{c:.1f}" for c in phase.cpu_s)
    return (f"{phase.name}, {phase.servers} server(s): {phase.value:,.1f} {phase.unit}"
            f"  [CPU s: servers {cpu}; HAProxy {phase.balancer_cpu_s:.1f}, PostgreSQL "
            f"{phase.database_cpu_s:.1f}, SeaweedFS {phase.object_store_cpu_s:.1f}] {phase.note}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="64MiB", help="the archive read by GetJobOutput")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    parser.add_argument("--json", action="store_true", help="print the phases as JSON")
    args = parser.parse_args(argv)
    phases = measure(parse_size(args.size), args.seconds)
    if args.json:
        print(json.dumps([phase.__dict__ for phase in phases], indent=2))
    else:
        for phase in phases:
            print(describe(phase))
    return 0
