"""Accounts and access keys: first-start bootstrap and the key lookup used by SigV4."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from icevault.core.identity import AccessKey, KeyStatus, new_access_key_id, new_secret_key
from icevault.service.context import Context

CREDENTIALS_FILE = "credentials"
PROFILE = "icevault"
# Keys are cached briefly so a busy server does not query for every request, while a
# disabled or deleted key stops working within this many seconds.
KEY_CACHE_S = 5.0


def write_credentials_file(path: Path, key: AccessKey, region: str) -> None:
    """Write (mode 0600, atomically) an AWS credentials file with profile ``icevault``."""
    text = (
        f"[{PROFILE}]\n"
        f"aws_access_key_id = {key.id}\n"
        f"aws_secret_access_key = {key.secret}\n"
        f"region = {region}\n"
    )
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.rename(tmp, path)


class IdentityService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._cache: dict[str, tuple[float, AccessKey | None]] = {}
        self._lock = threading.Lock()

    def bootstrap(self, data_dir: Path) -> AccessKey | None:
        """On first start, create the default account's root key and write it to
        ``<data-dir>/credentials``; return it, or None when keys already exist."""
        account = self.ctx.meta.default_account()
        if self.ctx.meta.count_access_keys():
            return None
        key = self.create_key(account, None)
        write_credentials_file(data_dir / CREDENTIALS_FILE, key, self.ctx.region)
        return key

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
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < KEY_CACHE_S:
            return cached[1]
        key = self.ctx.meta.get_access_key(key_id)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_id] = (now, key)
        return key
