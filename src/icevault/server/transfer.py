"""Deadlines for moving bodies, so that a stalled or trickling peer cannot hold a connection.

Every body, in either direction, moves in steps of :data:`STEP` bytes. A step must finish
within ``io_timeout + STEP / min_rate`` seconds, and a request body may never go without a
byte for longer than ``io_timeout``. Zero-copy ``sendfile`` shows no progress inside a step,
so for responses the step deadline is the whole rule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from icevault.core.errors import RequestTimeoutError

STEP = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TransferLimits:
    io_timeout_s: float = 30.0
    min_rate: int = 64 * 1024  # bytes per second, over each step

    def step_deadline_s(self, size: int = STEP) -> float:
        return self.io_timeout_s + size / self.min_rate


class StepClock:
    """Progress of one body through its steps; raises when a step overruns its deadline."""

    def __init__(self, limits: TransferLimits, what: str, step: int = STEP) -> None:
        self._limits = limits
        self._what = what
        # A body smaller than a step (a capped JSON body, a form) is one step of its cap.
        self._step = step
        self._step_started = time.monotonic()
        self._step_bytes = 0

    def remaining_s(self) -> float:
        """Time left in the current step, never more than one stall allowance."""
        left = self._step_started + self._limits.step_deadline_s(self._step) - time.monotonic()
        return max(0.0, min(self._limits.io_timeout_s, left))

    def advance(self, count: int) -> None:
        self._step_bytes += count
        if self._step_bytes < self._step:
            if self.remaining_s() <= 0:
                raise self.too_slow()
            return
        self._step_started = time.monotonic()
        self._step_bytes = 0

    def too_slow(self) -> RequestTimeoutError:
        limits = self._limits
        return RequestTimeoutError(
            f"The {self._what} stalled: no byte for {limits.io_timeout_s:g} s, or slower than "
            f"{limits.min_rate} bytes/s"
        )
