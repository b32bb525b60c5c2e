"""Faults a test can ask a server (started with ``--test-controls``) to inject.

A :class:`Fault` is a rule: what to do (its ``kind``), to which requests (operation, and
optionally vault and job), and how often (the first ``times`` matches, or each match with a
seeded ``probability``). The same record is built by the testing kit, sent as JSON, loaded
from ``--faults FILE.json`` and matched by the server, so both ends agree on one definition.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

from icevault.core.errors import InvalidParameterValueError

# Glacier's error types by status: a 5xx is the service's fault, anything else the client's.
_SERVER_STATUSES = range(500, 600)

# Body faults change the bytes of a job's output, the one streamed response.
_BODY_OPERATIONS = frozenset({"GetJobOutput"})


class FaultKind(enum.StrEnum):
    ERROR = "error"  # answer with a Glacier error instead of running the operation
    CORRUPT_BODY = "corrupt_body"  # serve wrong bytes under the right checksum header
    DROP_CONNECTION = "drop_connection"  # cut the connection after some bytes of the body
    STRIP_CHECKSUM = "strip_checksum"  # leave out x-amz-sha256-tree-hash (as for unaligned ranges)
    FAIL_JOB = "fail_job"  # the next job to complete finishes with StatusCode Failed


@dataclass(frozen=True, slots=True)
class Fault:
    """One injection rule; build it with the class methods."""

    kind: FaultKind
    operation: str | None = None  # a Glacier operation name, e.g. "GetJobOutput"
    vault: str | None = None
    job: str | None = None
    times: int | None = None  # inject on the first N matches; None: every match
    probability: float | None = None  # inject on each match with this chance
    seed: int | None = None  # for probability: the same seed, the same choices
    code: str | None = None  # ERROR: the Glacier error code
    status: int | None = None  # ERROR: the HTTP status
    message: str | None = None
    after_bytes: int = 0  # DROP_CONNECTION: body bytes sent before the cut

    # -- builders (the testing kit's contract) ----------------------------------------------

    @classmethod
    def error(cls, operation: str, code: str, status: int = 400, *, message: str | None = None,
              vault: str | None = None, job: str | None = None, times: int | None = None,
              probability: float | None = None, seed: int | None = None) -> Fault:
        return cls(FaultKind.ERROR, operation, vault, job, times, probability, seed, code,
                   status, message).checked()

    @classmethod
    def throttle(cls, operation: str, *, times: int | None = None,
                 probability: float | None = None, seed: int | None = None,
                 vault: str | None = None, job: str | None = None) -> Fault:
        """Glacier's ThrottlingException (400, "Rate exceeded"), which SDKs retry."""
        return cls.error(operation, "ThrottlingException", 400, message="Rate exceeded",
                         vault=vault, job=job, times=times, probability=probability, seed=seed)

    @classmethod
    def corrupt_body(cls, operation: str = "GetJobOutput", *, times: int | None = None,
                     probability: float | None = None, seed: int | None = None,
                     vault: str | None = None, job: str | None = None) -> Fault:
        return cls(FaultKind.CORRUPT_BODY, operation, vault, job, times, probability,
                   seed).checked()

    @classmethod
    def drop_connection(cls, operation: str = "GetJobOutput", *, after_bytes: int = 0,
                        times: int | None = None, probability: float | None = None,
                        seed: int | None = None, vault: str | None = None,
                        job: str | None = None) -> Fault:
        return cls(FaultKind.DROP_CONNECTION, operation, vault, job, times, probability, seed,
                   after_bytes=after_bytes).checked()

    @classmethod
    def strip_checksum(cls, operation: str = "GetJobOutput", *, times: int | None = None,
                       probability: float | None = None, seed: int | None = None,
                       vault: str | None = None, job: str | None = None) -> Fault:
        return cls(FaultKind.STRIP_CHECKSUM, operation, vault, job, times, probability,
                   seed).checked()

    @classmethod
    def fail_job(cls, *, vault: str | None = None, job: str | None = None, times: int = 1,
                 message: str | None = None) -> Fault:
        return cls(FaultKind.FAIL_JOB, None, vault, job, times, message=message).checked()

    # -- wire form --------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        return {name: value for name, value in record.items() if value is not None}

    @classmethod
    def from_json(cls, record: object) -> Fault:
        if not isinstance(record, dict):
            raise InvalidParameterValueError("A fault is a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(record) - known)
        if unknown:
            raise InvalidParameterValueError(f"Unknown fault fields: {', '.join(unknown)}")
        try:
            kind = FaultKind(str(record.get("kind")))
        except ValueError:
            raise InvalidParameterValueError(
                f"Unknown fault kind {record.get('kind')!r}; one of "
                + ", ".join(k.value for k in FaultKind)
            ) from None
        values = {**record, "kind": kind}
        for name, types in (("operation", str), ("vault", str), ("job", str), ("code", str),
                            ("message", str), ("times", int), ("status", int),
                            ("after_bytes", int), ("seed", int), ("probability", (int, float))):
            value = values.get(name)
            if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
                raise InvalidParameterValueError(f"Fault field {name} has the wrong type")
        if values.get("after_bytes") is None:
            values.pop("after_bytes", None)
        return cls(**values).checked()

    def checked(self) -> Fault:
        """This rule, if it makes sense; InvalidParameterValueError saying why otherwise."""
        if self.kind is FaultKind.FAIL_JOB:
            if self.operation is not None:
                raise InvalidParameterValueError("fail_job applies to jobs, not an operation")
        elif not self.operation:
            raise InvalidParameterValueError(f"{self.kind.value} needs an operation")
        if self.kind in (FaultKind.CORRUPT_BODY, FaultKind.DROP_CONNECTION,
                         FaultKind.STRIP_CHECKSUM) and (
            self.operation not in _BODY_OPERATIONS
        ):
            raise InvalidParameterValueError(
                f"{self.kind.value} applies to {', '.join(sorted(_BODY_OPERATIONS))}"
            )
        if self.kind is FaultKind.ERROR:
            if not self.code:
                raise InvalidParameterValueError("An error fault needs a Glacier error code")
            if self.status is None or not 400 <= self.status <= 599:
                raise InvalidParameterValueError("An error fault's status is 400 to 599")
        if self.times is not None and self.times < 1:
            raise InvalidParameterValueError("times is 1 or more")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise InvalidParameterValueError("probability is between 0 and 1")
        if self.after_bytes < 0:
            raise InvalidParameterValueError("after_bytes is 0 or more")
        return self

    @property
    def error_type(self) -> str:
        return "Server" if self.status in _SERVER_STATUSES else "Client"
