"""``python -m bench``: icevault beside moto's server and the machine's limits, in one run.

Prints one table and writes it as JSON and Markdown (``bench/RESULTS.md`` by default).
``--quick`` is a smoke run of seconds; ``--size`` and ``--big-size`` scale it up.

``python -m bench crash|fuzz|soak ...`` run the hardening harnesses (``--help`` on each).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Row, make_file
from bench.peers import start_icevault, start_moto
from bench.scenarios import SCENARIOS, Stage, machine_limits
from icevault.config import parse_size
from icevault.core.treehash import MIB

HERE = Path(__file__).resolve().parent


def migrate_row(args: argparse.Namespace) -> Row:
    """icevault migrate against a verified download then upload (``python -m bench migrate``)."""
    from bench import migrate

    size = 64 * MIB if args.quick else 1024 * MIB
    times = migrate.measure(size, work_dir=args.work_dir, rounds_wanted=1 if args.quick else 3)
    return Row(f"migrate one {size // MIB} MiB archive between two servers", "s",
               times.migrate_s, None, times.baseline_s, ">= 1.3x faster than download + upload",
               times.speedup >= 1.3,
               f"{times.speedup:.2f}x; limit column: verified download then upload (medians of "
               f"{len(times.rounds)} alternating rounds); migrator peak RSS "
               f"{times.migrate_peak_rss // MIB} MiB")


def cluster_rows(args: argparse.Namespace) -> list[Row]:
    """Three servers behind HAProxy against one (``python -m bench cluster``)."""
    from bench import cluster
    from tests.system import haproxy_path, postgres_bindir

    absent = [name for name, found in (("haproxy", haproxy_path()),
                                       ("postgresql", postgres_bindir())) if found is None]
    if absent:
        return [Row("three servers behind HAProxy against one", "-", "skipped",
                    note=f"skipped: {', '.join(absent)} not installed (apt-get install "
                         f"{' '.join(absent)})")]
    phases = cluster.measure(8 * MIB if args.quick else 64 * MIB,
                             1.0 if args.quick else 5.0, work_dir=args.work_dir)
    rows = []
    for one, three in zip(phases[:2], phases[2:], strict=True):
        for phase in (one, three):
            cpu = " + ".join(f"{c:.1f}" for c in phase.cpu_s)
            scaled = phase is three and phase.unit == "req/s"
            rows.append(Row(
                f"{phase.name}, {phase.servers} server(s)", phase.unit, phase.value, None, None,
                ">= 1 server's (nothing shared serialises)" if scaled else "",
                (three.value >= one.value) if scaled else None,
                f"CPU s: servers {cpu}, HAProxy {phase.balancer_cpu_s:.1f}, PostgreSQL "
                f"{phase.database_cpu_s:.1f}, SeaweedFS {phase.object_store_cpu_s:.1f}"
                + (f"; {phase.note}" if phase.note else "")))
    return rows


def kit_rows(quick: bool) -> list[Row]:
    """The testing kit: a server per test, and seeded vaults (``python -m bench kit``)."""
    from bench import kit

    archives = 1000 if quick else 10_000
    times = kit.measure(runs=1 if quick else 3, archives=archives)
    return [
        Row("testing kit: server start, first in a process", "s", times.cold_s, times.moto_s,
            None, "< 1 s", times.cold_s < 1,
            "to the first answer; starts the warm launcher too (moto: moto_server start)"),
        Row("testing kit: server start, each later one", "s", times.warm_s, times.moto_s, None,
            "< 1 s", times.warm_s < 1, "forked from the warm launcher; what most tests pay"),
        Row("testing kit: server start in a new interpreter", "s", times.new_interpreter_s,
            times.moto_s, None, "", None, "IcevaultServer(warm_start=False)"),
        Row(f"testing kit: seed {archives:,} archives (1 B-64 MiB)", "s", times.seed_10k_s,
            None, None, "< 10 s for 10,000" if not quick else "",
            times.seed_10k_s < 10 if not quick else None,
            f"{times.seed_bytes / 1e9:.0f} GB of sparse zeros, exact tree hashes"),
    ]

def run(args: argparse.Namespace) -> list[Row]:
    work = Path(tempfile.mkdtemp(prefix="icevault-bench-", dir=args.work_dir))
    rows: list[Row] = []
    source = make_file(work / "archive.bin", args.size)
    ice = start_icevault(work, "off")
    ice_sig = start_icevault(work, "sigv4")
    moto = None if args.no_moto else start_moto()
    try:
        stage = Stage(args, work, args.size, args.big_size, source, ice, ice_sig, moto)
        machine_limits(stage)
        for scenario in SCENARIOS:
            rows.extend(scenario(stage))
        rows.extend(kit_rows(args.quick))
        rows.append(migrate_row(args))
        rows.extend(cluster_rows(args))
    finally:
        for peer in (ice, ice_sig, moto):
            if peer is not None:
                peer.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    return rows


def fmt(value: float | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"


def markdown(rows: list[Row], command: str) -> str:
    lines = [
        "# icevault benchmark results",
        "",
        f"Command: `{command}`  ",
        (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
         f"Python {platform.python_version()}, {platform.platform()}  "),
        f"Run at: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
        "",
        "| scenario | unit | icevault | moto | machine limit | target | met | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.scenario} | {r.unit} | {fmt(r.icevault)} | {fmt(r.moto)} | {fmt(r.limit)} "
                     f"| {r.target} | {met} | {r.note} |")
    return "\n".join(lines) + "\n"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


HARNESSES = ("cluster", "copies", "crash", "fuzz", "kit", "migrate", "soak")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in HARNESSES:
        import importlib

        harness = importlib.import_module(f"bench.{argv[0]}")
        return int(harness.main(argv[1:]))
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    parser.add_argument("--size", default=None, help="archive size for transfers (default 1GiB)")
    parser.add_argument("--big-size", default=None, help="archive for the RSS scenario (default 4GiB)")
    parser.add_argument("--out", default=None,
                        help="where RESULTS.md and results.json go (default: bench/ for a full "
                             "run; a temporary directory for --quick, so that a smoke run never "
                             "replaces the committed results)")
    parser.add_argument("--work-dir", default=None, help="scratch space (default: the temp dir)")
    parser.add_argument("--no-moto", action="store_true", help="skip moto's server")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = tempfile.mkdtemp(prefix="icevault-bench-") if args.quick else str(HERE)
    args.size = parse_size(args.size or ("16MiB" if args.quick else "1GiB"))
    args.big_size = parse_size(args.big_size or ("32MiB" if args.quick else "4GiB"))
    args.part_size = min(64 * MIB, max(MIB, 1 << (max(args.size // 16, MIB).bit_length() - 1)))
    args.workers = 4
    args.load_seconds = 1.0 if args.quick else 5.0
    args.download_configs = (
        [(2, 128 * MIB), (4, 64 * MIB), (4, 128 * MIB), (8, 64 * MIB)] if not args.quick else [(2, 4 * MIB)]
    )
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = run(args)
    width = max(len(r.scenario) for r in rows)
    print(f"{'scenario':<{width}}  {'unit':<6} {'icevault':>12} {'moto':>14} {'limit':>10}  target / note")
    for r in rows:
        met = "" if r.met is None else ("[met]" if r.met else "[MISSED]")
        print(f"{r.scenario:<{width}}  {r.unit:<6} {fmt(r.icevault):>12} {fmt(r.moto):>14} "
              f"{fmt(r.limit):>10}  {r.target} {met} {r.note}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
               "platform": platform.platform()}
    (out / "results.json").write_text(json.dumps(
        {"command": command, "machine": machine, "rows": [r.__dict__ for r in rows]}, indent=2))
    text = markdown(rows, command).replace(
        f"Machine: {platform.processor() or platform.machine()}", f"Machine: {machine['cpu']}")
    notes = HERE / "NOTES.md"
    if notes.exists():
        text += "\n" + notes.read_text()
    (out / "RESULTS.md").write_text(text)
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
