"""The benchmark entry point runs (a smoke run; real numbers come from `python -m bench`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def temp_dir() -> Iterator[Path]:
    """A TMPDIR for a benchmark run: reachable by the postgres user (PostgreSQL's harness
    runs initdb as that user, under the temp dir), which pytest's own tmp_path is not."""
    root = Path(tempfile.mkdtemp(prefix="icevault-bench-test-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_bench_quick_runs(temp_dir: Path) -> None:
    committed = (ROOT / "bench" / "RESULTS.md").read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        # Its temporary directories land here, to show it leaves none but its results.
        env={**os.environ, "TMPDIR": str(temp_dir)},
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    # a smoke run writes elsewhere: the committed full results stay as they are
    assert (ROOT / "bench" / "RESULTS.md").read_bytes() == committed
    out = Path(result.stdout.strip().splitlines()[-1].removeprefix("results written to "))
    assert out.parent == temp_dir and out.name.startswith("icevault-bench-")
    report = json.loads((out / "results.json").read_text())
    scenarios = [row["scenario"] for row in report["rows"]]
    assert any(s.startswith("GetJobOutput whole") for s in scenarios)
    assert any(s.startswith("DescribeVault, 64 connection(s), SigV4") for s in scenarios)
    whole = next(r for r in report["rows"] if r["scenario"].startswith("GetJobOutput whole"))
    assert whole["icevault"] > 0 and whole["moto"] > 0  # moto's server really ran beside us
    assert (out / "RESULTS.md").read_text().startswith("# icevault benchmark results")
    # The scratch space of the run (its servers, the migration's and the cluster's) is gone.
    assert list(temp_dir.iterdir()) == [out]
    assert report["machine"]["cores"] >= 1


def test_cluster_rows_say_skipped_without_haproxy(monkeypatch: Any) -> None:
    """`python -m bench --quick` on a machine without HAProxy reports the cluster rows as
    skipped, naming the package, instead of ending in a traceback."""
    import argparse

    import tests.system
    from bench.__main__ import cluster_rows, fmt, markdown

    monkeypatch.setattr(tests.system, "haproxy_path", lambda: None)
    rows = cluster_rows(argparse.Namespace(quick=True, work_dir=None))
    assert [(r.icevault, r.note) for r in rows] == [
        ("skipped", "skipped: haproxy not installed (apt-get install haproxy)")]
    assert fmt(rows[0].icevault) == "skipped"
    assert "haproxy not installed" in markdown(rows, "python -m bench --quick")
