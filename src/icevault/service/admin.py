"""The administration operations (accounts, users, access keys, identity policies, topics,
integrity), as ``icevault admin`` runs them on a data directory and the admin API over HTTP.

Each returns exactly the JSON the command prints, so a command gives the same output
whichever way it runs. :class:`AdminOperations` only acts (``icevault admin`` on a data
directory is the operator); :class:`AdminService` is the admin API's door, which decides
who may run what first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from icevault.core.errors import (
    AccessDeniedError,
    InvalidParameterValueError,
    MissingParameterValueError,
    ResourceNotFoundError,
)
from icevault.core.identity import AccessKey, KeyStatus, Principal
from icevault.core.models import Archive, VaultRef, iso8601
from icevault.service.access import AccessRequest, AccessService
from icevault.service.context import Context
from icevault.service.copies import CopyService, state_text
from icevault.service.identity import IdentityService
from icevault.service.integrity import IntegrityService
from icevault.service.scrub import Scrubber
from icevault.service.topics import TopicService, topic_arn
from icevault.store.metadata.copy_port import ArchiveCopy, CopyState

Result = dict[str, Any] | None

# The admin API's actions: method and parameters, in order. ``account_id`` is filled in by
# the caller (the edge puts the caller's account when the request names none).
ACTIONS = {
    "CreateAccount": "create_account", "CreateUser": "create_user",
    "DeleteUser": "delete_user", "ListUsers": "list_users",
    "CreateAccessKey": "create_access_key", "ListAccessKeys": "list_access_keys",
    "DisableAccessKey": "disable_access_key", "EnableAccessKey": "enable_access_key",
    "DeleteAccessKey": "delete_access_key", "PutUserPolicy": "put_user_policy",
    "DeleteUserPolicy": "delete_user_policy", "ListUserPolicies": "list_user_policies",
    "CreateTopic": "create_topic", "ListTopics": "list_topics", "DeleteTopic": "delete_topic",
    "ListNotifications": "list_notifications", "ListCorrupt": "list_corrupt", "Scrub": "scrub",
    "ListCopies": "list_copies", "Replication": "replication", "Backfill": "backfill",
}
PARAMETERS: dict[str, tuple[str, ...]] = {
    "CreateAccount": ("account_id",), "CreateUser": ("account_id", "user"),
    "DeleteUser": ("account_id", "user"), "ListUsers": ("account_id",),
    "CreateAccessKey": ("account_id", "user"), "ListAccessKeys": ("account_id",),
    "DisableAccessKey": ("key_id",), "EnableAccessKey": ("key_id",),
    "DeleteAccessKey": ("key_id",), "PutUserPolicy": ("account_id", "user", "name", "document"),
    "DeleteUserPolicy": ("account_id", "user", "name"),
    "ListUserPolicies": ("account_id", "user"), "CreateTopic": ("account_id", "name", "url"),
    "ListTopics": ("account_id",), "DeleteTopic": ("account_id", "name"),
    "ListNotifications": ("account_id", "vault"), "ListCorrupt": ("account_id",),
    "Scrub": ("account_id", "vault", "bytes_per_second"),
    "ListCopies": ("account_id", "vault", "archive_id", "marker"), "Replication": (),
    "Backfill": ("store", "bytes_per_second"),
}

# Parameters an action may go without (the caller's account is filled in before ``run``).
OPTIONAL = frozenset({
    ("CreateAccount", "account_id"), ("CreateAccessKey", "user"),
    ("ListCorrupt", "account_id"), ("Scrub", "account_id"), ("Scrub", "vault"),
    ("Scrub", "bytes_per_second"), ("ListCopies", "archive_id"), ("ListCopies", "marker"),
    ("Backfill", "bytes_per_second"),
})
# Archives a ListCopies answer holds at most (its Marker asks for the next ones).
COPIES_PAGE = 1000


def key_json(key: AccessKey, *, secret: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "AccessKeyId": key.id,
        "AccountId": key.account_id,
        "UserName": key.user,
        "Status": key.status.value,
    }
    if secret:
        out["SecretAccessKey"] = key.secret
    return out


class AdminOperations:
    def __init__(self, ctx: Context, identity: IdentityService | None = None) -> None:
        self.ctx = ctx
        self.identity = identity or IdentityService(ctx)
        self.copies = CopyService(ctx, IntegrityService(ctx))

    def run(self, action: str, params: dict[str, Any]) -> Result:
        """Run an action by its API name with its parameters (the admin API's entry)."""
        method = ACTIONS.get(action)
        if method is None:
            raise InvalidParameterValueError(f"Unknown admin action: {action}")
        names = PARAMETERS[action]
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise InvalidParameterValueError(f"Unknown parameters for {action}: {unknown}")
        for name, value in params.items():
            wanted = int if name == "bytes_per_second" else str
            if value is not None and (not isinstance(value, wanted) or isinstance(value, bool)):
                raise InvalidParameterValueError(f"Parameter {name} has the wrong type")
        missing = [name for name in names
                   if params.get(name) is None and (action, name) not in OPTIONAL]
        if missing:
            raise MissingParameterValueError(
                f"Required parameters missing for {action}: {', '.join(missing)}")
        values = [params.get(name) for name in names]
        result: Result = getattr(self, method)(*values)
        return result

    def key_account(self, key_id: str) -> str:
        """The account an access key belongs to (ResourceNotFoundError if there is none)."""
        key = self.ctx.meta.get_access_key(key_id)
        if key is None:
            raise ResourceNotFoundError(f"No such access key: {key_id}")
        return key.account_id

    # -- accounts, users, keys, policies --------------------------------------------------

    def create_account(self, account_id: str | None) -> Result:
        account, key = self.identity.create_account(account_id)
        return {"AccountId": account, "AccessKey": key_json(key, secret=True)}

    def create_user(self, account_id: str, user: str) -> Result:
        self.identity.create_user(account_id, user)
        return {"AccountId": account_id, "UserName": user}

    def delete_user(self, account_id: str, user: str) -> Result:
        self.identity.delete_user(account_id, user)
        return None

    def list_users(self, account_id: str) -> Result:
        return {"Users": self.ctx.meta.list_users(account_id)}

    def create_access_key(self, account_id: str, user: str | None) -> Result:
        return {"AccessKey": key_json(self.identity.new_key(account_id, user), secret=True)}

    def list_access_keys(self, account_id: str) -> Result:
        keys = self.ctx.meta.list_access_keys(account_id)
        return {"AccessKeys": [key_json(k, secret=False) for k in keys]}

    def disable_access_key(self, key_id: str) -> Result:
        self.identity.set_key_status(key_id, KeyStatus.INACTIVE)
        return None

    def enable_access_key(self, key_id: str) -> Result:
        self.identity.set_key_status(key_id, KeyStatus.ACTIVE)
        return None

    def delete_access_key(self, key_id: str) -> Result:
        self.identity.delete_key(key_id)
        return None

    def put_user_policy(self, account_id: str, user: str, name: str, document: str) -> Result:
        self.identity.put_user_policy(account_id, user, name, document)
        return None

    def delete_user_policy(self, account_id: str, user: str, name: str) -> Result:
        self.identity.delete_user_policy(account_id, user, name)
        return None

    def list_user_policies(self, account_id: str, user: str) -> Result:
        policies = self.ctx.meta.user_policies(account_id, user)
        return {"Policies": [{"PolicyName": n, "PolicyDocument": json.loads(d)}
                             for n, d in policies]}

    # -- topics ---------------------------------------------------------------------------

    def create_topic(self, account_id: str, name: str, url: str) -> Result:
        return {"TopicArn": TopicService(self.ctx).create(account_id, name, url), "Url": url}

    def list_topics(self, account_id: str) -> Result:
        region = self.ctx.region
        return {"Topics": [{"TopicArn": topic_arn(region, account_id, name), "Url": url}
                           for name, url in self.ctx.meta.list_topics(account_id)]}

    def delete_topic(self, account_id: str, name: str) -> Result:
        TopicService(self.ctx).delete(account_id, name)
        return None

    def list_notifications(self, account_id: str, vault: str) -> Result:
        rows = self.ctx.meta.list_notifications(VaultRef(account_id, vault))
        return {"Notifications": [
            {"JobId": row["job_id"], "Topic": row["topic"], "Target": row["target"],
             "Status": row["status"], "At": iso8601(row["created_at"])} for row in rows]}

    # -- integrity ------------------------------------------------------------------------

    def list_corrupt(self, account_id: str | None) -> Result:
        """Corrupt archives of one account, or of every account (None)."""
        return {"Corrupt": [
            {"AccountId": a.vault.account_id, "VaultName": a.vault.name, "ArchiveId": a.id,
             "Size": a.size, "SHA256TreeHash": a.tree_hash, "Reason": a.corrupt_reason,
             "MarkedAt": None if a.corrupt_at is None else iso8601(a.corrupt_at)}
            for a in self.ctx.meta.corrupt_archives()
            if account_id is None or a.vault.account_id == account_id]}

    def scrub(self, account_id: str, vault: str | None, bytes_per_second: int | None,
              on_archive: Callable[[Archive, str | None], None] | None = None) -> Result:
        """Scrub one vault of ``account_id``, or (``vault`` None) every archive stored."""
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise InvalidParameterValueError("The scrub rate is at least 1 byte per second")
        ref = None if vault is None else VaultRef(account_id, vault)
        result = Scrubber(self.ctx).run(
            ref, bytes_per_second=bytes_per_second, on_archive=on_archive)
        return {
            "Checked": result.checked,
            "BytesRead": result.bytes_read,
            "ResumedAfterPosition": result.resumed_after,
            "Corrupt": [{"AccountId": a.vault.account_id, "VaultName": a.vault.name,
                         "ArchiveId": a.id, "Reason": reason} for a, reason in result.corrupt],
            "Repaired": [{"AccountId": a.vault.account_id, "VaultName": a.vault.name,
                          "ArchiveId": a.id, "Reason": reason}
                         for a, reason in result.repaired],
            "BadCopies": [{"AccountId": a.vault.account_id, "VaultName": a.vault.name,
                           "ArchiveId": a.id, "Store": store}
                          for a, store in result.bad_copies],
        }

    # -- copies ---------------------------------------------------------------------------

    def list_copies(self, account_id: str, vault: str, archive_id: str | None,
                    marker: str | None) -> Result:
        """Where each archive of a vault (or one archive) is kept, and in what state."""
        ref = VaultRef(account_id, vault)
        if archive_id is not None:
            archive, copies = self.copies.copies_of(ref, archive_id)
            return {"Archives": [self._copies_json(archive, copies, self.copies.known_stores())],
                    "Marker": None}
        if self.ctx.meta.get_vault(ref) is None:
            raise ResourceNotFoundError(f"Vault not found for ARN: {vault}")
        after = 0
        if marker is not None:
            if not marker.isdigit():
                raise InvalidParameterValueError(f"Invalid marker: {marker[:64]}")
            after = int(marker)
        page = self.copies.vault_copies(ref, after, COPIES_PAGE + 1)
        more = len(page) > COPIES_PAGE
        page = page[:COPIES_PAGE]
        stores = self.copies.known_stores()
        return {"Archives": [self._copies_json(archive, copies, stores)
                             for _, archive, copies in page],
                "Marker": str(page[-1][0]) if more else None}

    def backfill(self, store: str, bytes_per_second: int | None) -> Result:
        """Make every copy ``store`` is owed now, paced (a store added later)."""
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise InvalidParameterValueError("The rate is at least 1 byte per second")
        report = self.copies.backfill(store, bytes_per_second)
        return {"Store": store, "Copied": report.made, "Failed": report.failed}

    def replication(self) -> Result:
        """What every copy store is still owed."""
        now = self.ctx.clock.now_ms()
        return {"Stores": [
            {"Store": owed.store, "OwedArchives": owed.archives, "OwedBytes": owed.bytes,
             "OldestOwedSince": None if owed.oldest_created_at is None
             else iso8601(owed.oldest_created_at),
             "OldestOwedAgeSeconds": None if owed.oldest_created_at is None
             else max(0, (now - owed.oldest_created_at) // 1000)}
            for owed in self.copies.backlog()]}


    def _copies_json(self, archive: Archive, copies: list[ArchiveCopy],
                     stores: list[str]) -> dict[str, Any]:
        now = self.ctx.clock.now_ms()
        rows = {copy.store: copy for copy in copies}
        # A store with no row is owed a copy, if the archive has good hot bytes to give.
        owed = [] if archive.blob_key is None or archive.corrupt_at is not None else [
            store for store in stores if store not in rows]
        listed = [_copy_json(copy, now) for copy in copies] + [
            {"Store": store, "State": "owed", "Attempts": 0, "Error": None,
             "Since": iso8601(archive.created_at), "RetryAt": None} for store in owed]
        return {
            "ArchiveId": archive.id, "Size": archive.size,
            "Hot": ("corrupt" if archive.corrupt_at is not None
                    else "removed" if archive.hot_evicted_at is not None else "stored"),
            "Copies": sorted(listed, key=lambda copy: str(copy["Store"])),
        }


def _copy_json(copy: ArchiveCopy, now: int) -> dict[str, Any]:
    return {"Store": copy.store, "State": state_text(copy, now), "Attempts": copy.attempts,
            "Error": copy.error, "Since": iso8601(copy.updated_at),
            "RetryAt": None if copy.retry_at is None or copy.state is not CopyState.FAILED
            else iso8601(copy.retry_at)}


# Actions on the whole store, or that choose where the server sends requests: the operator's.
OPERATOR_ONLY = frozenset({"CreateAccount", "CreateTopic", "DeleteTopic", "Replication",
                           "Backfill"})
_KEY_BY_ID = frozenset({"DisableAccessKey", "EnableAccessKey", "DeleteAccessKey"})


class AdminService:
    """The admin API's one door: who may run which action on whom, then the action.

    * the operator (:meth:`IdentityService.is_operator`) may do everything, in any account;
      only the operator creates accounts, registers topics (a topic's URL is where the
      server will send requests) and scrubs or lists the corrupt archives of the whole store;
    * nobody else acts outside their own account;
    * access keys are their owner's: a user may act on their own keys (with a policy
      allowing the action), and only the account's root on the root's or other users' keys;
      CreateAccessKey without a user makes a key for the caller, as in IAM;
    * every other action of an account's user needs an identity policy allowing
      ``icevault:{Action}``, checked by the same access service as the Glacier API.
    """

    def __init__(self, ctx: Context, identity: IdentityService, access: AccessService) -> None:
        self.identity = identity
        self.access = access
        self.operations = AdminOperations(ctx, identity)
        self.ctx = ctx

    def call(self, principal: Principal, action: str, params: dict[str, Any],
             source_ip: str | None, secure: bool) -> Result:
        if action not in ACTIONS:
            return self.operations.run(action, params)  # refused there, with its name
        params = dict(params)
        operator = self.identity.is_operator(principal)
        if action in OPERATOR_ONLY and not operator:
            raise _denied(principal, action, "only the server's operator may")
        account = self._scope(principal, action, params, operator)
        if not operator:
            if account is None:
                raise _denied(principal, action,
                              "only the server's operator may act on the whole store")
            if account != principal.account_id:
                raise _denied(principal, action, f"account {account} is not yours")
            self._check_key_owner(principal, action, params)
            self.access.authorize(AccessRequest(
                principal=principal, operation=f"icevault:{action}", account_id=account,
                vault=None, source_ip=source_ip, secure_transport=secure))
        result = self.operations.run(action, params)
        if action == "ListAccessKeys" and not principal.is_root and result is not None:
            # A user sees their own keys, as IAM's ListAccessKeys without a user name.
            result = {"AccessKeys": [k for k in result["AccessKeys"]
                                     if k["UserName"] == principal.user]}
        if action == "ListNotifications" and not operator and result is not None:
            result = {"Notifications": [{k: v for k, v in row.items() if k != "Target"}
                                        for row in result["Notifications"]]}
        if action == "ListTopics" and not operator and result is not None:
            # Where a topic delivers is the operator's business.
            result = {"Topics": [{"TopicArn": topic["TopicArn"]} for topic in result["Topics"]]}
        return result

    def _scope(self, principal: Principal, action: str, params: dict[str, Any],
               operator: bool) -> str | None:
        """The account the action acts in (None: the whole store); fills in ``params``."""
        if action in _KEY_BY_ID:
            key_id = params.get("key_id")
            return self.operations.key_account(key_id) if isinstance(key_id, str) else None
        if action in ("CreateAccount", "Replication", "Backfill"):
            return None
        named = params.get("account_id")
        if action == "ListCorrupt":
            account = named or (None if operator else principal.account_id)
        elif action == "Scrub":
            account = None if params.get("vault") is None else named or principal.account_id
        else:
            account = named or principal.account_id
        params["account_id"] = account
        if action == "CreateAccessKey" and params.get("user") is None and account == (
                principal.account_id):
            params["user"] = principal.user  # the caller's own key, as in IAM
        return account if isinstance(account, str) else None

    def _check_key_owner(self, principal: Principal, action: str,
                         params: dict[str, Any]) -> None:
        """Keys of the root and of other users are the account root's to manage."""
        if principal.is_root:
            return
        if action == "CreateAccessKey":
            owner = params.get("user")
        elif action in _KEY_BY_ID:
            key = self.ctx.meta.get_access_key(str(params.get("key_id")))
            owner = None if key is None else key.user
        else:
            return
        if owner != principal.user:
            whose = "the account root's" if owner is None else f"user {owner}'s"
            raise _denied(principal, action,
                          f"{whose} keys are managed by the account's root only")


def _denied(principal: Principal, action: str, why: str) -> AccessDeniedError:
    return AccessDeniedError(
        f"User: {principal.arn} is not authorized to perform: icevault:{action} ({why})")
