"""The administration operations (accounts, users, access keys, identity policies, topics,
integrity), as ``icevault admin`` runs them on a data directory and the admin API over HTTP.

Each returns exactly the JSON the command prints, so a command gives the same output
whichever way it runs. Who may call what is the HTTP edge's question (see
:mod:`icevault.server.adminapi`); these only act.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from icevault.core.errors import InvalidParameterValueError, ResourceNotFoundError
from icevault.core.identity import AccessKey, KeyStatus
from icevault.core.models import Archive, VaultRef, iso8601
from icevault.service.context import Context
from icevault.service.identity import IdentityService
from icevault.service.scrub import Scrubber
from icevault.service.topics import TopicService, topic_arn

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
    "Scrub": ("account_id", "vault", "rate_mb_s"),
}


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
            wanted = (int, float) if name == "rate_mb_s" else str
            if value is not None and (not isinstance(value, wanted) or isinstance(value, bool)):
                raise InvalidParameterValueError(f"Parameter {name} has the wrong type")
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

    def scrub(self, account_id: str, vault: str | None, rate_mb_s: float | None,
              on_archive: Callable[[Archive, str | None], None] | None = None) -> Result:
        """Scrub one vault of ``account_id``, or (``vault`` None) every archive stored."""
        if rate_mb_s is not None and rate_mb_s <= 0:
            raise InvalidParameterValueError("The scrub rate is more than 0 MB/s")
        ref = None if vault is None else VaultRef(account_id, vault)
        result = Scrubber(self.ctx).run(
            ref, bytes_per_second=None if rate_mb_s is None else rate_mb_s * 1e6,
            on_archive=on_archive)
        return {
            "Checked": result.checked,
            "BytesRead": result.bytes_read,
            "ResumedAfterPosition": result.resumed_after,
            "Corrupt": [{"AccountId": a.vault.account_id, "VaultName": a.vault.name,
                         "ArchiveId": a.id, "Reason": reason} for a, reason in result.corrupt],
        }
