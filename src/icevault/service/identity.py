"""Accounts and access keys: first-start bootstrap and the key lookup used by SigV4."""

from __future__ import annotations

import threading
from pathlib import Path

from icevault.core.errors import InvalidParameterValueError, ResourceNotFoundError
from icevault.core.identity import (
    USER_NAME_RE,
    AccessKey,
    KeyStatus,
    Principal,
    new_access_key_id,
    new_secret_key,
)
from icevault.core.ids import new_account_id
from icevault.core.models import ACCOUNT_ID_RE
from icevault.core.policy import parse_policy
from icevault.service.context import Context
from icevault.service.sessions import SessionService
from icevault.store.paths import write_private_file

CREDENTIALS_FILE = "credentials"
PROFILE = "icevault"


def write_credentials_file(path: Path, key: AccessKey, region: str) -> None:
    """Write (mode 0600, atomically) an AWS credentials file with profile ``icevault``."""
    text = (
        f"[{PROFILE}]\n"
        f"aws_access_key_id = {key.id}\n"
        f"aws_secret_access_key = {key.secret}\n"
        f"region = {region}\n"
    )
    write_private_file(path, text.encode())


class IdentityService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._cache: dict[str, tuple[int, AccessKey | None]] = {}
        self._lock = threading.Lock()
        self.sessions = SessionService(ctx)

    def bootstrap(self, data_dir: Path) -> AccessKey | None:
        """On first start, create the default account's root key and write it to
        ``<data-dir>/credentials``; return it, or None when it was made before.

        Several servers starting together on one database make one key: the first to claim
        it wins, and the others write that same key to their own data directories."""
        account = self.ctx.meta.default_account()
        if self.ctx.meta.count_access_keys() and (
                (data_dir / CREDENTIALS_FILE).exists()
                or self.ctx.meta.get_setting("bootstrap_key") is None):
            # Started before; or keys made before any server started (by the admin commands).
            return None
        mine = AccessKey(id=new_access_key_id(), secret=new_secret_key(), account_id=account,
                         user=None, status=KeyStatus.ACTIVE, created_at=self.ctx.clock.now_ms())
        key = self.ctx.meta.claim_bootstrap_key(mine)
        if not (data_dir / CREDENTIALS_FILE).exists():
            write_credentials_file(data_dir / CREDENTIALS_FILE, key, self.ctx.region)
        return key if key.id == mine.id else None

    def create_key(self, account_id: str, user: str | None) -> AccessKey:
        key = AccessKey(
            id=new_access_key_id(),
            secret=new_secret_key(),
            account_id=account_id,
            user=user,
            status=KeyStatus.ACTIVE,
            created_at=self.ctx.clock.now_ms(),
        )
        self.ctx.meta.insert_access_key(key)
        return key

    def lookup_key(self, key_id: str) -> AccessKey | None:
        now = self.ctx.clock.monotonic_ms()
        with self._lock:
            cached = self._cache.get(key_id)
        # Cached briefly, so a busy server does not query for every request, while a disabled
        # or deleted key stops working within the cache's lifetime.
        if cached is not None and now - cached[0] < self.ctx.timing.cache_ttl_ms:
            return cached[1]
        key = self.ctx.meta.get_access_key(key_id)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_id] = (now, key)
        return key

    def default_account(self) -> str:
        """The server's first account: the one its operator's root key belongs to."""
        return self.ctx.meta.default_account()

    def is_operator(self, principal: Principal) -> bool:
        """The server's operator: the root of its first account, whose key the first start
        writes to ``<data-dir>/credentials`` (whoever can read the data directory)."""
        return principal.is_root and principal.account_id == self.ctx.meta.default_account()

    # -- administration (the ``icevault admin`` commands) ---------------------------------
    def create_account(self, account_id: str | None = None) -> tuple[str, AccessKey]:
        """A new account and its root access key."""
        account = account_id or new_account_id()
        if not ACCOUNT_ID_RE.fullmatch(account):
            raise InvalidParameterValueError(f"Invalid account id: {account} (12 digits)")
        if not self.ctx.meta.create_account(account, self.ctx.clock.now_ms()):
            raise InvalidParameterValueError(f"Account {account} already exists")
        return account, self.create_key(account, None)

    def require_account(self, account_id: str) -> None:
        if not self.ctx.meta.account_exists(account_id):
            raise ResourceNotFoundError(f"No such account: {account_id}")

    def require_user(self, account_id: str, user: str) -> None:
        self.require_account(account_id)
        if not self.ctx.meta.user_exists(account_id, user):
            raise ResourceNotFoundError(f"No such user in account {account_id}: {user}")

    def create_user(self, account_id: str, user: str) -> None:
        self.require_account(account_id)
        if not USER_NAME_RE.fullmatch(user):
            raise InvalidParameterValueError(
                f"Invalid user name: {user!r} (1-64 of letters, digits and +=,.@_-)"
            )
        if not self.ctx.meta.create_user(account_id, user, self.ctx.clock.now_ms()):
            raise InvalidParameterValueError(f"User {user} already exists in account {account_id}")

    def delete_user(self, account_id: str, user: str) -> None:
        for key in self.ctx.meta.list_access_keys(account_id):
            if key.user == user:
                self.sessions.end_key_sessions(key.id)
        if not self.ctx.meta.delete_user(account_id, user):
            raise ResourceNotFoundError(f"No such user in account {account_id}: {user}")
        self._forget_keys()

    def new_key(self, account_id: str, user: str | None) -> AccessKey:
        if user is None:
            self.require_account(account_id)
        else:
            self.require_user(account_id, user)
        return self.create_key(account_id, user)

    def set_key_status(self, key_id: str, status: KeyStatus) -> None:
        if status is KeyStatus.INACTIVE:
            # Before the key changes: no console session of it outlives the change, and
            # enabling it again brings none back.
            self.sessions.end_key_sessions(key_id)
        if not self.ctx.meta.set_access_key_status(key_id, status):
            raise ResourceNotFoundError(f"No such access key: {key_id}")
        self._forget_keys()

    def delete_key(self, key_id: str) -> None:
        self.sessions.end_key_sessions(key_id)
        if not self.ctx.meta.delete_access_key(key_id):
            raise ResourceNotFoundError(f"No such access key: {key_id}")
        self._forget_keys()

    def put_user_policy(self, account_id: str, user: str, name: str, document: str) -> None:
        self.require_user(account_id, user)
        if not name or len(name) > 128:
            raise InvalidParameterValueError("A policy name is 1 to 128 characters")
        parse_policy(document, resource_policy=False)
        self.ctx.meta.put_user_policy(account_id, user, name, document)

    def delete_user_policy(self, account_id: str, user: str, name: str) -> None:
        if not self.ctx.meta.delete_user_policy(account_id, user, name):
            raise ResourceNotFoundError(f"User {user} has no policy named {name}")

    def _forget_keys(self) -> None:
        with self._lock:
            self._cache.clear()
