"""The console's session: a signed cookie, and the CSRF token bound to it.

A session is ``<access key id>.<expiry>.<mac>``, where the MAC is an HMAC-SHA256 keyed by the
access key's own secret. Any server sharing the database checks it with nothing but the key
record (no session table, no shared server secret), the cookie holds no secret, and disabling
or deleting the key ends every session made with it at the next request. What a MAC cannot
say (a session signed out, a key disabled and enabled again) the store keeps
(:mod:`icevault.service.sessions`).

Written here rather than taken from a library: aiohttp-session's encrypted cookies need a
secret every server shares, which icevault would have to invent, store and rotate, whereas
the access key already is a per-user secret the server holds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from icevault.service.sessions import SESSION_LIFETIME_S

COOKIE = "icevault_console"
# The sign-in form's own token (a session does not exist yet): a cookie and a hidden field
# that must agree, so another site cannot sign a browser in to an account of its choosing.
SIGN_IN_COOKIE = "icevault_console_signin"
LIFETIME_S = SESSION_LIFETIME_S
_SHAPE = re.compile(r"^([A-Za-z0-9]{16,128})\.(\d{1,12})\.([0-9a-f]{64})$")


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str
    expires: int  # seconds since the epoch

    @property
    def issued(self) -> int:
        return self.expires - LIFETIME_S

    def csrf_token(self, secret: str) -> str:
        """The token every form of this session carries back."""
        return _mac(secret, f"csrf:{self.key_id}.{self.expires}")


def _mac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def issue(key_id: str, secret: str, now: float | None = None) -> tuple[Session, str]:
    """A new session for a checked key, and its cookie value."""
    expires = int((time.time() if now is None else now) + LIFETIME_S)
    session = Session(key_id, expires)
    return session, f"{key_id}.{expires}.{_mac(secret, f'session:{key_id}.{expires}')}"


_KEY_ID = re.compile(r"[A-Za-z0-9]{16,128}")
# With --auth off any key signs in; one that is not AWS-shaped gets a session under this id.
ANY_KEY = "AUTHOFFANYKEY0000000"


def session_key_id(key_id: str) -> str:
    return key_id if _KEY_ID.fullmatch(key_id) else ANY_KEY


def parse(cookie: str | None) -> tuple[str, int, str] | None:
    """The cookie's key id, expiry and MAC, unchecked; None when it is not a session."""
    match = _SHAPE.fullmatch(cookie or "")
    if match is None:
        return None
    return match.group(1), int(match.group(2)), match.group(3)


def verify(parts: tuple[str, int, str], secret: str, now: float | None = None) -> Session | None:
    """The session, when the MAC is the key's and it has not expired."""
    key_id, expires, mac = parts
    if expires < (time.time() if now is None else now):
        return None
    if not hmac.compare_digest(mac, _mac(secret, f"session:{key_id}.{expires}")):
        return None
    return Session(key_id, expires)


def same_token(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
