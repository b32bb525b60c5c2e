"""Requests come first: background work (copies, scrub) gives way while requests are being
served, and runs at full speed (or its configured rate) while none are.

Niceness does not do it. The copy threads share the server's interpreter lock with the
event loop, and the disk with the uploads: measured on 2 cores, unpaced copies took
DescribeVault's p99 from 1.2 ms to 5-6 ms and halved the upload rate, niced to 10 or
SCHED_IDLE alike. So the work itself steps back: after each block it sleeps long enough to
hold at most ``share`` (--background-share) of its thread's time while requests are in
flight. Even 2% of the time took that p99 up by a third or more: any block a request
overlaps delays it, on a machine whose cores the requests already keep busy. And once the
work steps back, a nice value only hurts: a niced thread preempted while it holds the
interpreter lock keeps the event loop waiting for it (p99 +21-34% niced to 10, +6-10% in
most runs without).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# A request that ended this recently still counts: between one client's requests there is
# a gap of a round trip, and work started in it would delay the next.
QUIET_S = 0.05
# No single sleep longer than this, so a stop or a change of load is seen soon.
LONGEST_STEP_S = 0.5


class Foreground:
    """How many requests are in flight now, and when the last one ended: counted at the
    edge, read by background work."""

    def __init__(self, share: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.share = share  # of background threads' time while requests are in flight
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight = 0
        self._last_end = float("-inf")

    def started(self) -> None:
        with self._lock:
            self._in_flight += 1

    def finished(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._last_end = self._clock()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def busy(self) -> bool:
        with self._lock:
            return self._in_flight > 0 or self._clock() - self._last_end < QUIET_S


class BackgroundPace:
    """Called before each block of background work (as a limiter's ``consume`` is): the
    time since the last call is what the last block took; while requests are in flight the
    caller sleeps ``1/share - 1`` times that (at most LONGEST_STEP_S: under constant load
    the work still moves a block or more every half second). Shared by ``threads``
    threads working side by side, each sleeps that many times longer: the share and the
    least rate are the work's, however many threads do it. ``then`` is a further pace (a
    byte rate)."""

    def __init__(self, foreground: Foreground, then: Callable[[int], None] | None = None,
                 threads: int = 1, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._foreground = foreground
        self._then = then
        share = foreground.share
        self._factor = float("inf") if share <= 0 else (1 / share - 1) * threads
        self._longest = LONGEST_STEP_S * threads
        self._clock = clock
        self._sleep = sleep
        self._local = threading.local()  # each thread's last block, timed on its own

    def __call__(self, amount: int) -> None:
        now = self._clock()
        last: float | None = getattr(self._local, "last", None)
        if last is not None and self._factor > 0 and self._foreground.busy():
            self._sleep(min(self._longest, (now - last) * self._factor))
        if self._then is not None:
            self._then(amount)
        self._local.last = self._clock()
