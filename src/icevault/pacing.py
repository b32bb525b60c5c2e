"""A token bucket shared by all transfer threads, with an injected clock so tests never sleep."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class BandwidthLimiter:
    def __init__(
        self,
        bytes_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        burst_seconds: float = 0.25,
    ) -> None:
        if bytes_per_second <= 0:
            raise ValueError("the bandwidth limit must be positive")
        self.rate = bytes_per_second
        self.capacity = max(1.0, bytes_per_second * burst_seconds)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._last = clock()
        self._lock = threading.Lock()

    def consume(self, amount: int) -> None:
        """Block until ``amount`` bytes may pass."""
        remaining = float(amount)
        while remaining > 0:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                take = min(remaining, self._tokens)
                self._tokens -= take
                remaining -= take
                wait = 0.0 if remaining <= 0 else min(remaining, self.capacity) / self.rate
            if wait > 0:
                self._sleep(wait)
