"""Who may do what: IAM semantics over identity policies, vault access and vault lock policies.

* An explicit Deny in any policy that applies (the caller's identity policies, the vault's
  access policy, the vault's lock policy) refuses the request, even for the account's root:
  that is what makes a completed vault lock binding.
* Otherwise the account's root may do everything in its own account.
* A user of the account needs an Allow from its identity policies, or from a vault access
  policy statement naming it.
* Another account needs an Allow from the vault's access policy (and, for one of its users,
  from that user's identity policies too). Nothing else is allowed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from icevault.core.errors import AccessDeniedError
from icevault.core.identity import Principal
from icevault.core.models import VaultRef
from icevault.core.policy import Decision, Policy, Request, evaluate, parse_policy
from icevault.service.context import Context

DAY_MS = 24 * 3600 * 1000
# Identity policies are cached this long; vault policies are read on every request.
USER_POLICY_CACHE_S = 5.0

ACCOUNT_LEVEL = frozenset(
    {
        "ListVaults",
        "GetDataRetrievalPolicy",
        "SetDataRetrievalPolicy",
        "PurchaseProvisionedCapacity",
        "ListProvisionedCapacity",
    }
)


@dataclass(frozen=True, slots=True)
class AccessRequest:
    principal: Principal
    operation: str  # the Glacier operation name, e.g. "GetJobOutput"
    account_id: str  # the account that owns the resource
    vault: str | None
    source_ip: str | None = None
    secure_transport: bool = False
    archive_id: str | None = None


def resource_arn(region: str, account_id: str, operation: str, vault: str | None) -> str:
    if vault is not None:
        return f"arn:aws:glacier:{region}:{account_id}:vaults/{vault}"
    if operation == "ListVaults":
        return f"arn:aws:glacier:{region}:{account_id}:vaults/*"
    return f"arn:aws:glacier:{region}:{account_id}:*"


class AccessService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._user_policies: dict[tuple[str, str], tuple[float, list[Policy]]] = {}
        self._lock = threading.Lock()

    def _parsed_user_policies(self, principal: Principal) -> list[Policy]:
        assert principal.user is not None
        key = (principal.account_id, principal.user)
        now = time.monotonic()
        with self._lock:
            cached = self._user_policies.get(key)
        if cached is not None and now - cached[0] < USER_POLICY_CACHE_S:
            return cached[1]
        policies = [
            parse_policy(document, resource_policy=False)
            for _name, document in self.ctx.meta.user_policies(principal.account_id, principal.user)
        ]
        with self._lock:
            self._user_policies[key] = (now, policies)
        return policies

    def forget_user(self, account_id: str, user: str) -> None:
        with self._lock:
            self._user_policies.pop((account_id, user), None)

    def authorize(self, access: AccessRequest) -> None:
        """Return if the request is allowed; raise AccessDeniedError otherwise."""
        principal = access.principal
        region = self.ctx.region
        resource = resource_arn(region, access.account_id, access.operation, access.vault)
        vault_ref = None if access.vault is None else VaultRef(access.account_id, access.vault)
        request = Request(
            action=f"glacier:{access.operation}",
            resource=resource,
            principal_arn=principal.arn,
            principal_account=principal.account_id,
            context=lambda key: self._context_value(key, access, vault_ref),
        )
        identity = self._parsed_user_policies(principal) if principal.user is not None else []
        vault_policies: list[Policy] = []
        if vault_ref is not None:
            access_doc = self.ctx.meta.get_access_policy(vault_ref)
            if access_doc is not None:
                vault_policies.append(parse_policy(access_doc, resource_policy=True))
            lock = self.ctx.meta.get_lock(vault_ref, self.ctx.clock.now_ms())
            if lock is not None:
                vault_policies.append(parse_policy(lock.policy, resource_policy=True))
        identity_decisions = [evaluate(p, request) for p in identity]
        vault_decisions = [evaluate(p, request) for p in vault_policies]
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
            f"User: {principal.arn} is not authorized to perform: glacier:{operation} on "
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
            return [datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]
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
            return [str((self.ctx.clock.now_ms() - archive.created_at) // DAY_MS)]
        return None
