"""The server's log formats: ``--log-format text`` (a line a person reads) or ``json`` (one
JSON object per line, with python-json-logger, for a log pipeline).

Records that describe an event (a request, a job completed, a sweep) carry their fields as
record attributes with an ``event`` among them: JSON writes them as fields, text appends them
as ``key=value``. Every handler also gets the redacting filter (:mod:`redact`).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter

from icevault.core.text import escape
from icevault.server import redact

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Start and stop: always logged, whatever --log-level says (whoever started the server reads
# the port it listens on from here).
LIFECYCLE = "icevault.lifecycle"
# What logging.LogRecord has of its own; anything else on a record came in ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName"}


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        # The message and its arguments are escaped; a traceback, added after this by
        # format(), keeps its lines (the server writes it, not a client).
        return escape(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if not hasattr(record, "event"):
            return line
        fields = " ".join(
            f"{key}={'-' if value is None else escape(str(value))}"
            for key, value in record.__dict__.items() if key not in _STANDARD and key != "event")
        return f"{line} {fields}"


class UtcJsonFormatter(JsonFormatter):
    """JSON lines whose ``time`` is ISO 8601 in UTC with milliseconds and a ``Z``, as log
    pipelines parse without being told a format or a zone."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def configure(level: str, log_format: str) -> None:
    """Log to standard error in ``log_format`` ("text" or "json") at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(UtcJsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        ))
    else:
        handler.setFormatter(TextFormatter())
    redact.install(handler)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    logging.getLogger(LIFECYCLE).setLevel(logging.INFO)
    # Alembic narrates every migration step at INFO; a server's log needs none of it.
    logging.getLogger("alembic").setLevel(logging.WARNING)
