"""Errors of the client, each with the exit code the CLI gives it.

    ClientError                      1  anything that stops a transfer
    ├── ChecksumMismatchError        3  bytes that do not match their tree hash or size
    ├── RetriesExceededError       1/3  a chunk failed every attempt (keeps the last error;
    │                                   3 when that was a checksum mismatch)
    ├── JobNotReadyError             4  the job is in progress or failed
    └── JobExpiredError              4  the job is gone (expired or never existed)
"""

from __future__ import annotations


class ClientError(Exception):
    exit_code = 1


class ChecksumMismatchError(ClientError):
    exit_code = 3


class RetriesExceededError(ClientError):
    def __init__(
        self, message: str, last_exception: BaseException | None, *, verification: bool = False
    ) -> None:
        super().__init__(message)
        self.last_exception = last_exception
        # Bytes that kept failing their checksum are a verification failure, not a network
        # one: the documented exit code says so.
        self.verification = verification
        if verification:
            self.exit_code = ChecksumMismatchError.exit_code


class JobNotReadyError(ClientError):
    exit_code = 4


class JobExpiredError(ClientError):
    exit_code = 4
