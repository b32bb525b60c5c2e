"""``python -m bench kit``: how fast the testing kit gives a test a server, beside moto.

Measured, each in the same run:

- a kit server's start, cold: a fresh Python process's first ``IcevaultServer().start()``,
  which also starts the warm launcher (what the first test of a session pays);
- a kit server's start, warm: later starts in the same process (what every other test pays);
- a server started in a new interpreter (``warm_start=False``), as ``icevault serve`` runs;
- moto's server (``moto_server``) from launch to its first answer, the baseline a Glacier
  tester knows;
- seeding a vault with 10,000 archives of 1 B to 64 MiB.

Every start is timed until the server has answered a boto3 ListVaults.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.peers import _wait_port, free_port
from icevault.core.treehash import MIB

# A test process has boto3 and the kit imported before its first server; only the start
# itself is timed, up to the server's first answer.
_COLD_PROBE = """
import json, time
import boto3
from icevault.testing import IcevaultServer
t = time.monotonic()
server = IcevaultServer().start()
server.client().list_vaults()
print(json.dumps(time.monotonic() - t))
server.stop()
"""


@dataclass
class KitTimes:
    cold_s: float
    warm_s: float
    new_interpreter_s: float
    moto_s: float | None
    seed_10k_s: float
    seed_bytes: int


def _median_of(fn: Callable[[], float], runs: int) -> float:
    return statistics.median(fn() for _ in range(runs))


def _cold_start() -> float:
    out = subprocess.run([sys.executable, "-c", _COLD_PROBE], capture_output=True, text=True,
                         check=True, timeout=120)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def _kit_start(warm: bool) -> float:
    from icevault.testing import IcevaultServer

    started = time.monotonic()
    server = IcevaultServer(warm_start=warm).start()
    try:
        server.client().list_vaults()
        return time.monotonic() - started
    finally:
        server.stop()


def _moto_start() -> float | None:
    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not os.path.exists(exe):
        return None
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, proc)
        import boto3

        boto3.client("glacier", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                     aws_access_key_id="AKIDBENCH", aws_secret_access_key="bench").list_vaults()
        return time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait()


def _seed(archives: int) -> tuple[float, int]:
    from icevault.testing import IcevaultServer

    with IcevaultServer() as server:
        started = time.monotonic()
        report = server.seed_vault("seeded", archives=archives, sizes=(1, 64 * MIB))
        return time.monotonic() - started, int(report["bytes"])


def measure(runs: int = 3, archives: int = 10_000) -> KitTimes:
    cold = _median_of(_cold_start, runs)
    _kit_start(True)  # the launcher of this process, started (its cost is the cold number)
    warm = _median_of(lambda: _kit_start(True), max(runs, 5))
    fresh = _median_of(lambda: _kit_start(False), runs)
    moto_runs = [_moto_start() for _ in range(runs)]
    moto = None if None in moto_runs else statistics.median(t for t in moto_runs if t is not None)
    seed_s, seed_bytes = _seed(archives)
    return KitTimes(cold, warm, fresh, moto, seed_s, seed_bytes)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench kit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="starts per scenario (median)")
    parser.add_argument("--archives", type=int, default=10_000, help="archives to seed")
    args = parser.parse_args(argv)
    times = measure(args.runs, args.archives)
    moto = "-" if times.moto_s is None else f"{times.moto_s:.3f} s"
    print(f"kit server start, cold (first in a process): {times.cold_s:.3f} s  [target < 1 s]")
    print(f"kit server start, warm (every later one):    {times.warm_s:.3f} s  [target < 1 s]")
    print(f"server in a new interpreter:                 {times.new_interpreter_s:.3f} s")
    print(f"moto_server to its first answer:             {moto}")
    print(f"seed {args.archives} archives ({times.seed_bytes / 1e9:.1f} GB of zeros): "
          f"{times.seed_10k_s:.2f} s  [target < 10 s for 10,000]")
    ok = times.cold_s < 1 and times.warm_s < 1 and times.seed_10k_s < 10
    return 0 if ok else 1
