"""``icevault migrate``: a vault from AWS Glacier (or any Glacier endpoint) into icevault,
keeping every archive's ID, description, creation date and tree hash."""

from __future__ import annotations

import csv
import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click

from icevault.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_VERIFY,
    glacier_client,
    handle_errors,
    size_option,
)
from icevault.cli.options import Settings, global_options
from icevault.cli.waiting import JobWaitReport
from icevault.client.api import make_glacier_client
from icevault.client.chunks import check_chunk_size
from icevault.client.imports import enable_imports
from icevault.client.upload import prepare_client
from icevault.core.text import escape
from icevault.migrate.runner import MigrateOptions, MigrationProgress
from icevault.migrate.state import ArchiveState, MigrationState, Stage, default_state_path
from icevault.migrate.transfer import Endpoints
from icevault.migrate.workflow import discover, transfer

TIERS = ["Bulk", "Standard", "Expedited"]


def _state_path(vault: str, state: str | None) -> Path:
    return Path(state) if state else default_state_path(vault)


class _Bar(MigrationProgress):
    """Archives, bytes, rate and ETA on a terminal (rich); silent otherwise."""

    def __init__(self, archives: int, total_bytes: int, done_archives: int) -> None:
        self.enabled = sys.stderr.isatty()
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), DownloadColumn(), TransferSpeedColumn(),
                                  TimeRemainingColumn(), console=Console(stderr=True))
        self._archives = self._progress.add_task("archives", total=archives,
                                                 completed=done_archives)
        self._bytes = self._progress.add_task("bytes", total=total_bytes)
        self._progress.start()

    def on_progress(self, **kwargs: Any) -> None:
        if self.enabled:
            self._progress.advance(self._bytes, kwargs.get("bytes_transferred", 0))

    def on_archive_done(self, archive: ArchiveState, stage: Stage) -> None:
        if self.enabled:
            self._progress.advance(self._archives, 1)

    def close(self) -> None:
        if self.enabled:
            self._progress.stop()


def _print_counts(state: MigrationState) -> None:
    counts = state.counts()
    click.echo(json.dumps({stage.value: {"archives": counts.get(stage, (0, 0))[0],
                                         "bytes": counts.get(stage, (0, 0))[1]}
                           for stage in Stage}, indent=2))


def write_report(state: MigrationState, path: Path) -> None:
    """Per archive: source ID, target ID, size, tree hash, status (JSON or CSV by name)."""
    rows = ({"source_id": a.source_id, "target_id": a.target_id, "size": a.size,
             "tree_hash": a.tree_hash, "status": a.stage.value, "error": a.error}
            for a in state.all())
    if path.suffix.lower() == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=["source_id", "target_id", "size",
                                                     "tree_hash", "status", "error"])
            writer.writeheader()
            writer.writerows(rows)
        return
    with open(path, "w", encoding="utf-8") as out:
        out.write("[\n")
        for n, row in enumerate(rows):
            out.write((",\n" if n else "") + "  " + json.dumps(row))
        out.write("\n]\n")


def _dry_run(state: MigrationState, skipped: int, tier: str | None) -> None:
    counts = state.counts()
    to_move = counts.get(Stage.PLANNED, (0, 0))
    click.echo(json.dumps({
        "archives_to_move": to_move[0], "bytes_to_move": to_move[1],
        "retrieval_jobs": {tier or "Standard": to_move[0]},
        "skipped_already_on_target": skipped,
        "conflicts_on_target": counts.get(Stage.FAILED, (0, 0))[0],
    }, indent=2))


@click.group(invoke_without_command=True)
@click.option("--vault", default=None, help="The source vault.")
@click.option("--target-vault", default=None, help="The target vault (default: the same name).")
@click.option("--source-endpoint-url", default=None,
              help="Another Glacier endpoint as the source (default: AWS).")
@click.option("--source-profile", default=None, help="AWS profile for the source.")
@click.option("--source-region", default=None, help="Region of the source.")
@click.option("--tier", type=click.Choice(TIERS), default=None,
              help="Retrieval tier of the jobs [default: the source's, Standard].")
@click.option("--inventory", "inventory_file", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An inventory you have (Glacier's JSON or CSV) instead of a new job.")
@click.option("--state", "state_file", default=None,
              help="The state file [default: ./icevault-migrate-VAULT.sqlite3].")
@click.option("--max-jobs", default=10, show_default=True, type=click.IntRange(min=1),
              help="Retrieval jobs in flight at most.")
@click.option("--workers", default=4, show_default=True, type=click.IntRange(min=1),
              help="Chunks moving at once (each holds one chunk in memory).")
@size_option("--chunk-size", "16MiB", "Chunk (and part) size: 1 MiB times a power of two.")
@click.option("--dry-run", is_flag=True, help="Say what would move; change nothing.")
@click.option("--report", "report_file", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Write a per-archive report (.json or .csv).")
@click.option("--no-wait", is_flag=True,
              help="Do not wait for the source's inventory job: record it and exit 4.")
@click.option("--poll-cap", default=60.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Longest pause between checks of a job, in seconds.")
@global_options
@click.pass_context
@handle_errors
def migrate(ctx: click.Context, vault: str | None, target_vault: str | None,
            source_endpoint_url: str | None, source_profile: str | None,
            source_region: str | None, tier: str | None, inventory_file: Path | None,
            state_file: str | None, max_jobs: int, workers: int, chunk_size: int,
            dry_run: bool, report_file: Path | None, no_wait: bool, poll_cap: float) -> None:
    """Move a whole vault into icevault with the same archive IDs; rerun to resume.

    \b
    The source is AWS (the --source-profile's region and endpoint) unless
    --source-endpoint-url names another Glacier endpoint; the target is the icevault server
    named by the global options (--endpoint-url, --profile, --region). Nothing on the source
    is ever deleted. Exit codes: 0 every archive is on the target and verified; 1 error;
    3 an archive failed verification; 4 the source's inventory is not ready (rerun later);
    130 interrupted (rerun to resume).
    """
    if ctx.invoked_subcommand is not None:
        return
    if vault is None:
        raise click.UsageError("Missing option '--vault'.")
    check_chunk_size(chunk_size)
    settings: Settings = ctx.obj
    source, source_output = (
        make_glacier_client(endpoint_url=source_endpoint_url, profile=source_profile,
                            region=source_region, max_pool_connections=max(10, workers),
                            retries=retries)
        for retries in (True, False)
    )
    target = prepare_client(enable_imports(glacier_client(settings, workers)))
    ends = Endpoints(source, target, vault, target_vault or vault, source_output)
    state = MigrationState(":memory:" if dry_run else _state_path(vault, state_file))
    # SIGTERM (a service manager, a terminal closing) stops like Ctrl-C: the state is kept.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        # A dry run may start the inventory job and wait for it (that changes no data);
        # with --no-wait it starts nothing and exits 4 when none is ready.
        found = discover(ends, state, inventory_file=inventory_file, wait=not no_wait,
                         start_job=not (dry_run and no_wait), poll_cap_s=poll_cap,
                         report=JobWaitReport)
        if dry_run:
            _dry_run(state, found.skipped, tier)
            return
        options = MigrateOptions(tier=tier, max_jobs=max_jobs, workers=workers,
                                 chunk_size=chunk_size, poll_cap_s=poll_cap)
        failed = transfer(ends, state, options, lambda left: _Bar(
            found.total, left.remaining_bytes, left.done))
        if report_file is not None:
            write_report(state, report_file)
        for archive in failed[:20]:
            click.echo(f"failed: {escape(archive.source_id)}: {escape(archive.error or '')}",
                       err=True)
        _print_counts(state)
        if any(a.verification_failed for a in failed):
            sys.exit(EXIT_VERIFY)
        sys.exit(EXIT_ERROR if failed else EXIT_OK)
    finally:
        if report_file is not None and dry_run:
            write_report(state, report_file)
        state.close()


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@migrate.command("status")
@click.option("--vault", required=True, help="The source vault.")
@click.option("--state", "state_file", default=None,
              help="The state file [default: ./icevault-migrate-VAULT.sqlite3].")
@handle_errors
def status(vault: str, state_file: str | None) -> None:
    """Archives and bytes by stage, from the state file."""
    path = _state_path(vault, state_file)
    if not path.exists():
        raise click.ClickException(f"no migration state at {path}")
    state = MigrationState(path)
    try:
        _print_counts(state)
    finally:
        state.close()
