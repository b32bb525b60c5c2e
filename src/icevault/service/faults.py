"""The faults a server with test controls injects: the rules in force, and what they did."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from icevault.core.faults import Fault, FaultKind
from icevault.core.models import Clock, Job, iso8601

log = logging.getLogger("icevault.faults")

DEFAULT_JOB_FAILURE = "The job failed (a fault injected by the server's test controls)"


@dataclass(slots=True)
class _Rule:
    fault: Fault
    remaining: int | None
    chance: random.Random | None

    def fires(self) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        probability = self.fault.probability
        if self.chance is not None and probability is not None and (
            self.chance.random() >= probability
        ):
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


@dataclass(slots=True)
class FaultPlan:
    """Rules matched in the order they were added; each injection is logged and recorded.

    Shared by the event loop and worker threads (jobs complete in threads), hence the lock."""

    clock: Clock
    _rules: list[_Rule] = field(default_factory=list)
    _seen: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> int:
        """Put a rule in force; returns its number (its index in the order of adding)."""
        fault.checked()
        rule = _Rule(fault, fault.times,
                     random.Random(fault.seed) if fault.probability is not None else None)
        with self._lock:
            self._rules.append(rule)
            return len(self._rules) - 1

    def clear(self) -> None:
        """Remove every rule and forget what was injected."""
        with self._lock:
            self._rules.clear()
            self._seen.clear()

    def seen(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._seen)

    def for_request(self, operation: str, vault: str | None, job: str | None) -> Fault | None:
        """The fault to inject into this request, if one fires (an error, or a body fault)."""
        return self._fire(lambda f: f.kind is not FaultKind.FAIL_JOB and f.operation == operation,
                          operation, vault, job)

    def job_failure(self, job: Job) -> str | None:
        """Why ``job`` must fail instead of completing, if a fail_job rule fires for it."""
        fault = self._fire(lambda f: f.kind is FaultKind.FAIL_JOB, None, job.vault.name, job.id)
        if fault is None:
            return None
        return fault.message or DEFAULT_JOB_FAILURE

    def _fire(self, wanted: Any, operation: str | None, vault: str | None,
              job: str | None) -> Fault | None:
        with self._lock:
            for number, rule in enumerate(self._rules):
                fault = rule.fault
                if not wanted(fault):
                    continue
                if fault.vault is not None and fault.vault != vault:
                    continue
                if fault.job is not None and fault.job != job:
                    continue
                if not rule.fires():
                    continue
                record = {"rule": number, "kind": fault.kind.value, "operation": operation,
                          "vault": vault, "job": job, "at": iso8601(self.clock.now_ms())}
                if fault.kind is FaultKind.ERROR:
                    record |= {"code": fault.code, "status": fault.status}
                if fault.kind is FaultKind.DROP_CONNECTION:
                    record["after_bytes"] = fault.after_bytes
                self._seen.append(record)
                log.warning("injected fault %s: %s on %s (vault %s, job %s)", number,
                            fault.kind.value, operation or "job completion", vault or "-",
                            job or "-")
                return fault
        return None
