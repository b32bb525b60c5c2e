"""A whole vault's migration, step by step: the source's inventory into the state, what the
target holds already set aside, then every other archive moved and verified. The command
line (``cli/migrate.py``) only reads options, shows progress and turns the outcome into an
exit code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icevault.migrate.discovery import load_source_inventory, skip_present
from icevault.migrate.runner import MigrateOptions, MigrationProgress, Migrator
from icevault.migrate.state import ArchiveState, MigrationState, Stage
from icevault.migrate.transfer import Endpoints, check_import_support

FINISHED = (Stage.VERIFIED, Stage.SKIPPED)


@dataclass(frozen=True)
class Discovery:
    """What the source holds and how much of it the target has already."""

    total: int
    skipped: int


@dataclass(frozen=True)
class Backlog:
    """Archives already finished, and the bytes of those still to move."""

    done: int
    remaining: int
    remaining_bytes: int


def discover(ends: Endpoints, state: MigrationState, *, inventory_file: Path | None,
             wait: bool, start_job: bool, poll_cap_s: float,
             report: Callable[[str], Any] | None = None) -> Discovery:
    """Load the source's inventory into ``state`` (once) and mark what the target holds."""
    total = load_source_inventory(ends.source, ends.source_vault, "-", state,
                                  inventory_file=inventory_file, wait=wait,
                                  start_job=start_job, poll_cap_s=poll_cap_s, report=report)
    skipped, _ = skip_present(ends.target, ends.target_vault, "-", state, poll_cap_s=poll_cap_s)
    return Discovery(total, skipped)


def backlog(state: MigrationState) -> Backlog:
    counts = state.counts()
    return Backlog(
        done=sum(counts.get(stage, (0, 0))[0] for stage in FINISHED),
        remaining=sum(n for stage, (n, _) in counts.items() if stage not in FINISHED),
        remaining_bytes=sum(b for stage, (_, b) in counts.items() if stage not in FINISHED))


def transfer(ends: Endpoints, state: MigrationState, options: MigrateOptions,
             progress_for: Callable[[Backlog], MigrationProgress]) -> list[ArchiveState]:
    """Move every archive not finished yet (failed ones are tried again); returns those
    that failed this time."""
    state.retry_failed()
    ends.target.create_vault(vaultName=ends.target_vault)
    left = backlog(state)
    progress = progress_for(left)
    try:
        if left.remaining:
            check_import_support(ends)
            Migrator(ends, state, options, progress).run()
    finally:
        progress.close()
    return state.in_stage(Stage.FAILED)
