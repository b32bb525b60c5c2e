"""``icevault admin``: accounts, users, access keys, identity policies, topics, integrity.

These commands work on a data directory directly (SQLite allows them while a server runs on
it; the server picks changes up within its --cache-ttl, 1 s by default), or,
with ``--endpoint-url``, through a server's admin API, with the same output.
"""

from __future__ import annotations

import json
import re
import sys
from functools import cached_property
from pathlib import Path
from typing import Any

import click

from icevault import stores
from icevault.cli.adminclient import AdminClient, RemoteError
from icevault.cli.common import exit_code_for, size_option
from icevault.cli.options import Settings
from icevault.core.errors import GlacierError
from icevault.core.models import Archive
from icevault.core.text import escape
from icevault.service.admin import AdminOperations, Result
from icevault.service.context import Context
from icevault.store.metadata.sql import SqlMetadataStore


class Admin:
    """Where the admin commands act: the stores of a data directory (opened on first use, so
    that --help needs none), or a server's admin API (``--endpoint-url``)."""

    def __init__(self, data_dir: Path, metadata_url: str | None, blob_url: str | None,
                 region: str, endpoint_url: str | None = None,
                 profile: str | None = None, copy_urls: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.region = region
        self.metadata_url = metadata_url
        self.blob_url = blob_url
        self.copy_urls = copy_urls
        self.remote = None if endpoint_url is None else AdminClient(endpoint_url, profile, region)

    @cached_property
    def meta(self) -> SqlMetadataStore:
        if self.metadata_url is None and not (self.data_dir / stores.METADATA_FILE).exists():
            raise click.ClickException(
                f"{self.data_dir} holds no icevault data; start `icevault serve --data-dir "
                f"{self.data_dir}` once, or pass the right --data-dir"
            )
        return stores.open_metadata(self.data_dir, self.metadata_url)

    @cached_property
    def ctx(self) -> Context:
        try:
            copies = stores.open_copies(self.copy_urls)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        return Context(meta=self.meta, blobs=stores.open_blobs(self.data_dir, self.blob_url),
                       region=self.region, copies=copies)

    @cached_property
    def operations(self) -> AdminOperations:
        return AdminOperations(self.ctx)

    def account(self, account_id: str | None) -> str | None:
        """The account to act in: the one named; on a data directory the first account by
        default; on a server, the caller's (the server fills it in)."""
        if account_id is not None or self.remote is not None:
            return account_id
        return self.meta.default_account()

    def call(self, action: str, **params: Any) -> Result:
        """Run an action here or on the server; a refusal ends the command with the same
        exit code either way (2 for a parameter it got wrong, 1 for any other refusal)."""
        try:
            if self.remote is not None:
                return self.remote.call(action, params)
            return self.operations.run(action, params)
        except GlacierError as exc:
            click.echo(f"error: {escape(exc.message)}", err=True)
            code = exc.remote_code if isinstance(exc, RemoteError) else exc.code
            sys.exit(exit_code_for(code))

    def close(self) -> None:
        if "meta" in self.__dict__:
            self.meta.close()


def _emit(value: Result) -> None:
    if value is not None:
        click.echo(json.dumps(value, indent=2))


@click.group()
@click.option("--data-dir", default="./icevault-data", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--metadata-url", default=None, help="Metadata database URL, if not SQLite.")
@click.option("--blob-url", default=None,
              help="The server's --blob-url, if archive bytes are in an object store.")
@click.option("--copy-url", "copy_urls", multiple=True,
              help="The server's --copy-url stores (repeat for more): a scrub repairs bad "
                   "bytes from them.")
@click.option("--region", default="us-east-1", show_default=True,
              help="The server's --region (it appears in topic ARNs and signatures).")
@click.option("--endpoint-url", default=None,
              help="Act through this server's admin API (signed with --profile's key) instead "
                   "of on a data directory.")
@click.option("--profile", default=None, help="AWS profile whose key signs admin API calls.")
@click.pass_context
def admin(ctx: click.Context, data_dir: Path, metadata_url: str | None,
          blob_url: str | None, copy_urls: tuple[str, ...], region: str,
          endpoint_url: str | None, profile: str | None) -> None:
    """Manage accounts, users, access keys, identity policies and topics; check stored
    archives. On a data directory, or on a server with --endpoint-url."""
    parent = ctx.find_object(Settings)  # icevault --endpoint-url ... admin works too
    if parent is not None:
        endpoint_url = endpoint_url or parent.endpoint_url
        profile = profile or parent.profile
    ctx.obj = Admin(data_dir, metadata_url, blob_url, region, endpoint_url, profile, copy_urls)
    ctx.call_on_close(ctx.obj.close)


@admin.command("credentials")
@click.option("--as", "profile_name", default="icevault", show_default=True,
              help="The profile name to print the key under.")
@click.pass_obj
def credentials(obj: Admin, profile_name: str) -> None:
    """Print the data directory's first-start key as a credentials-file profile named
    --as, to append to ~/.aws/credentials (two servers each write theirs as 'icevault')."""
    import configparser

    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", profile_name):
        raise click.BadParameter("a profile name is letters, digits, '_', '.' and '-'",
                                 param_hint="--as")
    found = configparser.ConfigParser()
    path = obj.data_dir / "credentials"
    if not found.read(path) or "icevault" not in found:
        raise click.ClickException(f"{path} holds no first-start key; start `icevault serve "
                                   f"--data-dir {obj.data_dir}` once")
    section = found["icevault"]
    click.echo(f"[{profile_name}]\naws_access_key_id = {section['aws_access_key_id']}\n"
               f"aws_secret_access_key = {section['aws_secret_access_key']}\n"
               f"region = {section.get('region', obj.region)}")


account_option = click.option("--account-id", default=None,
                              help="Account to act in (default: the first account; on a "
                                   "server, your own).")


@admin.command("create-account")
@click.option("--account-id", default=None, help="12-digit id (default: random).")
@click.pass_obj
def create_account(obj: Admin, account_id: str | None) -> None:
    """Create an account and its root access key (the secret is shown only now)."""
    _emit(obj.call("CreateAccount", account_id=account_id))


@admin.command("create-user")
@account_option
@click.argument("user")
@click.pass_obj
def create_user(obj: Admin, account_id: str | None, user: str) -> None:
    """Create a user; it may do nothing until a policy allows it."""
    _emit(obj.call("CreateUser", account_id=obj.account(account_id), user=user))


@admin.command("delete-user")
@account_option
@click.argument("user")
@click.pass_obj
def delete_user(obj: Admin, account_id: str | None, user: str) -> None:
    """Delete a user with its access keys and policies."""
    _emit(obj.call("DeleteUser", account_id=obj.account(account_id), user=user))


@admin.command("list-users")
@account_option
@click.pass_obj
def list_users(obj: Admin, account_id: str | None) -> None:
    _emit(obj.call("ListUsers", account_id=obj.account(account_id)))


@admin.command("create-access-key")
@account_option
@click.option("--user", default=None, help="The user (default: the account's root).")
@click.pass_obj
def create_access_key(obj: Admin, account_id: str | None, user: str | None) -> None:
    """Create an access key; the secret is shown only now."""
    _emit(obj.call("CreateAccessKey", account_id=obj.account(account_id), user=user))


@admin.command("list-access-keys")
@account_option
@click.pass_obj
def list_access_keys(obj: Admin, account_id: str | None) -> None:
    _emit(obj.call("ListAccessKeys", account_id=obj.account(account_id)))


@admin.command("disable-access-key")
@click.argument("key_id")
@click.pass_obj
def disable_access_key(obj: Admin, key_id: str) -> None:
    _emit(obj.call("DisableAccessKey", key_id=key_id))


@admin.command("enable-access-key")
@click.argument("key_id")
@click.pass_obj
def enable_access_key(obj: Admin, key_id: str) -> None:
    _emit(obj.call("EnableAccessKey", key_id=key_id))


@admin.command("delete-access-key")
@click.argument("key_id")
@click.pass_obj
def delete_access_key(obj: Admin, key_id: str) -> None:
    _emit(obj.call("DeleteAccessKey", key_id=key_id))


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
    _emit(obj.call("PutUserPolicy", account_id=obj.account(account_id), user=user,
                   name=policy_name, document=document))


@admin.command("delete-user-policy")
@account_option
@click.option("--user", required=True)
@click.option("--policy-name", required=True)
@click.pass_obj
def delete_user_policy(obj: Admin, account_id: str | None, user: str, policy_name: str) -> None:
    """Detach a named identity policy from a user."""
    _emit(obj.call("DeleteUserPolicy", account_id=obj.account(account_id), user=user,
                   name=policy_name))


@admin.command("list-user-policies")
@account_option
@click.option("--user", required=True)
@click.pass_obj
def list_user_policies(obj: Admin, account_id: str | None, user: str) -> None:
    _emit(obj.call("ListUserPolicies", account_id=obj.account(account_id), user=user))


# -- topics ------------------------------------------------------------------------------------

@admin.command("create-topic")
@account_option
@click.argument("name")
@click.option("--url", required=True, help="The http(s) URL that receives the notifications.")
@click.pass_obj
def create_topic(obj: Admin, account_id: str | None, name: str, url: str) -> None:
    """Register an SNS topic name: jobs and vault notification configurations may name it
    by its ARN, and its notifications are POSTed to URL."""
    _emit(obj.call("CreateTopic", account_id=obj.account(account_id), name=name, url=url))


@admin.command("list-topics")
@account_option
@click.pass_obj
def list_topics(obj: Admin, account_id: str | None) -> None:
    _emit(obj.call("ListTopics", account_id=obj.account(account_id)))


@admin.command("delete-topic")
@account_option
@click.argument("name")
@click.pass_obj
def delete_topic(obj: Admin, account_id: str | None, name: str) -> None:
    _emit(obj.call("DeleteTopic", account_id=obj.account(account_id), name=name))


@admin.command("list-notifications")
@account_option
@click.option("--vault", required=True)
@click.pass_obj
def list_notifications(obj: Admin, account_id: str | None, vault: str) -> None:
    """The job-completion notifications of a vault: topic, target and how delivery went."""
    _emit(obj.call("ListNotifications", account_id=obj.account(account_id), vault=vault))


# -- integrity ---------------------------------------------------------------------------------

@admin.command("list-corrupt")
@click.pass_obj
def list_corrupt(obj: Admin) -> None:
    """Archives whose stored bytes failed verification (never served; restore them from
    another copy)."""
    _emit(obj.call("ListCorrupt", account_id=None))


@admin.command("scrub")
@account_option
@click.option("--vault", default=None, help="Only this vault (default: every archive stored).")
@size_option("--rate", None, "Read at most this much per second, e.g. 50MiB (default: as "
             "fast as the store gives it).")
@click.pass_obj
def scrub(obj: Admin, account_id: str | None, vault: str | None, rate: int | None) -> None:
    """Re-read stored archives and check every byte against their tree-hash leaves.

    \b
    A corrupt archive is reported and marked: it is never served again. Interrupted, the
    scrub resumes where it stopped. Exit codes: 0 all good, 3 corruption found, 130
    interrupted."""
    account = obj.account(account_id) if vault is not None else account_id

    def report(archive: Archive, reason: str | None) -> None:
        if reason is not None:
            click.echo(f"CORRUPT {archive.vault.account_id}/{archive.vault.name} "
                       f"{archive.id}: {reason}", err=True)

    try:
        if obj.remote is None:
            result = obj.operations.scrub(account or "", vault, rate, on_archive=report)
        else:
            result = obj.call("Scrub", account_id=account, vault=vault, bytes_per_second=rate)
            for item in (result or {}).get("Corrupt", []):
                click.echo(f"CORRUPT {item['AccountId']}/{item['VaultName']} "
                           f"{item['ArchiveId']}: {item['Reason']}", err=True)
    except KeyboardInterrupt:
        click.echo("interrupted: run the same command to resume", err=True)
        sys.exit(130)
    _emit(result)
    if result and result["Corrupt"]:
        sys.exit(3)


@admin.command("copies")
@account_option
@click.option("--vault", required=True, help="The vault whose archives are listed.")
@click.option("--archive-id", default=None, help="Only this archive.")
@click.pass_obj
def copies(obj: Admin, account_id: str | None, vault: str, archive_id: str | None) -> None:
    """Where each archive of a vault is kept (the server's own store, "Hot": stored,
    removed or corrupt; and each --copy-url store) and in what state: owed, copying,
    verified, restoring, restored until a date (a cold copy a retrieval restored), bad
    (found so by a scrub, being made again), failed (with the error and when it is tried
    again) or deleting."""
    account = obj.account(account_id)
    marker: str | None = None
    archives: list[Any] = []
    while True:
        page = obj.call("ListCopies", account_id=account, vault=vault, archive_id=archive_id,
                        marker=marker) or {}
        archives.extend(page.get("Archives", []))
        marker = page.get("Marker")
        if marker is None:
            break
    _emit({"Archives": archives})


@admin.command("replication")
@click.pass_obj
def replication(obj: Admin) -> None:
    """What each copy store is still owed: archives, bytes, and since when."""
    _emit(obj.call("Replication"))


@admin.command("backfill")
@click.option("--store", required=True,
              help="The copy store, by its name: its --copy-url without the options "
                   "(icevault admin replication lists them).")
@size_option("--rate", None, "Read at most this much per second, e.g. 50MiB (default: as "
             "fast as the stores go).")
@click.pass_obj
def backfill(obj: Admin, store: str, rate: int | None) -> None:
    """Copy every archive a copy store is owed now (one added after the archives were),
    paced; interrupted, it resumes where it stopped. On a data directory give the store's
    --copy-url to `icevault admin` too."""
    _emit(obj.call("Backfill", store=store, bytes_per_second=rate))
