"""Vault access policies, vault locks and vault notification configurations."""

from __future__ import annotations

from collections.abc import Callable

from icevault.core.errors import (
    AccessDeniedError,
    InvalidParameterValueError,
    MissingParameterValueError,
    ResourceNotFoundError,
)
from icevault.core.ids import new_lock_id
from icevault.core.models import (
    LockState,
    NotificationConfig,
    VaultLock,
    VaultRef,
    validate_vault_name,
)
from icevault.core.policy import parse_policy
from icevault.service.context import HOUR_MS, Context
from icevault.service.topics import TopicService
from icevault.service.vaults import require_vault, vault_not_found
from icevault.store.metadata.base import NO_VAULT

LOCK_WINDOW_MS = 24 * HOUR_MS
NOTIFICATION_EVENTS = ("ArchiveRetrievalCompleted", "InventoryRetrievalCompleted")


class PolicyService:
    def __init__(self, ctx: Context, on_change: Callable[[VaultRef], None] = lambda _ref: None) -> None:
        self.ctx = ctx
        # Called after any change to a vault's policies (the access service drops its cache).
        self._changed = on_change

    # -- access policy --------------------------------------------------------------------
    def set_access_policy(self, ref: VaultRef, document: str | None) -> None:
        validate_vault_name(ref.name)
        if document is None:
            raise MissingParameterValueError("Required parameter missing: Policy")
        parse_policy(document, resource_policy=True)
        if not self.ctx.meta.set_access_policy(ref, document, self.ctx.clock.now_ms()):
            raise vault_not_found(self.ctx, ref)
        self._changed(ref)

    def get_access_policy(self, ref: VaultRef) -> str:
        validate_vault_name(ref.name)
        document = self.ctx.meta.get_access_policy(ref)
        if document is None:
            require_vault(self.ctx, ref)
            raise ResourceNotFoundError(
                f"No vault access policy is set for: {ref.arn(self.ctx.region)}"
            )
        return document

    def delete_access_policy(self, ref: VaultRef) -> None:
        validate_vault_name(ref.name)
        if not self.ctx.meta.set_access_policy(ref, None, self.ctx.clock.now_ms()):
            raise vault_not_found(self.ctx, ref)
        self._changed(ref)

    # -- vault lock -----------------------------------------------------------------------
    def initiate_lock(self, ref: VaultRef, document: str | None) -> VaultLock:
        validate_vault_name(ref.name)
        if document is None:
            raise MissingParameterValueError("Required parameter missing: Policy")
        parse_policy(document, resource_policy=True)
        now = self.ctx.clock.now_ms()
        lock = VaultLock(new_lock_id(), document, LockState.IN_PROGRESS, now, now + LOCK_WINDOW_MS)
        blocking = self.ctx.meta.initiate_lock(ref, lock, now)
        if blocking is NO_VAULT:
            raise vault_not_found(self.ctx, ref)
        self._changed(ref)
        if blocking is not None:
            raise AccessDeniedError(
                f"The vault lock for {ref.arn(self.ctx.region)} is {blocking.state.value}; "
                "a new lock cannot be initiated"
            )
        return lock

    def complete_lock(self, ref: VaultRef, lock_id: str) -> None:
        validate_vault_name(ref.name)
        require_vault(self.ctx, ref)
        lock = self.ctx.meta.complete_lock(ref, lock_id, self.ctx.clock.now_ms())
        self._changed(ref)
        if lock is not None and lock.lock_id == lock_id:
            return
        if lock is not None and lock.state is LockState.LOCKED:
            raise AccessDeniedError(f"The vault {ref.arn(self.ctx.region)} is already locked")
        raise InvalidParameterValueError(f"The lock ID is not valid for this vault: {lock_id}")

    def abort_lock(self, ref: VaultRef) -> None:
        validate_vault_name(ref.name)
        require_vault(self.ctx, ref)
        lock = self.ctx.meta.abort_lock(ref, self.ctx.clock.now_ms())
        self._changed(ref)
        if lock is not None:
            raise AccessDeniedError(
                f"The vault {ref.arn(self.ctx.region)} is locked; its lock cannot be aborted"
            )

    def get_lock(self, ref: VaultRef) -> VaultLock:
        validate_vault_name(ref.name)
        lock = self.ctx.meta.get_lock(ref, self.ctx.clock.now_ms())
        if lock is None:
            require_vault(self.ctx, ref)
            raise ResourceNotFoundError(f"No vault lock exists for: {ref.arn(self.ctx.region)}")
        return lock

    # -- notifications --------------------------------------------------------------------
    def set_notifications(self, ref: VaultRef, topic: str | None, events: list[str] | None) -> None:
        validate_vault_name(ref.name)
        if not topic:
            raise MissingParameterValueError("Required parameter missing: SNSTopic")
        if not events:
            raise MissingParameterValueError("Required parameter missing: Events")
        for event in events:
            if event not in NOTIFICATION_EVENTS:
                raise InvalidParameterValueError(
                    f"Invalid event: {event}. Valid events are {', '.join(NOTIFICATION_EVENTS)}"
                )
        TopicService.validate(topic)
        config = NotificationConfig(topic, tuple(dict.fromkeys(events)))
        if not self.ctx.meta.set_notifications(ref, config):
            raise vault_not_found(self.ctx, ref)

    def get_notifications(self, ref: VaultRef) -> NotificationConfig:
        validate_vault_name(ref.name)
        config = self.ctx.meta.get_notifications(ref)
        if config is None:
            require_vault(self.ctx, ref)
            raise ResourceNotFoundError(
                f"No notification configuration is set for: {ref.arn(self.ctx.region)}"
            )
        return config

    def delete_notifications(self, ref: VaultRef) -> None:
        validate_vault_name(ref.name)
        if not self.ctx.meta.set_notifications(ref, None):
            raise vault_not_found(self.ctx, ref)
