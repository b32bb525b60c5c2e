"""Accounts, access keys, users and their identity policies."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import (
    Connection,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from icevault.core.identity import AccessKey, KeyStatus
from icevault.core.ids import new_account_id
from icevault.store.metadata import schema as t
from icevault.store.metadata.base import IdentityPort
from icevault.store.metadata.sql.engine import SqlEngine

_BOOTSTRAP_KEY = "bootstrap_key"  # the first account's root key, made at first start
_INSTALLATION_KEY = "installation_id"  # see IdentityPort.installation_id


def _key(row: Any) -> AccessKey:
    return AccessKey(row.id, row.secret, row.account_id, row.user_name, KeyStatus(row.status),
                     row.created_at)


def _insert_key(conn: Connection, key: AccessKey) -> None:
    conn.execute(insert(t.access_keys).values(
        id=key.id, secret=key.secret, account_id=key.account_id, user_name=key.user,
        status=key.status, created_at=key.created_at))


class IdentityRows(SqlEngine, IdentityPort):
    # -- accounts -------------------------------------------------------------------------
    def default_account(self) -> str:
        if self._default_account is not None:
            return self._default_account
        try:
            return self._default_account_once()
        except IntegrityError:
            # Servers starting together on one PostgreSQL database: another one created it.
            return self._default_account_once()

    def _default_account_once(self) -> str:
        with self._account_lock, self._tx(write=True) as conn:
            row = conn.execute(
                select(t.settings.c.value).where(t.settings.c.key == "default_account")
            ).first()
            if row is None:
                account = new_account_id()
                conn.execute(insert(t.accounts).values(id=account, created_at=0))
                conn.execute(insert(t.settings).values(key="default_account", value=account))
            else:
                account = row[0]
            self._default_account = account
            return account

    def installation_id(self) -> str:
        # Asked before every sweep of a copy store: read (and made) once per process.
        if self._installation_id is None:
            try:
                self._installation_id = self._installation_id_once()
            except IntegrityError:
                # Servers starting together on one PostgreSQL database: another one made it.
                self._installation_id = self._installation_id_once()
        return self._installation_id

    def _installation_id_once(self) -> str:
        with self._tx(write=True) as conn:
            row = conn.execute(
                select(t.settings.c.value).where(t.settings.c.key == _INSTALLATION_KEY)
            ).first()
            if row is not None:
                return str(row[0])
            made = secrets.token_hex(16)
            conn.execute(insert(t.settings).values(key=_INSTALLATION_KEY, value=made))
            return made

    def create_account(self, account_id: str, now: int) -> bool:
        """False when the account already exists."""
        with self._tx(write=True) as conn:
            exists = conn.execute(
                select(t.accounts.c.id).where(t.accounts.c.id == account_id)
            ).first()
            if exists is not None:
                return False
            conn.execute(insert(t.accounts).values(id=account_id, created_at=now))
            return True

    def account_exists(self, account_id: str) -> bool:
        with self._tx() as conn:
            return (
                conn.execute(select(t.accounts.c.id).where(t.accounts.c.id == account_id)).first()
                is not None
            )

    # -- access keys ----------------------------------------------------------------------
    def insert_access_key(self, key: AccessKey) -> None:
        with self._tx(write=True) as conn:
            _insert_key(conn, key)

    def get_access_key(self, key_id: str) -> AccessKey | None:
        rows = self._fast_rows("key", {"key_id": key_id})
        row = rows[0] if rows else None
        if row is None:
            return None
        return _key(row)

    def claim_bootstrap_key(self, key: AccessKey) -> AccessKey:
        try:
            return self._claim_bootstrap_key(key)
        except IntegrityError:  # another server starting at the same time claimed it first
            return self._claim_bootstrap_key(key)

    def _claim_bootstrap_key(self, key: AccessKey) -> AccessKey:
        with self._tx(write=True) as conn:
            claimed = conn.execute(
                select(t.settings.c.value).where(t.settings.c.key == _BOOTSTRAP_KEY)).first()
            if claimed is not None:
                row = conn.execute(
                    select(t.access_keys).where(t.access_keys.c.id == claimed[0])).first()
                assert row is not None, "the bootstrap key is recorded with its key"
                return _key(row)
            conn.execute(insert(t.settings).values(key=_BOOTSTRAP_KEY, value=key.id))
            _insert_key(conn, key)
            return key

    def count_access_keys(self) -> int:
        with self._tx() as conn:
            return conn.execute(select(func.count()).select_from(t.access_keys)).scalar_one()
    # -- users, keys and identity policies ------------------------------------------------
    def create_user(self, account_id: str, name: str, now: int) -> bool:
        with self._tx(write=True) as conn:
            exists = conn.execute(
                select(t.users.c.name).where(t.users.c.account_id == account_id, t.users.c.name == name)
            ).first()
            if exists is not None:
                return False
            conn.execute(insert(t.users).values(account_id=account_id, name=name, created_at=now))
            return True

    def user_exists(self, account_id: str, name: str) -> bool:
        with self._tx() as conn:
            return conn.execute(
                select(t.users.c.name).where(t.users.c.account_id == account_id, t.users.c.name == name)
            ).first() is not None

    def list_users(self, account_id: str) -> list[str]:
        with self._tx() as conn:
            return [
                r[0]
                for r in conn.execute(
                    select(t.users.c.name).where(t.users.c.account_id == account_id).order_by(t.users.c.name)
                )
            ]

    def delete_user(self, account_id: str, name: str) -> bool:
        with self._tx(write=True) as conn:
            gone = conn.execute(
                delete(t.users).where(t.users.c.account_id == account_id, t.users.c.name == name)
            ).rowcount
            conn.execute(
                delete(t.access_keys).where(
                    t.access_keys.c.account_id == account_id, t.access_keys.c.user_name == name
                )
            )
            conn.execute(
                delete(t.identity_policies).where(
                    t.identity_policies.c.account_id == account_id,
                    t.identity_policies.c.user_name == name,
                )
            )
            return bool(gone)

    def list_access_keys(self, account_id: str) -> list[AccessKey]:
        with self._tx() as conn:
            rows = conn.execute(
                select(t.access_keys).where(t.access_keys.c.account_id == account_id)
                .order_by(t.access_keys.c.created_at)
            )
            return [
                _key(r)
                for r in rows
            ]

    def set_access_key_status(self, key_id: str, status: KeyStatus) -> bool:
        with self._tx(write=True) as conn:
            return bool(
                conn.execute(
                    update(t.access_keys).where(t.access_keys.c.id == key_id).values(status=status)
                ).rowcount
            )

    def delete_access_key(self, key_id: str) -> bool:
        with self._tx(write=True) as conn:
            return bool(conn.execute(delete(t.access_keys).where(t.access_keys.c.id == key_id)).rowcount)

    def put_user_policy(self, account_id: str, user: str, name: str, document: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                delete(t.identity_policies).where(
                    t.identity_policies.c.account_id == account_id,
                    t.identity_policies.c.user_name == user,
                    t.identity_policies.c.policy_name == name,
                )
            )
            conn.execute(
                insert(t.identity_policies).values(
                    account_id=account_id, user_name=user, policy_name=name, document=document
                )
            )

    def delete_user_policy(self, account_id: str, user: str, name: str) -> bool:
        with self._tx(write=True) as conn:
            return bool(
                conn.execute(
                    delete(t.identity_policies).where(
                        t.identity_policies.c.account_id == account_id,
                        t.identity_policies.c.user_name == user,
                        t.identity_policies.c.policy_name == name,
                    )
                ).rowcount
            )

    def user_policies(self, account_id: str, user: str) -> list[tuple[str, str]]:
        with self._tx() as conn:
            rows = conn.execute(
                select(t.identity_policies.c.policy_name, t.identity_policies.c.document)
                .where(
                    t.identity_policies.c.account_id == account_id,
                    t.identity_policies.c.user_name == user,
                )
                .order_by(t.identity_policies.c.policy_name)
            )
            return [(r[0], r[1]) for r in rows]
