"""Who may do what: IAM semantics over identity policies, vault access and vault lock policies.

* An explicit Deny in any policy that applies (the caller's identity policies, the vault's
  access policy, the vault's lock policy) refuses the request, even for the account's root:
  that is what makes a completed vault lock binding.
* Otherwise the account's root may do everything in its own account.
* A user of the account needs an Allow from its identity policies, or from a vault access
  policy statement naming that user (or everyone). A statement naming only the account
  delegates to the account's own policies, as in AWS's evaluation logic: it allows the user
  nothing by itself.
* Another account needs an Allow from the vault's access policy (and, for one of its users,
  from that user's identity policies too). Nothing else is allowed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from icevault.core.errors import AccessDeniedError
from icevault.core.identity import Principal
from icevault.core.models import LockState, VaultLock, VaultRef
from icevault.core.policy import Decision, Policy, Request, evaluate, parse_policy
from icevault.service.context import Context

DAY_MS = 24 * 3600 * 1000
# Identity policies are cached for Timing.cache_ttl_ms (the admin commands may change them
# from another process). Vault policies are cached for at most VAULT_POLICY_CACHE_S and
# dropped at once when this process changes them, so with one server a change applies to
# the very next request.
VAULT_POLICY_CACHE_S = 1.0



@dataclass(frozen=True, slots=True)
class AccessRequest:
    principal: Principal
    operation: str  # a Glacier operation name ("GetJobOutput"), or a whole action with its
    # service prefix for icevault's own (IMPORT_ACTION)
    account_id: str  # the account that owns the resource
    vault: str | None
    source_ip: str | None = None
    secure_transport: bool = False
    archive_id: str | None = None


# Creating an archive under an ID and creation date chosen by the caller (icevault migrate).
IMPORT_ACTION = "icevault:ImportArchive"


def action_name(operation: str) -> str:
    return operation if ":" in operation else f"glacier:{operation}"


def resource_arn(region: str, account_id: str, operation: str, vault: str | None) -> str:
    if vault is not None:
        return f"arn:aws:glacier:{region}:{account_id}:vaults/{vault}"
    if operation == "ListVaults":
        return f"arn:aws:glacier:{region}:{account_id}:vaults/*"
    return f"arn:aws:glacier:{region}:{account_id}:*"


class AccessService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._user_policies: dict[tuple[str, str], tuple[int, list[Policy]]] = {}
        self._vault_policies: dict[VaultRef, tuple[int, str | None, VaultLock | None]] = {}
        self._lock = threading.Lock()

    def invalidate_vault(self, ref: VaultRef) -> None:
        with self._lock:
            self._vault_policies.pop(ref, None)

    def _cached_vault_policies(self, ref: VaultRef) -> tuple[str | None, VaultLock | None] | None:
        with self._lock:
            entry = self._vault_policies.get(ref)
        lifetime = min(VAULT_POLICY_CACHE_S * 1000, self.ctx.timing.cache_ttl_ms)
        if entry is None or self.ctx.clock.monotonic_ms() - entry[0] >= lifetime:
            return None
        return entry[1], entry[2]

    def _vault_policy_documents(self, ref: VaultRef) -> list[Policy]:
        cached = self._cached_vault_policies(ref)
        if cached is None:
            loaded_at = self.ctx.clock.monotonic_ms()
            cached = self.ctx.meta.get_vault_policies(ref, self.ctx.clock.now_ms())
            with self._lock:
                if len(self._vault_policies) > 100_000:
                    self._vault_policies.clear()
                self._vault_policies[ref] = (loaded_at, *cached)
        access_doc, lock = cached
        documents = []
        if access_doc is not None:
            documents.append(parse_policy(access_doc, resource_policy=True))
        if lock is not None and not (
            lock.state is LockState.IN_PROGRESS
            and lock.expires_at is not None
            and lock.expires_at <= self.ctx.clock.now_ms()
        ):
            documents.append(parse_policy(lock.policy, resource_policy=True))
        return documents

    def decidable_without_io(self, access: AccessRequest) -> bool:
        """True when ``authorize`` needs no database read: the account's root acting in its
        own account on a vault whose (cached) policies are empty, or on the account itself."""
        principal = access.principal
        if not principal.is_root or principal.account_id != access.account_id:
            return False
        if access.vault is None:
            return True
        cached = self._cached_vault_policies(VaultRef(access.account_id, access.vault))
        return cached is not None and cached == (None, None)

    def _parsed_user_policies(self, principal: Principal) -> list[Policy]:
        assert principal.user is not None
        key = (principal.account_id, principal.user)
        now = self.ctx.clock.monotonic_ms()
        with self._lock:
            cached = self._user_policies.get(key)
        if cached is not None and now - cached[0] < self.ctx.timing.cache_ttl_ms:
            return cached[1]
        policies = [
            parse_policy(document, resource_policy=False)
            for _name, document in self.ctx.meta.user_policies(principal.account_id, principal.user)
        ]
        with self._lock:
            self._user_policies[key] = (now, policies)
        return policies

    def authorize(self, access: AccessRequest) -> None:
        """Return if the request is allowed; raise AccessDeniedError otherwise."""
        principal = access.principal
        region = self.ctx.region
        resource = resource_arn(region, access.account_id, access.operation, access.vault)
        vault_ref = None if access.vault is None else VaultRef(access.account_id, access.vault)
        request = Request(
            action=action_name(access.operation),
            resource=resource,
            principal_arn=principal.arn,
            principal_account=principal.account_id,
            context=lambda key: self._context_value(key, access, vault_ref),
        )
        identity = self._parsed_user_policies(principal) if principal.user is not None else []
        vault_policies = [] if vault_ref is None else self._vault_policy_documents(vault_ref)
        identity_decisions = [evaluate(p, request) for p in identity]
        same_account_user = principal.user is not None and principal.account_id == access.account_id
        vault_request = replace(request, direct_allows_only=same_account_user)
        vault_decisions = [evaluate(p, vault_request) for p in vault_policies]
        if Decision.DENY in identity_decisions or Decision.DENY in vault_decisions:
            raise self._denied(principal, access.operation, resource, explicit=True)
        identity_allows = Decision.ALLOW in identity_decisions
        vault_allows = Decision.ALLOW in vault_decisions
        if principal.account_id == access.account_id:
            if principal.is_root or identity_allows or vault_allows:
                return
        elif vault_allows and (principal.is_root or identity_allows):
            return
        raise self._denied(principal, access.operation, resource, explicit=False)

    @staticmethod
    def _denied(principal: Principal, operation: str, resource: str, *, explicit: bool) -> AccessDeniedError:
        reason = "with an explicit deny" if explicit else "because no policy allows it"
        return AccessDeniedError(
            f"User: {principal.arn} is not authorized to perform: {action_name(operation)} on "
            f"resource: {resource} {reason}"
        )

    def _context_value(
        self, key: str, access: AccessRequest, vault_ref: VaultRef | None
    ) -> Sequence[str] | None:
        principal = access.principal
        if key == "aws:sourceip":
            return None if access.source_ip is None else [access.source_ip]
        if key == "aws:securetransport":
            return ["true" if access.secure_transport else "false"]
        if key == "aws:currenttime":
            now = datetime.fromtimestamp(self.ctx.clock.now_ms() / 1000, UTC)
            return [now.strftime("%Y-%m-%dT%H:%M:%SZ")]
        if key == "aws:principalaccount":
            return [principal.account_id]
        if key == "aws:username":
            return None if principal.user is None else [principal.user]
        if key == "aws:principalarn":
            return [principal.arn]
        if key.startswith("glacier:resourcetag/") and vault_ref is not None:
            tags = self.ctx.meta.get_tags(vault_ref) or {}
            wanted = key.split("/", 1)[1]
            for tag, value in tags.items():
                if tag.lower() == wanted:
                    return [value]
            return None
        if key == "glacier:archiveageindays" and access.archive_id and vault_ref is not None:
            archive = self.ctx.meta.get_archive(vault_ref, access.archive_id)
            if archive is None:
                return None
            # From when this store received it: an import backdated to its source's
            # creation date is not thereby old enough to leave a locked vault.
            return [str((self.ctx.clock.now_ms() - archive.held_since) // DAY_MS)]
        return None
