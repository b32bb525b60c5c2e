"""Who is calling: accounts, users and their access keys."""

from __future__ import annotations

import enum
import re
import secrets
import string
from dataclasses import dataclass

USER_NAME_RE = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")


class KeyStatus(enum.StrEnum):
    ACTIVE = "Active"
    INACTIVE = "Inactive"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request. ``user`` is None for the account's root."""

    account_id: str
    user: str | None
    access_key_id: str | None

    @property
    def is_root(self) -> bool:
        return self.user is None

    @property
    def arn(self) -> str:
        if self.user is None:
            return f"arn:aws:iam::{self.account_id}:root"
        return f"arn:aws:iam::{self.account_id}:user/{self.user}"


@dataclass(frozen=True, slots=True)
class AccessKey:
    id: str
    secret: str
    account_id: str
    user: str | None
    status: KeyStatus
    created_at: int


_KEY_ALPHABET = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


def new_access_key_id() -> str:
    # AWS-shaped (20 characters, uppercase); the 'AKIV' prefix marks icevault keys.
    return "AKIV" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))


def new_secret_key() -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
