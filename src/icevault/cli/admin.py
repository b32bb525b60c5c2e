"""``icevault admin``: accounts, users, access keys and identity policies.

These commands work on a data directory directly (SQLite allows them while a server runs on
it; the server picks changes up within seconds: keys and policies are cached for 5 s).
"""

from __future__ import annotations

import json
import sys
from functools import cached_property
from pathlib import Path
from typing import Any

import click

from icevault.core.errors import GlacierError
from icevault.core.identity import AccessKey, KeyStatus
from icevault.core.models import Archive, VaultRef, iso8601
from icevault.service.context import Context
from icevault.service.identity import IdentityService
from icevault.service.scrub import Scrubber
from icevault.service.topics import TopicService, topic_arn
from icevault.store.blobs.base import BlobStore
from icevault.store.blobs.local import LocalBlobStore
from icevault.store.blobs.s3 import S3BlobStore, S3Location
from icevault.store.metadata.sql import SqlMetadataStore, sqlite_url


class Admin:
    """The stores behind the admin commands, opened on first use (so that --help needs none)."""

    def __init__(self, data_dir: Path, metadata_url: str | None, blob_url: str | None,
                 region: str) -> None:
        self.data_dir = data_dir
        self.region = region
        self.metadata_url = metadata_url
        self.blob_url = blob_url

    @cached_property
    def meta(self) -> SqlMetadataStore:
        if self.metadata_url is None and not (self.data_dir / "metadata.sqlite3").exists():
            raise click.ClickException(
                f"{self.data_dir} holds no icevault data; start `icevault serve --data-dir "
                f"{self.data_dir}` once, or pass the right --data-dir"
            )
        return SqlMetadataStore(self.metadata_url or sqlite_url(self.data_dir / "metadata.sqlite3"))

    @cached_property
    def ctx(self) -> Context:
        blobs: BlobStore = (
            S3BlobStore(S3Location.parse(self.blob_url)) if self.blob_url
            else LocalBlobStore(self.data_dir)
        )
        return Context(meta=self.meta, blobs=blobs, region=self.region)

    @cached_property
    def identity(self) -> IdentityService:
        return IdentityService(self.ctx)

    def account(self, account_id: str | None) -> str:
        return account_id or self.meta.default_account()

    def close(self) -> None:
        if "meta" in self.__dict__:
            self.meta.close()


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
@click.option("--blob-url", default=None,
              help="The server's --blob-url, if archive bytes are in an object store.")
@click.option("--region", default="us-east-1", show_default=True,
              help="The server's --region (it appears in topic ARNs).")
@click.pass_context
def admin(ctx: click.Context, data_dir: Path, metadata_url: str | None,
          blob_url: str | None, region: str) -> None:
    """Manage accounts, users, access keys, identity policies and topics; check stored
    archives."""
    ctx.obj = Admin(data_dir, metadata_url, blob_url, region)
    ctx.call_on_close(ctx.obj.close)


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


# -- topics ------------------------------------------------------------------------------------

@admin.command("create-topic")
@account_option
@click.argument("name")
@click.option("--url", required=True, help="The http(s) URL that receives the notifications.")
@click.pass_obj
def create_topic(obj: Admin, account_id: str | None, name: str, url: str) -> None:
    """Register an SNS topic name: jobs and vault notification configurations may name it
    by its ARN, and its notifications are POSTed to URL."""
    arn = _run(TopicService(obj.ctx).create, obj.account(account_id), name, url)
    _emit({"TopicArn": arn, "Url": url})


@admin.command("list-topics")
@account_option
@click.pass_obj
def list_topics(obj: Admin, account_id: str | None) -> None:
    account = obj.account(account_id)
    region = obj.ctx.region
    _emit({"Topics": [{"TopicArn": topic_arn(region, account, name), "Url": url}
                      for name, url in obj.meta.list_topics(account)]})


@admin.command("delete-topic")
@account_option
@click.argument("name")
@click.pass_obj
def delete_topic(obj: Admin, account_id: str | None, name: str) -> None:
    _run(TopicService(obj.ctx).delete, obj.account(account_id), name)


@admin.command("list-notifications")
@account_option
@click.option("--vault", required=True)
@click.pass_obj
def list_notifications(obj: Admin, account_id: str | None, vault: str) -> None:
    """The job-completion notifications of a vault: topic, target and how delivery went."""
    rows = obj.meta.list_notifications(VaultRef(obj.account(account_id), vault))
    _emit({"Notifications": [
        {"JobId": row["job_id"], "Topic": row["topic"], "Target": row["target"],
         "Status": row["status"], "At": iso8601(row["created_at"])} for row in rows]})


# -- integrity ---------------------------------------------------------------------------------

@admin.command("list-corrupt")
@click.pass_obj
def list_corrupt(obj: Admin) -> None:
    """Archives whose stored bytes failed verification (never served; restore them from
    another copy)."""
    _emit({"Corrupt": [
        {"AccountId": a.vault.account_id, "VaultName": a.vault.name, "ArchiveId": a.id,
         "Size": a.size, "SHA256TreeHash": a.tree_hash, "Reason": a.corrupt_reason,
         "MarkedAt": None if a.corrupt_at is None else iso8601(a.corrupt_at)}
        for a in obj.meta.corrupt_archives()]})


@admin.command("scrub")
@account_option
@click.option("--vault", default=None, help="Only this vault (default: every archive stored).")
@click.option("--rate", default=None, type=click.FloatRange(min=0.001),
              help="Read at most this many MB/s (default: as fast as the disk goes).")
@click.pass_obj
def scrub(obj: Admin, account_id: str | None, vault: str | None, rate: float | None) -> None:
    """Re-read stored archives and check every byte against their tree-hash leaves.

    \b
    A corrupt archive is reported and marked: it is never served again. Interrupted, the
    scrub resumes where it stopped. Exit codes: 0 all good, 3 corruption found, 130
    interrupted."""
    ref = None if vault is None else VaultRef(obj.account(account_id), vault)

    def report(archive: Archive, reason: str | None) -> None:
        if reason is not None:
            click.echo(f"CORRUPT {archive.vault.account_id}/{archive.vault.name} "
                       f"{archive.id}: {reason}", err=True)

    scrubber = Scrubber(obj.ctx)
    try:
        result = scrubber.run(ref, bytes_per_second=None if rate is None else rate * 1e6,
                              on_archive=report)
    except KeyboardInterrupt:
        click.echo("interrupted: run the same command to resume", err=True)
        sys.exit(130)
    _emit({
        "Checked": result.checked,
        "BytesRead": result.bytes_read,
        "ResumedAfterPosition": result.resumed_after,
        "Corrupt": [{"AccountId": a.vault.account_id, "VaultName": a.vault.name,
                     "ArchiveId": a.id, "Reason": reason} for a, reason in result.corrupt],
    })
    if result.corrupt:
        sys.exit(3)
