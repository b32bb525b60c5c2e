"""Client commands: vaults, upload, retrieve, jobs, download, get, inventory, tree hashes."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

import click
from botocore.exceptions import ClientError

from icevault.cli.common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    EXIT_VERIFY,
    ProgressBar,
    emit,
    glacier_client,
    handle_errors,
    size_option,
)
from icevault.cli.options import Settings, global_options, ignored_global_options
from icevault.cli.waiting import wait_reporting
from icevault.client.chunks import check_chunk_size
from icevault.client.download import download_job_output
from icevault.client.files import tree_hash_file
from icevault.client.jobs import (
    find_inventory_job,
    find_reusable_job,
    start_retrieval,
)
from icevault.client.upload import UploadStoppedError, upload_archive
from icevault.client.upload_state import UploadKey, UploadRecords
from icevault.config import parse_duration
from icevault.core.treehash import MIB

_TREE_HASH = re.compile(r"[0-9a-f]{64}")

account_option = click.option("--account-id", default="-", show_default=True,
                              help="The vault's account: '-' is your own.")
vault_option = click.option("--vault", required=True, help="Vault name.")
quiet_option = click.option("--quiet", is_flag=True,
                            help="Say nothing while waiting for the job.")
dry_run_option = click.option("--dry-run", is_flag=True, help="Say what would be done; do nothing.")


def _settings() -> Settings:
    settings: Settings = click.get_current_context().obj
    return settings


def _timeout(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _strip(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


# -- vaults ---------------------------------------------------------------------------------
@click.group()
def vault() -> None:
    """Create, list, describe and delete vaults."""


@vault.command("create")
@click.argument("name")
@account_option
@dry_run_option
@global_options
@handle_errors
def vault_create(name: str, account_id: str, dry_run: bool) -> None:
    """Create the vault NAME (creating one that exists changes nothing)."""
    if dry_run:
        click.echo(f"would create vault {name}")
        return
    response = glacier_client(_settings()).create_vault(accountId=account_id, vaultName=name)
    emit(_settings(), {"location": response["location"]})


@vault.command("list")
@account_option
@global_options
@handle_errors
def vault_list(account_id: str) -> None:
    """List the account's vaults with their archive counts and sizes."""
    client = glacier_client(_settings())
    vaults = [
        _strip(v)
        for page in client.get_paginator("list_vaults").paginate(accountId=account_id)
        for v in page["VaultList"]
    ]
    emit(_settings(), vaults, ["VaultName", "NumberOfArchives", "SizeInBytes", "CreationDate"])


@vault.command("describe")
@click.argument("name")
@account_option
@global_options
@handle_errors
def vault_describe(name: str, account_id: str) -> None:
    """Describe the vault NAME: its ARN, archives, size and last inventory."""
    response = glacier_client(_settings()).describe_vault(accountId=account_id, vaultName=name)
    emit(_settings(), _strip(response))


@vault.command("delete")
@click.argument("name")
@account_option
@dry_run_option
@global_options
@handle_errors
def vault_delete(name: str, account_id: str, dry_run: bool) -> None:
    """Delete the vault NAME, which must hold no archive (Glacier's rule)."""
    client = glacier_client(_settings())
    if dry_run:
        # Say what would happen, which takes the vault as it is now: only an empty one goes.
        described = client.describe_vault(accountId=account_id, vaultName=name)
        count = described.get("NumberOfArchives", 0)
        if count:
            click.echo(f"would not delete vault {name}: it holds {count} archives (as of its "
                       "last inventory); delete them first", err=True)
            sys.exit(EXIT_ERROR)
        click.echo(f"would delete vault {name}")
        return
    client.delete_vault(accountId=account_id, vaultName=name)


# -- archives -------------------------------------------------------------------------------
@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@vault_option
@account_option
@click.option("--description", default=None, help="Archive description (printable ASCII).")
@size_option("--part-size", "16MiB", "Multipart part size (1 MiB times a power of two).")
@click.option("--workers", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option("--upload-id", default=None, help="Resume this interrupted multipart upload.")
@click.option("--no-resume", is_flag=True,
              help="Start afresh even if an interrupted upload of this file could be resumed "
                   "(that one is aborted).")
@click.option("--keep-upload", is_flag=True,
              help="From standard input: keep the multipart upload when interrupted (by "
                   "default it is aborted, since a stream cannot be sent again).")
@dry_run_option
@global_options
@handle_errors
def upload(file: str, vault: str, account_id: str, description: str | None, part_size: int,
           workers: int, upload_id: str | None, no_resume: bool, keep_upload: bool,
           dry_run: bool) -> None:
    """Upload FILE ('-' for standard input) as one archive; prints its id and tree hash.

    Interrupted (Ctrl-C), it stops at once and says how to resume: the same command
    continues the same multipart upload, sending only the parts the server lacks."""
    check_chunk_size(part_size, "part size")
    if dry_run:
        size = "standard input" if file == "-" else f"{Path(file).stat().st_size} bytes"
        click.echo(f"would upload {file} ({size}) to vault {vault}")
        return
    settings = _settings()
    client = glacier_client(settings, workers)
    records = UploadRecords()
    key = None if file == "-" else UploadKey.for_file(file, part_size, vault, account_id,
                                                      settings.endpoint_url)
    if key is not None and upload_id is None and (recorded := records.find(key)):
        if no_resume:
            _abort_quietly(client, vault, account_id, recorded)
            records.forget(recorded)
        else:
            upload_id = recorded
            click.echo(f"resuming upload {recorded} (--no-resume starts afresh)", err=True)

    def started(new_id: str) -> None:
        if key is not None:
            records.remember(key, new_id)
        else:
            click.echo(f"upload ID: {new_id}", err=True)

    bar = ProgressBar(f"upload {Path(file).name}")
    try:
        source: Any = sys.stdin.buffer if file == "-" else file
        result = _upload_resuming(vault, source, account_id, description, part_size, workers,
                                  upload_id, bar, client, started, records)
    except UploadStoppedError as stopped:
        bar.close()
        _stopped(stopped, client, vault, account_id, from_file=key is not None,
                 keep_upload=key is not None or keep_upload)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        bar.close()
    if result.upload_id is not None:
        records.forget(result.upload_id)
    emit(settings, {"archiveId": result.archive_id, "checksum": result.tree_hash,
                    "size": result.size, "uploadId": result.upload_id,
                    "resumedParts": result.skipped_parts})


def _upload_resuming(vault: str, source: Any, account_id: str, description: str | None,
                     part_size: int, workers: int, upload_id: str | None, bar: ProgressBar,
                     client: Any, started: Any, records: UploadRecords) -> Any:
    """Upload; a recorded upload the server no longer has (expired, aborted) is forgotten
    and the file sent afresh."""
    try:
        return upload_archive(vault, source, account_id=account_id, description=description,
                              part_size=part_size, workers=workers, upload_id=upload_id,
                              subscribers=[bar], client=client, on_started=started)
    except ClientError as error:
        if upload_id is None or error.response.get("Error", {}).get("Code") != (
                "ResourceNotFoundException"):
            raise
        records.forget(upload_id)
        click.echo(f"upload {upload_id} is gone from the server; starting afresh", err=True)
        return upload_archive(vault, source, account_id=account_id, description=description,
                              part_size=part_size, workers=workers, subscribers=[bar],
                              client=client, on_started=started)


def _abort_quietly(client: Any, vault: str, account_id: str, upload_id: str) -> None:
    try:
        client.abort_multipart_upload(accountId=account_id, vaultName=vault, uploadId=upload_id)
    except ClientError:
        pass  # gone already: nothing holds its parts


def _stopped(stopped: UploadStoppedError, client: Any, vault: str, account_id: str, *,
             from_file: bool, keep_upload: bool) -> None:
    if stopped.upload_id is None:
        click.echo("interrupted before any part was sent", err=True)
        return
    if not keep_upload:
        _abort_quietly(client, vault, account_id, stopped.upload_id)
        click.echo(f"interrupted; upload {stopped.upload_id} aborted (standard input cannot be "
                   "sent again; --keep-upload keeps it)", err=True)
        return
    if not from_file:
        click.echo(f"interrupted; upload {stopped.upload_id} kept: resume it from a file "
                   f"holding the same bytes with --upload-id {stopped.upload_id}", err=True)
        return
    words = ["icevault", *(a for a in sys.argv[1:] if a != "--no-resume")]
    click.echo(f"interrupted after {stopped.sent} of {stopped.parts} parts; upload ID "
               f"{stopped.upload_id}. Run the same command to resume:\n  {shlex.join(words)}",
               err=True)


@click.command()
@vault_option
@click.option("--archive-id", required=True)
@account_option
@click.option("--tier", type=click.Choice(["Expedited", "Standard", "Bulk"]), default=None)
@click.option("--range", "byte_range", default=None, help="Retrieval byte range a-b (MiB aligned).")
@click.option("--description", default=None)
@click.option("--wait", "wait", is_flag=True, help="Wait until the job completes.")
@click.option("--timeout", default=None, callback=_timeout, help="With --wait: give up after this long.")
@quiet_option
@dry_run_option
@global_options
@handle_errors
def retrieve(vault: str, archive_id: str, account_id: str, tier: str | None,
             byte_range: str | None, description: str | None, wait: bool,
             timeout: float | None, quiet: bool, dry_run: bool) -> None:
    """Start an archive-retrieval job; prints its id (with --wait, once it completed)."""
    if dry_run:
        click.echo(f"would start a retrieval of {archive_id} from vault {vault}")
        return
    client = glacier_client(_settings())
    job_id = start_retrieval(client, vault, archive_id, account_id=account_id,
                             tier=tier, byte_range=byte_range, description=description)
    if wait:
        wait_reporting(client, vault, job_id, account_id=account_id, timeout=timeout,
                       quiet=quiet)
    emit(_settings(), {"jobId": job_id})


# -- jobs -----------------------------------------------------------------------------------
@click.group()
def jobs() -> None:
    """List, describe and wait for jobs."""


@jobs.command("list")
@vault_option
@account_option
@click.option("--status", type=click.Choice(["InProgress", "Succeeded", "Failed"]), default=None)
@click.option("--completed", type=click.Choice(["true", "false"]), default=None)
@global_options
@handle_errors
def jobs_list(vault: str, account_id: str, status: str | None, completed: str | None) -> None:
    """List the vault's jobs (a job's output can be downloaded for 24 hours)."""
    params: dict[str, Any] = {"accountId": account_id, "vaultName": vault}
    if status:
        params["statuscode"] = status
    if completed:
        params["completed"] = completed
    client = glacier_client(_settings())
    found = [
        _strip(j) for page in client.get_paginator("list_jobs").paginate(**params)
        for j in page["JobList"]
    ]
    emit(_settings(), found, ["JobId", "Action", "StatusCode", "CreationDate", "ArchiveSizeInBytes"])


@jobs.command("describe")
@vault_option
@click.option("--job-id", required=True)
@account_option
@global_options
@handle_errors
def jobs_describe(vault: str, job_id: str, account_id: str) -> None:
    """Describe one job: its state, tier, archive and range."""
    response = glacier_client(_settings()).describe_job(accountId=account_id, vaultName=vault, jobId=job_id)
    emit(_settings(), _strip(response))


@jobs.command("wait")
@vault_option
@click.option("--job-id", required=True)
@account_option
@click.option("--timeout", default=None, callback=_timeout, help="Give up after this long (e.g. 12h).")
@click.option("--max-delay", default="60", callback=_timeout, show_default=True,
              help="Longest pause between polls.")
@quiet_option
@global_options
@handle_errors
def jobs_wait(vault: str, job_id: str, account_id: str, timeout: float | None,
              max_delay: float, quiet: bool) -> None:
    """Wait until the job completes (exit 4 if it fails, expires or times out)."""
    job = wait_reporting(glacier_client(_settings()), vault, job_id, account_id=account_id,
                         timeout=timeout, quiet=quiet, max_delay=max_delay)
    emit(_settings(), _strip(job))


# -- downloads ------------------------------------------------------------------------------
def _download_options(func: Any) -> Any:
    func = click.option("--no-resume", is_flag=True, help="Ignore a journal from an earlier run.")(func)
    func = size_option("--bwlimit", None, "Bandwidth limit in bytes per second (e.g. 10MiB).")(func)
    func = click.option("--workers", default=4, show_default=True, type=click.IntRange(1, 64))(func)
    func = size_option("--chunk-size", "8MiB", "Chunk size (1 MiB times a power of two).")(func)
    return func


def _download(settings: Settings, vault: str, job_id: str, output: str, account_id: str,
              chunk_size: int, workers: int, bwlimit: int | None, no_resume: bool) -> dict[str, Any]:
    check_chunk_size(chunk_size)
    bar = ProgressBar(f"download {Path(output).name}")
    try:
        result = download_job_output(
            vault, job_id, output, account_id=account_id, chunk_size=chunk_size, workers=workers,
            resume=not no_resume, bandwidth_limit=bwlimit, subscribers=[bar],
            client=glacier_client(settings, workers, retries=False),
        )
    finally:
        bar.close()
    return {"path": str(result.path), "size": result.size, "checksum": result.tree_hash,
            "chunks": result.chunks, "fetchedChunks": result.fetched, "resumedChunks": result.resumed}


@click.command()
@vault_option
@click.option("--job-id", required=True)
@click.option("-o", "--output-file", "output_file", required=True, type=click.Path(dir_okay=False))
@account_option
@_download_options
@global_options
@handle_errors
def download(vault: str, job_id: str, output_file: str, account_id: str, chunk_size: int,
             workers: int, bwlimit: int | None, no_resume: bool) -> None:
    """Download a job's output: parallel aligned chunks, every chunk and the whole verified,
    resumable (rerun the same command after an interruption)."""
    emit(_settings(), _download(_settings(), vault, job_id, output_file, account_id, chunk_size,
                                workers, bwlimit, no_resume))


@click.command()
@vault_option
@click.option("--archive-id", required=True)
@click.option("-o", "--output-file", "output_file", required=True, type=click.Path(dir_okay=False))
@account_option
@click.option("--tier", type=click.Choice(["Expedited", "Standard", "Bulk"]), default=None)
@click.option("--timeout", default=None, callback=_timeout, help="Give up waiting after this long.")
@quiet_option
@_download_options
@global_options
@handle_errors
def get(vault: str, archive_id: str, output_file: str, account_id: str, tier: str | None,
        timeout: float | None, quiet: bool, chunk_size: int, workers: int, bwlimit: int | None,
        no_resume: bool) -> None:
    """The whole workflow: reuse or start a retrieval job, wait, download and verify."""
    settings = _settings()
    client = glacier_client(settings, workers)
    existing = find_reusable_job(client, vault, archive_id, account_id=account_id)
    if existing is not None:
        job_id = existing["JobId"]
        click.echo(f"reusing job {job_id} ({existing['StatusCode']})", err=True)
    else:
        job_id = start_retrieval(client, vault, archive_id, account_id=account_id, tier=tier)
        click.echo(f"started job {job_id}", err=True)
    wait_reporting(client, vault, job_id, account_id=account_id, timeout=timeout, quiet=quiet)
    result = _download(settings, vault, job_id, output_file, account_id, chunk_size, workers,
                       bwlimit, no_resume)
    emit(settings, {"jobId": job_id, **result})


@click.command()
@vault_option
@account_option
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="json", show_default=True)
@click.option("-o", "--output-file", "output_file", default=None, type=click.Path(dir_okay=False),
              help="Write here (default: standard output).")
@click.option("--job-id", default=None, help="Read this finished inventory job instead of starting one.")
@click.option("--new", "new_job", is_flag=True,
              help="Start a new inventory job even when a recent one can still be read.")
@click.option("--timeout", default=None, callback=_timeout)
@quiet_option
@global_options
@handle_errors
def inventory(vault: str, account_id: str, fmt: str, output_file: str | None,
              job_id: str | None, new_job: bool, timeout: float | None, quiet: bool) -> None:
    """Read the vault's newest inventory job (starting one when there is none, or with
    --new), wait for it, and stream its output."""
    client = glacier_client(_settings())
    if job_id is None and not new_job:
        found = find_inventory_job(client, vault, fmt, account_id=account_id)
        if found is not None:
            job_id = str(found["JobId"])
            click.echo(f"reusing inventory job {job_id} of {found.get('CreationDate')} "
                       f"({found['StatusCode']}; --new starts another)", err=True)
    if job_id is None:
        job_id = client.initiate_job(accountId=account_id, vaultName=vault, jobParameters={
            "Type": "inventory-retrieval", "Format": fmt.upper()})["jobId"]
        click.echo(f"started inventory job {job_id}", err=True)
    wait_reporting(client, vault, job_id, account_id=account_id, timeout=timeout, quiet=quiet)
    body = client.get_job_output(accountId=account_id, vaultName=vault, jobId=job_id)["body"]
    target = open(output_file, "wb") if output_file else sys.stdout.buffer  # noqa: SIM115
    try:
        last = b""
        while piece := body.read(MIB):
            target.write(piece)
            last = piece[-1:]
        if not output_file and last != b"\n":
            target.write(b"\n")  # a prompt after it starts on a line of its own
    finally:
        if output_file:
            target.close()
        else:
            target.flush()


# -- tree hashes ----------------------------------------------------------------------------
@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@ignored_global_options
def treehash(file: str) -> None:
    """Print FILE's SHA-256 tree hash (hex), as Glacier computes it."""
    click.echo(tree_hash_file(file))


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--tree-hash", "expected", required=True,
              help="The tree hash to check against: 64 hexadecimal digits.")
@ignored_global_options
def verify(file: str, expected: str) -> None:
    """Check FILE against a tree hash; exit 0 if it matches, 3 if not."""
    if not _TREE_HASH.fullmatch(expected.strip().lower()):
        click.echo(f"error: {expected[:80]!r} is not a tree hash (a SHA-256 tree hash is 64 "
                   "hexadecimal digits, as Glacier's x-amz-sha256-tree-hash)", err=True)
        sys.exit(EXIT_USAGE)
    actual = tree_hash_file(file)
    if actual != expected.strip().lower():
        click.echo(f"MISMATCH {file}: tree hash {actual}, expected {expected}", err=True)
        sys.exit(EXIT_VERIFY)
    click.echo(f"OK {file} {actual}")


COMMANDS = [vault, upload, retrieve, jobs, download, get, inventory, treehash, verify]
__all__ = ["COMMANDS"]
