"""Secrets never reach a log line.

A presigned URL's ``X-Amz-Signature`` is a bearer credential until it expires, and an
``Authorization`` header's signature can be replayed within the clock-skew window; whoever
reads the log must not be able to reuse either. The filter rewrites every record, whatever
logger it comes from (aiohttp's included), before any handler formats it.
"""

from __future__ import annotations

import logging
import re

_SECRET_RE = re.compile(
    r"(?i)(x-amz-signature|x-amz-credential|x-amz-security-token|signature|credential"
    r"|aws_secret_access_key|secretaccesskey)"
    r"(=|%3D|\"?\s*:\s*\"?)([^&\s,\"';]+)"
)


def redact(text: str) -> str:
    return _SECRET_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}REDACTED", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = redact(text), None
        return True


def install(handler: logging.Handler) -> None:
    handler.addFilter(RedactingFilter())
