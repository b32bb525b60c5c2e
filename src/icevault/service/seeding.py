"""Seeded vaults for tests: thousands of archives in seconds, for inventories and listings.

Seeded archives hold zero bytes (sparse files: they take no disk space and are written
instantly) under real Glacier bookkeeping: 138-character IDs, exact sizes, exact tree hashes,
descriptions as real tools write them and creation dates spread over years. Retrieving one
returns exactly its zeros, verified like any archive.

Tree hashes are cheap here because every full 1 MiB leaf of zeros has the same digest, and
the digests of the partial last leaves come from one incremental pass over at most 1 MiB of
zeros (hashlib states are copied at each length needed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from icevault.core import treehash
from icevault.core.errors import InvalidParameterValueError, LimitExceededError
from icevault.core.ids import new_archive_id
from icevault.core.models import Archive, VaultRef
from icevault.core.treehash import LEAF_SIZE
from icevault.service.context import Context

# A seeded archive's leaf hashes are held while it is recorded (32 bytes a MiB): 64 GiB
# makes 2 MiB of them. Dates go back at most this many years (never before 1970).
MAX_SEEDED_SIZE = 64 * 1024**3
MAX_SEEDED_YEARS = 50
MAX_SEEDED = 1_000_000
YEAR_MS = 365 * 24 * 3600 * 1000
DESCRIPTION_STYLES = ("mixed", "filenames", "mt2", "fastglacier", "empty")

# Glacier descriptions are printable ASCII, so tools encode other names (mt2, FastGlacier);
# plain descriptions are ASCII names, quotes and commas included.
_ASCII_NAMES = (
    "IMG_{n:04d}.jpg", "backup-{n}.tar.gz", "report, \"final\" {n}.pdf",
    "reports/2019/q{q}/summary {n}.xlsx", "db dump {n}.sql.zst", "notes; draft {n}.txt",
)
_UTF8_NAMES = ("Résumé, \"final\" {n}.pdf", "家族写真 {n}.png", "Ωmega/données {n}.csv")


@runtime_checkable
class ZeroFilledBlobs(Protocol):
    """A blob store that can hold a blob of zeros without writing them."""

    def create_zero_filled(self, size: int) -> str: ...


@dataclass(frozen=True, slots=True)
class SeedRequest:
    archives: int
    min_size: int
    max_size: int
    descriptions: str = "mixed"
    seed: int = 0
    years: float = 5.0  # creation dates spread over this many years before now


@dataclass(frozen=True, slots=True)
class SeedReport:
    archives: int
    bytes: int


def _description(style: str, n: int, rng: random.Random, created_ms: int,
                 earlier: Sequence[str]) -> str:
    if style == "mixed":
        roll = rng.random()
        if roll < 0.05:
            return ""
        if roll < 0.15 and earlier:
            return rng.choice(earlier)  # tools upload the same file name again
        style = rng.choice(("filenames", "mt2", "fastglacier"))
    if style == "empty":
        return ""
    name = rng.choice(_ASCII_NAMES if style == "filenames" else _ASCII_NAMES + _UTF8_NAMES)
    name = name.format(n=n, q=n % 4 + 1)
    stamp = datetime.fromtimestamp(created_ms / 1000, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    if style == "mt2":
        # mt-aws-glacier: "mt2 " and base64url of {"filename", "mtime"}.
        record = json.dumps({"filename": name, "mtime": stamp}, ensure_ascii=False)
        return "mt2 " + base64.urlsafe_b64encode(record.encode()).decode().rstrip("=")
    if style == "fastglacier":
        # FastGlacier: a small XML record with the path base64-encoded.
        path = base64.b64encode(name.encode()).decode()
        return f"<m><v>4</v><p>{path}</p><lm>{stamp}</lm></m>"
    return name


def _sizes(request: SeedRequest, rng: random.Random) -> list[int]:
    lo, hi = request.min_size, request.max_size
    if lo == hi:
        return [lo] * request.archives
    # Log-uniform, as real collections are: many small files, a few large ones.
    low, high = math.log(lo), math.log(hi + 1)
    return [min(hi, max(lo, int(math.exp(rng.uniform(low, high))))) for _ in range(request.archives)]


def _tail_digests(lengths: set[int]) -> dict[int, bytes]:
    running = hashlib.sha256()
    done = 0
    digests = {}
    zeros = bytes(LEAF_SIZE)
    for length in sorted(lengths):
        running.update(zeros[: length - done])
        done = length
        digests[length] = running.copy().digest()
    return digests


def seed_vault(ctx: Context, ref: VaultRef, request: SeedRequest) -> SeedReport:
    """Add ``request.archives`` zero-filled archives to the vault ``ref`` (created if
    missing)."""
    if not 1 <= request.archives <= MAX_SEEDED:
        raise InvalidParameterValueError(f"archives is 1 to {MAX_SEEDED}")
    if not 1 <= request.min_size <= request.max_size <= MAX_SEEDED_SIZE:
        raise InvalidParameterValueError(
            f"sizes are (min, max) with 1 <= min <= max <= {MAX_SEEDED_SIZE}")
    if not 0 <= request.years <= MAX_SEEDED_YEARS:
        raise InvalidParameterValueError(f"years is 0 to {MAX_SEEDED_YEARS}")
    if request.descriptions not in DESCRIPTION_STYLES:
        raise InvalidParameterValueError(
            f"descriptions is one of {', '.join(DESCRIPTION_STYLES)}"
        )
    blobs = ctx.blobs
    if not isinstance(blobs, ZeroFilledBlobs):
        raise InvalidParameterValueError("Seeding needs the local blob store (no --blob-url)")
    rng = random.Random(request.seed)
    sizes = _sizes(request, rng)
    now = ctx.clock.now_ms()
    span = int(request.years * YEAR_MS)
    created = sorted(now - rng.randrange(span + 1) for _ in sizes)
    full_leaf = hashlib.sha256(bytes(LEAF_SIZE)).digest()
    tails = _tail_digests({size % LEAF_SIZE for size in sizes if size % LEAF_SIZE})
    if not ctx.meta.create_vault(ref, now, ctx.limits.max_vaults):  # true when it exists
        raise LimitExceededError(f"The account has {ctx.limits.max_vaults} vaults already")
    records: list[tuple[Archive, bytes]] = []
    descriptions: list[str] = []
    for n, (size, created_ms) in enumerate(zip(sizes, created, strict=True)):
        leaves = [full_leaf] * (size // LEAF_SIZE)
        if size % LEAF_SIZE:
            leaves.append(tails[size % LEAF_SIZE])
        description = _description(request.descriptions, n, rng, created_ms, descriptions)
        descriptions.append(description)
        archive = Archive(
            id=new_archive_id(), vault=ref, description=description, size=size,
            tree_hash=treehash.combine(leaves).hex(), created_at=created_ms,
            blob_key=blobs.create_zero_filled(size),
        )
        records.append((archive, treehash.pack_leaves(leaves)))
    if not ctx.meta.insert_archives(records):
        for archive, _ in records:
            assert archive.blob_key is not None
            ctx.blobs.delete(archive.blob_key)
        raise InvalidParameterValueError(f"Vault {ref.name} was deleted while being seeded")
    return SeedReport(len(records), sum(sizes))
