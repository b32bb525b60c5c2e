"""``icevault admin``: accounts, users, access keys and identity policies.

These commands work on a data directory directly (SQLite allows them while a server runs on
it; the server picks changes up within seconds: keys and policies are cached for 5 s).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from icevault.core.errors import GlacierError
from icevault.core.identity import AccessKey, KeyStatus
from icevault.service.context import Context
from icevault.service.identity import IdentityService
from icevault.store.blobs.local import LocalBlobStore
from icevault.store.metadata.sql import SqlMetadataStore, sqlite_url


class Admin:
    def __init__(self, data_dir: Path, metadata_url: str | None) -> None:
        if metadata_url is None and not (data_dir / "metadata.sqlite3").exists():
            raise click.ClickException(
                f"{data_dir} holds no icevault data; start `icevault serve --data-dir {data_dir}` "
                "once, or pass the right --data-dir"
            )
        self.meta = SqlMetadataStore(metadata_url or sqlite_url(data_dir / "metadata.sqlite3"))
        self.identity = IdentityService(Context(meta=self.meta, blobs=LocalBlobStore(data_dir)))

    def account(self, account_id: str | None) -> str:
        return account_id or self.meta.default_account()


def _emit(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _key_json(key: AccessKey, *, secret: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "AccessKeyId": key.id,
        "AccountId": key.account_id,
        "UserName": key.user,
        "Status": key.status.value,
    }
    if secret:
        out["SecretAccessKey"] = key.secret
    return out


@click.group()
@click.option("--data-dir", default="./icevault-data", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--metadata-url", default=None, help="Metadata database URL, if not SQLite.")
@click.pass_context
def admin(ctx: click.Context, data_dir: Path, metadata_url: str | None) -> None:
    """Manage accounts, users, access keys and identity policies."""
    ctx.obj = Admin(data_dir, metadata_url)
    ctx.call_on_close(ctx.obj.meta.close)


def _run(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except GlacierError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)


account_option = click.option("--account-id", default=None,
                              help="Account to act in (default: the first account).")


@admin.command("create-account")
@click.option("--account-id", default=None, help="12-digit id (default: random).")
@click.pass_obj
def create_account(obj: Admin, account_id: str | None) -> None:
    """Create an account and its root access key (the secret is shown only now)."""
    account, key = _run(obj.identity.create_account, account_id)
    _emit({"AccountId": account, "AccessKey": _key_json(key, secret=True)})


@admin.command("create-user")
@account_option
@click.argument("user")
@click.pass_obj
def create_user(obj: Admin, account_id: str | None, user: str) -> None:
    """Create a user; it may do nothing until a policy allows it."""
    _run(obj.identity.create_user, obj.account(account_id), user)
    _emit({"AccountId": obj.account(account_id), "UserName": user})


@admin.command("delete-user")
@account_option
@click.argument("user")
@click.pass_obj
def delete_user(obj: Admin, account_id: str | None, user: str) -> None:
    """Delete a user with its access keys and policies."""
    _run(obj.identity.delete_user, obj.account(account_id), user)


@admin.command("list-users")
@account_option
@click.pass_obj
def list_users(obj: Admin, account_id: str | None) -> None:
    _emit({"Users": obj.meta.list_users(obj.account(account_id))})


@admin.command("create-access-key")
@account_option
@click.option("--user", default=None, help="The user (default: the account's root).")
@click.pass_obj
def create_access_key(obj: Admin, account_id: str | None, user: str | None) -> None:
    """Create an access key; the secret is shown only now."""
    key = _run(obj.identity.new_key, obj.account(account_id), user)
    _emit({"AccessKey": _key_json(key, secret=True)})


@admin.command("list-access-keys")
@account_option
@click.pass_obj
def list_access_keys(obj: Admin, account_id: str | None) -> None:
    keys = obj.meta.list_access_keys(obj.account(account_id))
    _emit({"AccessKeys": [_key_json(k, secret=False) for k in keys]})


@admin.command("disable-access-key")
@click.argument("key_id")
@click.pass_obj
def disable_access_key(obj: Admin, key_id: str) -> None:
    _run(obj.identity.set_key_status, key_id, KeyStatus.INACTIVE)


@admin.command("enable-access-key")
@click.argument("key_id")
@click.pass_obj
def enable_access_key(obj: Admin, key_id: str) -> None:
    _run(obj.identity.set_key_status, key_id, KeyStatus.ACTIVE)


@admin.command("delete-access-key")
@click.argument("key_id")
@click.pass_obj
def delete_access_key(obj: Admin, key_id: str) -> None:
    _run(obj.identity.delete_key, key_id)


@admin.command("put-user-policy")
@account_option
@click.option("--user", required=True)
@click.option("--policy-name", required=True)
@click.option("--policy-document", required=True,
              help="The policy JSON, or @FILE to read it from a file.")
@click.pass_obj
def put_user_policy(obj: Admin, account_id: str | None, user: str, policy_name: str,
                    policy_document: str) -> None:
    """Attach (or replace) a named identity policy on a user."""
    document = policy_document
    if document.startswith("@"):
        document = Path(document[1:]).read_text()
    _run(obj.identity.put_user_policy, obj.account(account_id), user, policy_name, document)


@admin.command("delete-user-policy")
@account_option
@click.option("--user", required=True)
@click.option("--policy-name", required=True)
@click.pass_obj
def delete_user_policy(obj: Admin, account_id: str | None, user: str, policy_name: str) -> None:
    """Detach a named identity policy from a user."""
    _run(obj.identity.delete_user_policy, obj.account(account_id), user, policy_name)


@admin.command("list-user-policies")
@account_option
@click.option("--user", required=True)
@click.pass_obj
def list_user_policies(obj: Admin, account_id: str | None, user: str) -> None:
    policies = obj.meta.user_policies(obj.account(account_id), user)
    _emit({"Policies": [{"PolicyName": n, "PolicyDocument": json.loads(d)} for n, d in policies]})
