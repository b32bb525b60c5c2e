"""Glacier errors as typed exceptions, each carrying its wire identity.

Every error the service can answer with is a subclass of :class:`GlacierError` holding the
AWS error ``code``, the fault ``type`` ("Client" or "Server") and the HTTP ``status``. Only
``icevault.server.errors`` turns them into responses.

    GlacierError
    ├── ResourceNotFoundError            404  ResourceNotFoundException
    ├── InvalidParameterValueError       400  InvalidParameterValueException
    │   └── BodyChecksumMismatchError         (uploaded bytes that fail their tree hash)
    ├── MissingParameterValueError       400  MissingParameterValueException
    ├── LimitExceededError               400  LimitExceededException
    ├── PolicyEnforcedError              400  PolicyEnforcedException
    ├── SerializationError               400  SerializationException
    ├── RequestTimeoutError              408  RequestTimeoutException
    ├── AccessDeniedError                403  AccessDeniedException
    ├── MissingAuthenticationTokenError  400  MissingAuthenticationTokenException
    ├── UnrecognizedClientError          400  UnrecognizedClientException
    ├── IncompleteSignatureError         400  IncompleteSignatureException
    ├── InvalidSignatureError            403  InvalidSignatureException
    └── ServiceUnavailableError          500  ServiceUnavailableException (type Server)
        └── StorageUnavailableError      503  ServiceUnavailableException (disk full,
                                              read-only storage; retry later)
"""

from __future__ import annotations

from typing import ClassVar


class GlacierError(Exception):
    """Base of every error that has a Glacier wire form."""

    code: ClassVar[str] = "ServiceUnavailableException"
    status: ClassVar[int] = 500
    type: ClassVar[str] = "Client"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class ResourceNotFoundError(GlacierError):
    code = "ResourceNotFoundException"
    status = 404


class InvalidParameterValueError(GlacierError):
    code = "InvalidParameterValueException"
    status = 400


class BodyChecksumMismatchError(InvalidParameterValueError):
    """Uploaded bytes that do not hash to the tree hash the client sent (counted as a
    metric: in healthy operation, never)."""


class MissingParameterValueError(GlacierError):
    code = "MissingParameterValueException"
    status = 400


class LimitExceededError(GlacierError):
    code = "LimitExceededException"
    status = 400


class PolicyEnforcedError(GlacierError):
    code = "PolicyEnforcedException"
    status = 400


class SerializationError(GlacierError):
    code = "SerializationException"
    status = 400


class RequestTimeoutError(GlacierError):
    code = "RequestTimeoutException"
    status = 408


class AccessDeniedError(GlacierError):
    code = "AccessDeniedException"
    status = 403


class MissingAuthenticationTokenError(GlacierError):
    code = "MissingAuthenticationTokenException"
    status = 400


class UnrecognizedClientError(GlacierError):
    code = "UnrecognizedClientException"
    status = 400


class IncompleteSignatureError(GlacierError):
    code = "IncompleteSignatureException"
    status = 400


class InvalidSignatureError(GlacierError):
    code = "InvalidSignatureException"
    status = 403


class ServiceUnavailableError(GlacierError):
    code = "ServiceUnavailableException"
    status = 500
    type = "Server"


class StorageUnavailableError(ServiceUnavailableError):
    """Storage cannot take writes now (full, read-only); reads go on. 503 with Retry-After,
    which every SDK retries."""

    status = 503

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "30"})
