"""What a person sees while a command waits on a job, which on AWS lasts hours.

On a terminal, one status line rewritten every second: the job, its tier and state, the time
waited, when a job of its tier is expected to complete, and when the server is asked next.
Elsewhere (a log, a pipe), a line when the wait starts, at each change of state and every
ten minutes. ``--quiet``: nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from icevault.core.text import escape

# What AWS documents for each tier, for the expectation shown while waiting.
TYPICAL = {"Expedited": ("1-5 min", timedelta(minutes=5)),
           "Standard": ("3-5 h", timedelta(hours=5)),
           "Bulk": ("5-12 h", timedelta(hours=12)),
           "Inventory": ("about 4 h", timedelta(hours=4))}
REPEAT_S = 600.0  # without a terminal, a line at least this often


def _span(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds // 60 % 60:02d}m"


class JobWaitReport:
    """Pass ``on_poll``, ``on_pause`` and ``sleep`` to :func:`wait_for_job`."""

    def __init__(self, job_id: str, *, quiet: bool = False, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.job_id = job_id
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.live = not quiet and self.stream.isatty()
        self.clock = clock
        self._sleep = sleep
        self.started = clock()
        self.job: dict[str, Any] = {}
        self.next_poll_at: float | None = None
        self._said: tuple[str, str] | None = None
        self._said_at = -REPEAT_S
        self._drawn = False

    def on_poll(self, job: dict[str, Any]) -> None:
        self.job = job
        self.next_poll_at = None
        state = (str(job.get("StatusCode")), str(job.get("StatusMessage") or ""))
        if self.live:
            self._draw()
            if job.get("Completed"):
                self._finish()
        elif not self.quiet and (state != self._said or
                                 self.clock() - self._said_at >= REPEAT_S):
            self.stream.write(self._line() + "\n")
            self.stream.flush()
            self._said, self._said_at = state, self.clock()

    def on_pause(self, pause: float) -> None:
        self.next_poll_at = self.clock() + pause

    def sleep(self, seconds: float) -> None:
        """Sleep, redrawing the terminal's line every second."""
        if not self.live:
            self._sleep(seconds)
            return
        end = self.clock() + seconds
        while (left := end - self.clock()) > 0:
            self._sleep(min(1.0, left))
            self._draw()

    def _expected(self) -> str:
        kind = "Inventory" if self.job.get("Action") == "InventoryRetrieval" else str(
            self.job.get("Tier") or "Standard")
        typical = TYPICAL.get(kind)
        created = self.job.get("CreationDate")
        if typical is None or not created:
            return ""
        start = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
        by = (start + typical[1]).astimezone(UTC).strftime("%H:%M UTC")
        return f"; on AWS {kind} takes {typical[0]}, so by {by}"

    def _line(self) -> str:
        job = self.job
        kind = "inventory" if job.get("Action") == "InventoryRetrieval" else (
            f"{job.get('Tier') or 'Standard'} retrieval")
        text = (f"job {self.job_id[:16]}… {kind}: {job.get('StatusCode', '?')}, waited "
                f"{_span(self.clock() - self.started)}{self._expected()}")
        if job.get("StatusMessage") not in (None, "", job.get("StatusCode")) and job.get(
                "StatusCode") != "InProgress":
            text += f" ({job['StatusMessage']})"
        if self.next_poll_at is not None and not job.get("Completed"):
            text += f"; next check in {_span(max(0.0, self.next_poll_at - self.clock()))}"
        return escape(text)

    def _draw(self) -> None:
        self.stream.write("\r\x1b[2K" + self._line())
        self.stream.flush()
        self._drawn = True

    def _finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def close(self) -> None:
        if self.live:
            self._finish()


def wait_reporting(client: Any, vault: str, job_id: str, *, account_id: str,
                   timeout: float | None, quiet: bool, max_delay: float = 60.0) -> dict[str, Any]:
    """:func:`~icevault.client.jobs.wait_for_job`, telling a person how it goes."""
    from icevault.client.jobs import wait_for_job

    report = JobWaitReport(job_id, quiet=quiet)
    try:
        return wait_for_job(client, vault, job_id, account_id=account_id, timeout=timeout,
                            max_delay=max_delay, sleep=report.sleep, on_poll=report.on_poll,
                            on_pause=report.on_pause)
    finally:
        report.close()
