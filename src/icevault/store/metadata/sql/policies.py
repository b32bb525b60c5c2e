"""Vault access policies, vault locks, notification configurations and topics."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    Connection,
    delete,
    insert,
    or_,
    select,
    update,
)

from icevault.core.models import (
    LockState,
    NotificationConfig,
    VaultLock,
    VaultRef,
)
from icevault.store.metadata import schema as t
from icevault.store.metadata.base import NO_VAULT, PolicyPort
from icevault.store.metadata.sql.engine import SqlEngine, _lapsed


class PolicyRows(SqlEngine, PolicyPort):
    # -- topics (SNS topic names mapped to registered webhooks) ---------------------------
    def put_topic(self, account_id: str, name: str, url: str, now: int) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                delete(t.topics).where(t.topics.c.account_id == account_id, t.topics.c.name == name)
            )
            conn.execute(
                insert(t.topics).values(account_id=account_id, name=name, url=url, created_at=now)
            )

    def get_topic_url(self, account_id: str, name: str) -> str | None:
        with self._tx() as conn:
            value = conn.execute(
                select(t.topics.c.url).where(
                    t.topics.c.account_id == account_id, t.topics.c.name == name
                )
            ).scalar()
            return None if value is None else str(value)

    def list_topics(self, account_id: str) -> list[tuple[str, str]]:
        with self._tx() as conn:
            rows = conn.execute(
                select(t.topics.c.name, t.topics.c.url)
                .where(t.topics.c.account_id == account_id)
                .order_by(t.topics.c.name)
            )
            return [(row.name, row.url) for row in rows]

    def delete_topic(self, account_id: str, name: str) -> bool:
        with self._tx(write=True) as conn:
            result = conn.execute(
                delete(t.topics).where(t.topics.c.account_id == account_id, t.topics.c.name == name)
            )
            return bool(result.rowcount)
    # -- vault access policy, lock, notifications ----------------------------------------
    def _policy_row(self, conn: Connection, ref: VaultRef, kind: str) -> Any:
        return conn.execute(
            select(t.vault_policies).where(
                t.vault_policies.c.account_id == ref.account_id,
                t.vault_policies.c.vault_name == ref.name,
                t.vault_policies.c.kind == kind,
            )
        ).first()

    def _delete_policy(self, conn: Connection, ref: VaultRef, kind: str) -> None:
        conn.execute(
            delete(t.vault_policies).where(
                t.vault_policies.c.account_id == ref.account_id,
                t.vault_policies.c.vault_name == ref.name,
                t.vault_policies.c.kind == kind,
            )
        )

    def get_access_policy(self, ref: VaultRef) -> str | None:
        with self._tx() as conn:
            row = self._policy_row(conn, ref, "access")
        return None if row is None else row.document

    def get_vault_policies(self, ref: VaultRef, now: int) -> tuple[str | None, VaultLock | None]:
        """The access policy and the lock in force (an expired in-progress lock is none)."""
        access, lock = None, None
        for row in self._fast_rows("vault_policies", {"account": ref.account_id, "name": ref.name}):
            if row.kind == "access":
                access = row.document
            elif row.kind == "lock":
                lock = self._row_to_lock(row)
        if lock is not None and _lapsed(lock, now):
            lock = None
        return access, lock

    def set_access_policy(self, ref: VaultRef, document: str | None, now: int) -> bool:
        """Set (or with None, delete) the vault's access policy; False if no vault."""
        with self._tx(write=True) as conn:
            if not self._vault_exists(conn, ref):
                return False
            self._delete_policy(conn, ref, "access")
            if document is not None:
                conn.execute(
                    insert(t.vault_policies).values(
                        account_id=ref.account_id, vault_name=ref.name, kind="access",
                        document=document, created_at=now,
                    )
                )
            return True

    @staticmethod
    def _row_to_lock(row: Any) -> VaultLock:
        return VaultLock(row.lock_id, row.document, LockState(row.state), row.created_at,
                         row.expires_at)

    def _current_lock(self, conn: Connection, ref: VaultRef, now: int) -> VaultLock | None:
        row = self._policy_row(conn, ref, "lock")
        if row is None:
            return None
        lock = self._row_to_lock(row)
        if _lapsed(lock, now):
            # An in-progress lock not completed within its window silently reverts.
            self._delete_policy(conn, ref, "lock")
            return None
        return lock

    def get_lock(self, ref: VaultRef, now: int) -> VaultLock | None:
        return self.get_vault_policies(ref, now)[1]

    def initiate_lock(self, ref: VaultRef, lock: VaultLock, now: int) -> VaultLock | None:
        """Store an in-progress lock unless one exists; returns the blocking lock if any, or
        ``NO_VAULT`` when the vault does not exist."""
        with self._tx(write=True) as conn:
            if not self._vault_exists(conn, ref):
                return NO_VAULT
            current = self._current_lock(conn, ref, now)
            if current is not None:
                return current
            conn.execute(
                insert(t.vault_policies).values(
                    account_id=ref.account_id, vault_name=ref.name, kind="lock",
                    document=lock.policy, lock_id=lock.lock_id, state=lock.state,
                    created_at=lock.created_at, expires_at=lock.expires_at,
                )
            )
            return None

    def complete_lock(self, ref: VaultRef, lock_id: str, now: int) -> VaultLock | None:
        """Lock the vault if ``lock_id`` names its in-progress lock; return the lock as it
        stands afterwards (None when there is none)."""
        with self._tx(write=True) as conn:
            current = self._current_lock(conn, ref, now)
            if current is None or current.lock_id != lock_id or current.state is LockState.LOCKED:
                return current
            conn.execute(
                update(t.vault_policies)
                .where(
                    t.vault_policies.c.account_id == ref.account_id,
                    t.vault_policies.c.vault_name == ref.name,
                    t.vault_policies.c.kind == "lock",
                )
                .values(state=LockState.LOCKED, expires_at=None)
            )
            return replace(current, state=LockState.LOCKED, expires_at=None)

    def abort_lock(self, ref: VaultRef, now: int) -> VaultLock | None:
        """Remove an in-progress lock; a locked one is returned untouched."""
        with self._tx(write=True) as conn:
            current = self._current_lock(conn, ref, now)
            if current is not None and current.state is LockState.IN_PROGRESS:
                self._delete_policy(conn, ref, "lock")
                return None
            return current

    def get_notifications(self, ref: VaultRef) -> NotificationConfig | None:
        with self._tx() as conn:
            row = conn.execute(
                select(t.vault_notifications).where(
                    t.vault_notifications.c.account_id == ref.account_id,
                    t.vault_notifications.c.vault_name == ref.name,
                )
            ).first()
        if row is None:
            return None
        return NotificationConfig(row.sns_topic, tuple(json.loads(row.events)))

    def set_notifications(self, ref: VaultRef, config: NotificationConfig | None) -> bool:
        with self._tx(write=True) as conn:
            if not self._vault_exists(conn, ref):
                return False
            conn.execute(
                delete(t.vault_notifications).where(
                    t.vault_notifications.c.account_id == ref.account_id,
                    t.vault_notifications.c.vault_name == ref.name,
                )
            )
            if config is not None:
                conn.execute(
                    insert(t.vault_notifications).values(
                        account_id=ref.account_id, vault_name=ref.name,
                        sns_topic=config.sns_topic, events=json.dumps(list(config.events)),
                    )
                )
            return True

    def record_notification(
        self, ref: VaultRef, job_id: str, topic: str, target: str | None, body: str, status: str,
        now: int,
    ) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                insert(t.notification_log).values(
                    account_id=ref.account_id, vault_name=ref.name, job_id=job_id, topic=topic,
                    target=target, body=body, status=status, created_at=now,
                )
            )

    def list_notifications(self, ref: VaultRef) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(
                select(t.notification_log)
                .where(
                    t.notification_log.c.account_id == ref.account_id,
                    t.notification_log.c.vault_name == ref.name,
                )
                .order_by(t.notification_log.c.seq)
            )
            return [dict(row._mapping) for row in rows]

    def delivered_notifications(self, job_id: str) -> set[tuple[str, str]]:
        log = t.notification_log
        with self._tx() as conn:
            rows = conn.execute(
                select(log.c.topic, log.c.target).where(
                    # Refused targets count as settled too: the address policy would
                    # refuse them again.
                    log.c.job_id == job_id,
                    or_(log.c.status.like("delivered%"), log.c.status == "refused"),
                    log.c.target.is_not(None),
                )
            )
            return {(row.topic, row.target) for row in rows}
