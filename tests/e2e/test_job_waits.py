"""Waiting on a job shows how it goes: a live line on a terminal, a few lines elsewhere,
nothing with --quiet. On AWS these waits last hours."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ServerProcess


@pytest.fixture(scope="module")
def slow_jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("waits") / "data", auth="sigv4",
                           extra_args=["--tier-delays", "expedited=0,standard=3s,bulk=0"]
                           ).start()
    server.client().create_vault(vaultName="slow")
    yield server
    server.stop()


def _archive(server: ServerProcess) -> str:
    return str(server.client().upload_archive(vaultName="slow", body=b"wait for me")["archiveId"])


def _command(server: ServerProcess, *args: str) -> list[str]:
    return [sys.executable, "-m", "icevault", *args, "--endpoint-url", server.url]


def test_without_a_terminal_a_line_at_the_start_and_at_each_change(
        slow_jobs: ServerProcess) -> None:
    done = subprocess.run(_command(slow_jobs, "retrieve", "--vault", "slow", "--archive-id",
                                   _archive(slow_jobs), "--tier", "Standard", "--wait"),
                          env=slow_jobs.cli_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2, lines
    assert re.match(r"job \S{16}… Standard retrieval: InProgress, waited 0s; on AWS "
                    r"Standard takes 3-5 h, so by \d\d:\d\d UTC", lines[0]), lines[0]
    assert ": Succeeded, waited " in lines[1]
    assert "jobId" in json.loads(done.stdout)
    quiet = subprocess.run(_command(slow_jobs, "retrieve", "--vault", "slow", "--archive-id",
                                    _archive(slow_jobs), "--wait", "--quiet"),
                           env=slow_jobs.cli_env(), capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_on_a_terminal_a_live_line(slow_jobs: ServerProcess) -> None:
    client = slow_jobs.client()
    job = client.initiate_job(vaultName="slow", jobParameters={
        "Type": "archive-retrieval", "ArchiveId": _archive(slow_jobs), "Tier": "Standard"})
    main, secondary = pty.openpty()
    process = subprocess.Popen(
        _command(slow_jobs, "jobs", "wait", "--vault", "slow", "--job-id", job["jobId"],
                 "--max-delay", "2"),
        env=slow_jobs.cli_env(), stdin=secondary, stdout=subprocess.PIPE, stderr=secondary)
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        try:
            seen += os.read(main, 65536)
        except OSError:
            break
    out, _ = process.communicate(timeout=30)
    os.close(main)
    assert process.returncode == 0
    assert json.loads(out)["StatusCode"] == "Succeeded"
    text = seen.decode(errors="replace")
    redraws = text.count("\r\x1b[2K")
    assert redraws >= 3, text  # redrawn every second while it waits
    assert re.search(r"waited [12]s", text), text
    assert "next check in" in text and ": Succeeded, waited" in text
    assert text.endswith("\n")


def test_the_report_is_quiet_when_asked(tmp_path: Path) -> None:
    from icevault.cli.waiting import JobWaitReport

    with open(tmp_path / "out", "w") as stream:
        report = JobWaitReport("J" * 92, quiet=True, stream=stream)
        report.on_poll({"StatusCode": "InProgress", "Tier": "Bulk"})
        report.on_poll({"StatusCode": "Succeeded", "Completed": True})
    assert (tmp_path / "out").read_text() == ""
