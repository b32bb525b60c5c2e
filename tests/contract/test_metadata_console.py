"""The metadata contract for console sessions ended early and failed sign-ins, on every
backend (the upserts are written per dialect)."""

from __future__ import annotations

from icevault.store.metadata.base import MetadataStore


def test_ended_sessions_keep_the_latest_end(meta: MetadataStore) -> None:
    assert meta.sessions_ended_at(["key:A", "session:x"]) is None
    meta.end_sessions("key:A", 1000, 5000)
    meta.end_sessions("key:A", 3000, 9000)
    meta.end_sessions("key:A", 2000, 4000)  # an older end never moves it back
    meta.end_sessions("session:x", 2500, 6000)
    assert meta.sessions_ended_at(["key:A"]) == 3000
    assert meta.sessions_ended_at(["key:A", "session:x"]) == 3000
    assert meta.sessions_ended_at(["session:x"]) == 2500
    assert meta.sessions_ended_at(["key:B"]) is None
    meta.forget_console_state(now=7000, window_ms=60_000)  # session:x kept until 6000
    assert meta.sessions_ended_at(["session:x"]) is None
    assert meta.sessions_ended_at(["key:A"]) == 3000
    meta.forget_console_state(now=9001, window_ms=60_000)
    assert meta.sessions_ended_at(["key:A"]) is None


def test_sign_in_failures_count_in_windows(meta: MetadataStore) -> None:
    window = 60_000
    for moment in (1000, 2000, 3000):
        meta.note_sign_in_failure(["address:1.2.3.4", "key:K"], moment, window)
    meta.note_sign_in_failure(["address:1.2.3.4", "key:L"], 4000, window)
    assert meta.sign_in_failures(["address:1.2.3.4"], 4000 - window) == 4
    assert meta.sign_in_failures(["key:K"], 4000 - window) == 3
    assert meta.sign_in_failures(["key:K", "key:L"], 4000 - window) == 3
    assert meta.sign_in_failures(["key:M"], 4000 - window) == 0
    # A new window starts the count again; an old window no longer counts.
    meta.note_sign_in_failure(["key:K"], 1000 + window, window)
    assert meta.sign_in_failures(["key:K"], 1000) == 1
    assert meta.sign_in_failures(["key:L"], 4000 + window) == 0
    meta.forget_console_state(now=4000 + 2 * window, window_ms=window)
    assert meta.sign_in_failures(["address:1.2.3.4", "key:K"], 0) == 0
