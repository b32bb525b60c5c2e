"""Vault use cases: create, describe, list, delete and tags."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from icevault.core.errors import (
    InvalidParameterValueError,
    LimitExceededError,
    ResourceNotFoundError,
)
from icevault.core.models import Vault, VaultRef, validate_vault_name
from icevault.service.context import Context
from icevault.store.metadata.base import DeleteVaultOutcome


def vault_not_found(ctx: Context, ref: VaultRef) -> ResourceNotFoundError:
    return ResourceNotFoundError(f"Vault not found for ARN: {ref.arn(ctx.region)}")


def require_vault(ctx: Context, ref: VaultRef) -> Vault:
    vault = ctx.meta.get_vault(ref)
    if vault is None:
        raise vault_not_found(ctx, ref)
    return vault


@dataclass(frozen=True, slots=True)
class VaultPage:
    vaults: list[Vault]
    marker: str | None


class VaultService:
    def __init__(self, ctx: Context, on_delete: Callable[[VaultRef], None] = lambda _ref: None) -> None:
        self.ctx = ctx
        self._deleted = on_delete

    def create(self, ref: VaultRef) -> VaultRef:
        validate_vault_name(ref.name)
        if not self.ctx.meta.create_vault(ref, self.ctx.clock.now_ms(), self.ctx.limits.max_vaults):
            raise LimitExceededError(
                f"The maximum number of vaults ({self.ctx.limits.max_vaults}) has been reached "
                f"for account {ref.account_id}"
            )
        return ref

    def describe(self, ref: VaultRef) -> Vault:
        validate_vault_name(ref.name)
        return require_vault(self.ctx, ref)

    def list_vaults(self, account_id: str, marker: str | None, limit: int) -> VaultPage:
        start = None
        if marker:
            prefix = f"arn:aws:glacier:{self.ctx.region}:{account_id}:vaults/"
            if not marker.startswith(prefix):
                raise InvalidParameterValueError(f"Invalid marker: {marker}")
            start = marker[len(prefix) :]
        rows = self.ctx.meta.list_vaults(account_id, start, limit + 1)
        next_marker = rows[limit].ref.arn(self.ctx.region) if len(rows) > limit else None
        return VaultPage(rows[:limit], next_marker)

    def delete(self, ref: VaultRef) -> None:
        validate_vault_name(ref.name)
        outcome = self.ctx.meta.delete_vault(ref)
        if outcome is DeleteVaultOutcome.NOT_FOUND:
            raise vault_not_found(self.ctx, ref)
        if outcome is DeleteVaultOutcome.NOT_EMPTY:
            raise InvalidParameterValueError(
                f"Vault not empty or recently written to: {ref.arn(self.ctx.region)}"
            )
        self._deleted(ref)

    def delete_with_contents(self, ref: VaultRef) -> None:
        """Delete a vault with its archives, jobs and uploads (test resets, never Glacier's
        DeleteVault)."""
        self.ctx.meta.delete_vault(ref, with_contents=True)
        self._deleted(ref)

    def delete_all(self, account_id: str) -> int:
        """Delete every vault of an account with its contents (the test controls' reset);
        how many there were."""
        removed = 0
        while vaults := self.ctx.meta.list_vaults(account_id, None, 1000):
            for vault in vaults:
                self.delete_with_contents(vault.ref)
                removed += 1
        return removed

    def list_tags(self, ref: VaultRef) -> dict[str, str]:
        validate_vault_name(ref.name)
        tags = self.ctx.meta.get_tags(ref)
        if tags is None:
            raise vault_not_found(self.ctx, ref)
        return tags

    def add_tags(self, ref: VaultRef, tags: dict[str, str]) -> None:
        validate_vault_name(ref.name)
        for key, value in tags.items():
            if not 1 <= len(key) <= 128:
                raise InvalidParameterValueError(f"Invalid tag key (1 to 128 characters): {key!r}")
            if key.lower().startswith("aws:"):
                raise InvalidParameterValueError(
                    f"Invalid tag key: {key!r}. Tag keys must not start with 'aws:'"
                )
            if len(value) > 255:
                raise InvalidParameterValueError(
                    f"Invalid tag value for key {key!r}: at most 255 characters"
                )
        outcome = self.ctx.meta.add_tags(ref, tags, self.ctx.limits.max_tags)
        if outcome is None:
            raise vault_not_found(self.ctx, ref)
        if outcome is False:
            raise LimitExceededError(
                f"The maximum number of tags ({self.ctx.limits.max_tags}) per vault would be "
                "exceeded"
            )

    def remove_tags(self, ref: VaultRef, keys: list[str]) -> None:
        validate_vault_name(ref.name)
        if not self.ctx.meta.remove_tags(ref, keys):
            raise vault_not_found(self.ctx, ref)
