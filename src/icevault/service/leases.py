"""Claims held for as long as their work runs.

A server claims due jobs and owed copies with a lease, so that another server sharing the
database takes the work over should the first die. Work may outlast any fixed lease: a
copy paced behind requests, or the check of a large archive before its job completes. Its
claims are renewed every third of a lease while it runs, on a thread of their own (a step
of the work, such as one paced block or one store call, may itself take seconds), so a
living server's work is never taken over and done twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from types import TracebackType

from icevault.core.errors import StorageUnavailableError
from icevault.core.models import Clock

log = logging.getLogger(__name__)


class LeaseKeeper:
    """``with LeaseKeeper(renew, ids, lease_ms, clock) as kept:`` renews the claims on
    ``ids`` (``renew(ids, until)``) until the block ends; ``kept.release(id)`` once the
    work on one is finished. ``renew`` must leave finished work alone: a renewal may run
    while a claim is being finished."""

    def __init__(self, renew: Callable[[list[str], int], None], ids: Iterable[str],
                 lease_ms: int, clock: Clock) -> None:
        self._renew, self._lease_ms, self._clock = renew, lease_ms, clock
        self._ids = set(ids)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="icevault-lease", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def release(self, claim_id: str) -> None:
        with self._lock:
            self._ids.discard(claim_id)

    def _run(self) -> None:
        while not self._stop.wait(self._lease_ms / 3000):
            with self._lock:
                ids = sorted(self._ids)
            if not ids:
                continue
            try:
                self._renew(ids, self._clock.now_ms() + self._lease_ms)
            except StorageUnavailableError as exc:
                # The database may be away for a moment: two thirds of the lease are left,
                # and the next renewal may succeed. One line, as the workers' own waits.
                log.warning("claims not renewed: %s", exc,
                            extra={"event": "lease_renewal_failed", "claims": len(ids)})
