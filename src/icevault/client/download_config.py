"""How a verified download runs (chunk size, workers, retries, back-off, pacing), and what
it knows of the job it downloads."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from icevault.core.treehash import MIB


@dataclass(frozen=True)
class DownloadConfig:
    chunk_size: int = 8 * MIB
    workers: int = 4
    resume: bool = True
    bandwidth_limit: float | None = None  # bytes per second
    max_attempts: int = 8
    retry_deadline_s: float = 900.0  # per chunk, from its first attempt
    backoff_base_s: float = 0.25
    backoff_cap_s: float = 20.0
    read_block: int = MIB
    # Direct writes this large, two per worker (one filling while the other is written),
    # keep a virtual disk busy: 1.2 GB/s with 4 MiB, 1.5 GB/s with 8 MiB measured here.
    write_block: int = 8 * MIB
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)


@dataclass
class JobFacts:
    """What the download needs to know about the job, from DescribeJob."""

    output_size: int
    archive_start: int
    archive_size: int | None
    expected_tree_hash: str | None
    checksummed: bool  # archive outputs carry tree hashes; inventories do not
    archive_id: str | None
