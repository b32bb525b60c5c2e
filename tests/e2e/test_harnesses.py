"""Bounded slices of the hardening harnesses (the long forms run from ``python -m bench``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.crash import check_copies, check_storage

ROOT = Path(__file__).resolve().parents[2]


def _bench(*args: str, timeout: float = 600) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=timeout)
    report: dict[str, Any] = json.loads(result.stdout)
    assert result.returncode == 0, report
    assert report["problems"] == []
    return report


def test_fuzz_slice(tmp_path: Path) -> None:
    report = _bench("fuzz", "--requests", "1500", "--seed", "11", "--work-dir", str(tmp_path))
    assert report["requests"] == 1500
    assert report["2xx/3xx"] > 0  # the handlers were reached, not only the router


def test_crash_slice(tmp_path: Path) -> None:
    report = _bench("crash", "--rounds", "4", "--seed", "5", "--work-dir", str(tmp_path))
    assert report["archives_acknowledged"] > 0
    assert report["archives_listed"] > 0


def test_crash_checks_can_fail(tmp_path: Path) -> None:
    """The storage checks notice what they look for: here an orphan, a staging area and a
    temporary file planted in a data directory a clean server left."""
    report = _bench("crash", "--rounds", "1", "--seed", "2", "--work-dir", str(tmp_path))
    assert report["problems"] == []
    data = tmp_path / "data"
    assert check_storage(data) == []
    (data / "blobs" / "ab" / ("ab" + "0" * 30)).write_bytes(b"orphan")
    (data / "staging" / "cd").write_bytes(b"")
    (data / "tmp" / "x.part").write_bytes(b"")
    problems = check_storage(data)
    assert any("orphaned" in p for p in problems)
    assert any("staging" in p for p in problems)
    assert any("temporary" in p for p in problems)
    # The copy checks: a stray object in the copy store, and a copy whose bytes went bad.
    copies = tmp_path / "copies"
    assert check_copies(data, copies) == []
    (copies / "blobs" / "ef" / ("ef" + "0" * 30)).write_bytes(b"stray")
    copy = next(path for path in (copies / "blobs").rglob("*")
                if path.is_file() and path.stat().st_size > 3 and path.name[:2] != "ef")
    copy.write_bytes(b"\0\0\0" + copy.read_bytes()[3:])
    problems = check_copies(data, copies)
    assert any("copy objects no row names" in p for p in problems)
    assert any("does not hold its bytes" in p for p in problems)


def test_soak_slice(tmp_path: Path) -> None:
    report = _bench("soak", "--seconds", "15", "--clients", "6", "--idle", "150",
                    "--slowloris", "40", "--idle-timeout", "2s", "--work-dir", str(tmp_path))
    assert report["requests"] > 100
    assert report["errors"] == 0
    attack = report["attack"]
    assert isinstance(attack, dict) and attack["opened"] > 190  # the server dropped and they came back


def test_copies_benchmark_slice(tmp_path: Path) -> None:
    """The copy benchmark runs every row (a copy that failed would stop it), each beside its
    baseline measured in the same run."""
    result = subprocess.run([sys.executable, "-m", "bench", "copies", "--archives", "2",
                             "--size-mib", "4", "--backlog", "4", "--seconds", "0.5",
                             "--rounds", "1", "--work-dir", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout)["rows"]
    assert [row["target"] for row in rows] == ["local -> second directory",
                                               "local -> second device (RAM disk)",
                                               "local -> SeaweedFS"]
    assert all(row["copied_mb_s"] > 0 and row["baseline_mb_s"] > 0 for row in rows)
    busy = json.loads(result.stdout)["while_copying"]
    assert [row["measure"] for row in busy] == [
        "DescribeVault p99 (ms)", "16 MiB uploads (MB/s)",
        "DescribeVault p99 (ms), --copy-rate 100MiB", "16 MiB uploads (MB/s), --copy-rate 100MiB"]
    assert all(row["idle"] > 0 and row["while_copying"] > 0 for row in busy)
    assert set(json.loads(result.stdout)["copy_writes_mb_s_while_measured"]) == {"unpaced",
                                                                          "100MiB"}
    assert [row["same_disk"] for row in rows] == [True, False, False]
    restored = json.loads(result.stdout)["restored_output"]  # moto's S3 is in the test extra
    assert restored["job_output_mb_s"] > 0 and restored["plain_get_mb_s"] > 0
