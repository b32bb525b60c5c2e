"""Console sessions that end for good, and limits on failed sign-ins, kept in the metadata
store so that every server on the database agrees.

A session cookie is checked by its MAC alone (see :mod:`icevault.server.console.session`);
what the MAC cannot know is kept here: a session signed out, and every session of an access
key made before the key was disabled or deleted (enabling the key again does not bring those
back). Failed sign-ins are counted per client address and per access key in one-minute
windows; past the limit, sign-ins from that address or for that key are refused until the
window ends, right secret or not, so a guesser learns nothing from trying on.
"""

from __future__ import annotations

import hashlib

from icevault.core.errors import GlacierError
from icevault.service.context import Context

SESSION_LIFETIME_S = 8 * 3600
WINDOW_MS = 60_000
MAX_FAILURES_PER_ADDRESS = 20
MAX_FAILURES_PER_KEY = 10


class SignInLimitedError(GlacierError):
    """Too many failed sign-ins from one address or for one key (the console's 429)."""

    code = "ThrottlingException"
    status = 429


def session_digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


class SessionService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def now_s(self) -> float:
        return self.ctx.clock.now_ms() / 1000

    # -- sessions -------------------------------------------------------------------------
    def has_ended(self, key_id: str, issued_at_s: int, cookie: str) -> bool:
        """Whether a session whose MAC checks out was nonetheless ended."""
        ended = self.ctx.meta.sessions_ended_at(
            [f"key:{key_id}", f"session:{session_digest(cookie)}"])
        return ended is not None and issued_at_s * 1000 <= ended

    def sign_out(self, cookie: str, expires_s: int) -> None:
        self.ctx.meta.end_sessions(f"session:{session_digest(cookie)}", self.ctx.clock.now_ms(),
                                   expires_s * 1000)

    def end_key_sessions(self, key_id: str) -> None:
        """Every session of the key made until now is over (the key was disabled or
        deleted), whatever becomes of the key."""
        now = self.ctx.clock.now_ms()
        self.ctx.meta.end_sessions(f"key:{key_id}", now, now + SESSION_LIFETIME_S * 1000)

    # -- sign-in attempts -----------------------------------------------------------------
    def check_sign_in(self, address: str | None, key_id: str) -> None:
        """Refuse a sign-in from an address, or for a key, that failed too often of late."""
        now = self.ctx.clock.now_ms()
        since = now - WINDOW_MS
        by_address = self.ctx.meta.sign_in_failures([f"address:{address}"], since)
        by_key = self.ctx.meta.sign_in_failures([f"key:{key_id[:128]}"], since)
        if by_address >= MAX_FAILURES_PER_ADDRESS or by_key >= MAX_FAILURES_PER_KEY:
            raise SignInLimitedError(
                "Too many failed sign-ins from this address or for this access key: wait a "
                "minute and try again.", headers={"Retry-After": str(WINDOW_MS // 1000)})

    def note_failure(self, address: str | None, key_id: str) -> None:
        self.ctx.meta.note_sign_in_failure(
            [f"address:{address}", f"key:{key_id[:128]}"], self.ctx.clock.now_ms(), WINDOW_MS)

    def forget_old(self) -> None:
        self.ctx.meta.forget_console_state(self.ctx.clock.now_ms(), WINDOW_MS)
