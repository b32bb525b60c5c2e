"""The console's session cookie: signed by the key's secret, expiring, and not forgeable."""

from __future__ import annotations

from icevault.server.console import session

KEY, SECRET = "AKIAEXAMPLE000000001", "s3cr3t/with+chars"


def test_a_session_verifies_with_its_key_secret_only() -> None:
    issued, cookie = session.issue(KEY, SECRET, now=1000.0)
    parts = session.parse(cookie)
    assert parts is not None and parts[0] == KEY
    assert session.verify(parts, SECRET, now=1001.0) == issued
    assert session.verify(parts, "another secret", now=1001.0) is None
    assert SECRET not in cookie


def test_an_expired_or_altered_session_is_refused() -> None:
    _, cookie = session.issue(KEY, SECRET, now=1000.0)
    parts = session.parse(cookie)
    assert parts is not None
    assert session.verify(parts, SECRET, now=1000.0 + session.LIFETIME_S + 1) is None
    key_id, expires, mac = parts
    assert session.verify((key_id, expires + 3600, mac), SECRET, now=1001.0) is None
    assert session.verify(("AKIAOTHER00000000001", expires, mac), SECRET, now=1001.0) is None
    for broken in ("", "x", f"{KEY}.abc.{mac}", f"{KEY}.{expires}.{mac[:-1]}", f"{cookie};x"):
        assert session.parse(broken) is None


def test_the_csrf_token_belongs_to_its_session() -> None:
    first, _ = session.issue(KEY, SECRET, now=1000.0)
    later, _ = session.issue(KEY, SECRET, now=2000.0)
    assert first.csrf_token(SECRET) != later.csrf_token(SECRET)
    assert first.csrf_token(SECRET) != first.csrf_token("another secret")
    assert session.same_token(first.csrf_token(SECRET), first.csrf_token(SECRET))
    assert not session.same_token(first.csrf_token(SECRET), None)
    assert not session.same_token(first.csrf_token(SECRET), "")
