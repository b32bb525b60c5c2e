"""What the services cache, and for how long, measured on the injected clock: a change
made through one server applies on another within --cache-ttl, with no test sleeping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from icevault.config import ServerSettings
from icevault.core.errors import AccessDeniedError
from icevault.core.identity import KeyStatus, Principal
from icevault.service.access import AccessRequest
from icevault.service.context import Timing
from icevault.service.glacier import Glacier
from icevault.service.sessions import SignInLimitedError
from icevault.store.metadata.sql import SqlMetadataStore
from tests.service.conftest import make_glacier
from tests.support import ManualClock

TTL_MS = Timing.of(ServerSettings()).cache_ttl_ms


def _status(glacier: Glacier, key_id: str) -> KeyStatus:
    key = glacier.identity.lookup_key(key_id)
    assert key is not None
    return key.status


def test_a_key_disabled_elsewhere_stops_working_within_the_cache_lifetime(
        meta: SqlMetadataStore, tmp_path: Path, clock: ManualClock) -> None:
    here, there = make_glacier(meta, tmp_path, clock), make_glacier(meta, tmp_path, clock)
    account = here.identity.default_account()
    key = here.identity.new_key(account, None)
    assert _status(here, key.id) is KeyStatus.ACTIVE  # now cached here
    there.identity.set_key_status(key.id, KeyStatus.INACTIVE)  # another server
    clock.advance(TTL_MS - 1)
    assert _status(here, key.id) is KeyStatus.ACTIVE  # still cached
    clock.advance(1)
    assert _status(here, key.id) is KeyStatus.INACTIVE


def test_a_policy_removed_elsewhere_stops_allowing_within_the_cache_lifetime(
        meta: SqlMetadataStore, tmp_path: Path, clock: ManualClock) -> None:
    here, there = make_glacier(meta, tmp_path, clock), make_glacier(meta, tmp_path, clock)
    account = here.identity.default_account()
    here.identity.create_user(account, "ann")
    here.identity.put_user_policy(account, "ann", "p", json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "glacier:ListVaults", "Resource": "*"}]}))
    ann = AccessRequest(principal=Principal(account, "ann", None), operation="ListVaults",
                        account_id=account, vault=None, source_ip=None, secure_transport=False)
    here.access.authorize(ann)
    there.identity.delete_user_policy(account, "ann", "p")
    here.access.authorize(ann)  # the cached policy
    clock.advance(TTL_MS)
    with pytest.raises(AccessDeniedError):
        here.access.authorize(ann)


def test_sign_in_limits_count_per_minute(meta: SqlMetadataStore, tmp_path: Path,
                                         clock: ManualClock) -> None:
    here, there = make_glacier(meta, tmp_path, clock), make_glacier(meta, tmp_path, clock)
    for _ in range(10):
        here.sessions.check_sign_in("10.0.0.1", "AKIVGUESSEDKEY000000")
        there.sessions.note_failure("10.0.0.1", "AKIVGUESSEDKEY000000")
    with pytest.raises(SignInLimitedError) as limited:
        here.sessions.check_sign_in("10.0.0.2", "AKIVGUESSEDKEY000000")  # the key's limit
    assert limited.value.status == 429 and limited.value.headers["Retry-After"] == "60"
    here.sessions.check_sign_in("10.0.0.1", "AKIVANOTHERKEY000000")  # 10 of 20 per address
    clock.advance(60_000)
    here.sessions.check_sign_in("10.0.0.2", "AKIVGUESSEDKEY000000")  # a new minute


def test_a_signed_out_session_and_a_disabled_keys_sessions_end(
        meta: SqlMetadataStore, tmp_path: Path, clock: ManualClock) -> None:
    glacier = make_glacier(meta, tmp_path, clock)
    key = glacier.identity.new_key(glacier.identity.default_account(), None)
    issued = clock.now // 1000
    assert not glacier.sessions.has_ended(key.id, issued, "cookie-a")
    glacier.sessions.sign_out("cookie-a", issued + 8 * 3600)
    assert glacier.sessions.has_ended(key.id, issued, "cookie-a")
    assert not glacier.sessions.has_ended(key.id, issued, "cookie-b")
    clock.advance(5000)
    glacier.identity.set_key_status(key.id, KeyStatus.INACTIVE)
    glacier.identity.set_key_status(key.id, KeyStatus.ACTIVE)
    assert glacier.sessions.has_ended(key.id, issued, "cookie-b")  # re-enabling revives none
    clock.advance(1000)
    assert not glacier.sessions.has_ended(key.id, clock.now // 1000, "cookie-c")
