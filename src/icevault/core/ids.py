"""Opaque identifiers in Glacier's style: long, URL-safe, never starting with '-'."""

from __future__ import annotations

import secrets

# Lengths close to what AWS hands out, so clients that store ids see familiar sizes.
ARCHIVE_ID_BYTES = 103  # 138 characters
JOB_ID_BYTES = 69  # 92 characters
UPLOAD_ID_BYTES = 69
LOCK_ID_BYTES = 24


def _token(nbytes: int) -> str:
    # A leading '-' makes the id look like an option to command-line parsers (the AWS CLI
    # among them), so draw again until it does not start with one.
    while True:
        token = secrets.token_urlsafe(nbytes)
        if not token.startswith("-"):
            return token


def new_archive_id() -> str:
    return _token(ARCHIVE_ID_BYTES)


def new_job_id() -> str:
    return _token(JOB_ID_BYTES)


def new_upload_id() -> str:
    return _token(UPLOAD_ID_BYTES)


def new_lock_id() -> str:
    return _token(LOCK_ID_BYTES)


def new_blob_key() -> str:
    return secrets.token_hex(16)


def new_account_id() -> str:
    return f"{secrets.randbelow(10**12):012d}"
