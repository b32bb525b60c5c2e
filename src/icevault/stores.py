"""The one store factory: which metadata and blob stores a data directory, a database URL
and a blob URL name, opened for the server, the admin commands and the benchmarks alike."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from icevault.store.blobs.base import BlobStore
from icevault.store.blobs.local import LocalBlobStore
from icevault.store.metadata.sql import SqlMetadataStore, sqlite_url

METADATA_FILE = "metadata.sqlite3"

log = logging.getLogger("icevault.server")


def metadata_url_for(data_dir: Path, metadata_url: str | None) -> str:
    """The database: ``metadata_url``, or the embedded SQLite file of ``data_dir``."""
    return metadata_url or sqlite_url(data_dir / METADATA_FILE)


def open_metadata(data_dir: Path, metadata_url: str | None) -> SqlMetadataStore:
    return SqlMetadataStore(metadata_url_for(data_dir, metadata_url))


def open_blobs(data_dir: Path, blob_url: str | None) -> BlobStore:
    """The blob store: an S3-compatible bucket (``s3://...``), or files in ``data_dir``."""
    if blob_url:
        # Imported only when used: boto3 adds a quarter of a second to every start.
        from icevault.store.blobs.s3 import COLD_CLASSES, S3BlobStore, S3Location

        location = S3Location.parse(blob_url)
        if location.storage_class in COLD_CLASSES:
            raise ValueError(f"--blob-url: the server's own store cannot be in "
                             f"{location.storage_class} (its bytes must be readable at once); "
                             "use it for a --copy-url")
        return S3BlobStore(location)
    return LocalBlobStore(data_dir)


# What a --copy-url may say besides its location, per scheme.
_COPY_OPTIONS = {"file": frozenset(),
                 "s3": frozenset({"endpoint", "region", "profile", "storage-class",
                                  "restore-days"})}


@dataclass(frozen=True, slots=True)
class CopyTarget:
    """A ``--copy-url``: its name (the URL without its options: what copy rows record, so
    reordering the flags changes nothing) and the URL itself."""

    name: str
    url: str


def parse_copy_url(url: str) -> CopyTarget:
    """Check a ``--copy-url``; ValueError says what is wrong, in one line."""
    parsed = urlparse(url)
    if parsed.scheme not in _COPY_OPTIONS:
        raise ValueError(f"--copy-url {url!r}: expected file:///PATH or "
                         "s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME]")
    options = parse_qs(parsed.query, keep_blank_values=True)
    unknown = sorted(set(options) - _COPY_OPTIONS[parsed.scheme])
    if unknown:
        raise ValueError(f"--copy-url {url!r}: unknown option {unknown[0]!r} (a {parsed.scheme} "
                         f"store takes: {', '.join(sorted(_COPY_OPTIONS[parsed.scheme])) or 'none'})")
    if parsed.scheme == "file":
        if parsed.netloc or not parsed.path.startswith("/"):
            raise ValueError(f"--copy-url {url!r}: a file URL names an absolute path, "
                             "file:///PATH")
        name = f"file://{Path(parsed.path).resolve()}"
    else:
        if not parsed.netloc:
            raise ValueError(f"--copy-url {url!r}: no bucket")
        from icevault.store.blobs.s3 import S3Location

        try:
            S3Location.parse(url)
        except ValueError as exc:
            raise ValueError(f"--copy-url {url!r}: {exc}") from None
        name = f"s3://{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
    if len(name) > 255:
        raise ValueError(f"--copy-url {url!r}: longer than 255 characters")
    return CopyTarget(name, url)


def open_copies(urls: tuple[str, ...] | list[str]) -> dict[str, BlobStore]:
    """The copy stores of ``--copy-url``, by name (a file store's directory is made, private
    to this user)."""
    stores: dict[str, BlobStore] = {}
    for url in urls:
        target = parse_copy_url(url)
        if target.name in stores:
            raise ValueError(f"--copy-url {url!r}: the same store twice")
        if target.name.startswith("file://"):
            stores[target.name] = LocalBlobStore(Path(target.name.removeprefix("file://")))
        else:
            from icevault.store.blobs.s3 import S3BlobStore, S3Location

            stores[target.name] = S3BlobStore(S3Location.parse(url), ensure_bucket=False)
    return stores


def warn_of_shared_disks(blobs: BlobStore, copies: dict[str, BlobStore]) -> None:
    """One warning line for each local copy store on the file system of the data directory
    or of another copy store: allowed (a test, or a disk that is itself redundant), but such
    a copy does not outlive that disk."""
    local = [("the data directory", blobs)] if isinstance(blobs, LocalBlobStore) else []
    local += [(f"the copy store {name}", store) for name, store in copies.items()
              if isinstance(store, LocalBlobStore)]
    devices = [(name, store.root.stat().st_dev) for name, store in local]
    for n, (first, device) in enumerate(devices):
        for second, other in devices[n + 1:]:
            if device == other:
                store = second.removeprefix("the copy store ")
                log.warning("the copy store %s is on the same file system as %s: a failure "
                            "of that disk loses both", store, first,
                            extra={"event": "copy_store_shares_disk", "store": store})


def _place(url: str) -> tuple[str, ...]:
    """Where a store keeps its objects, as a path of names: a directory's parts, or an
    endpoint, a bucket and a prefix's parts."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return ("file", *Path(parsed.path).resolve().parts)
    endpoint = parse_qs(parsed.query).get("endpoint", [""])[0].rstrip("/")
    return ("s3", endpoint, parsed.netloc, *[p for p in parsed.path.split("/") if p])


def check_store_places(data_dir: Path, blob_url: str | None, copy_urls: Sequence[str]) -> None:
    """ValueError, in one line, when a copy store would share its place with the data
    directory, the server's own store or another copy store: at it, inside it or around
    it. Every store sweeps the objects its metadata does not name as a crash's leftovers, so
    two stores in one place would delete each other's bytes."""
    places = [("the data directory", ("file", *data_dir.resolve().parts))]
    if blob_url:
        places.append((f"--blob-url {blob_url}", _place(blob_url)))
    places += [(f"--copy-url {url}", _place(url)) for url in copy_urls]
    for n, (name, place) in enumerate(places):
        for other_name, other in places[:n]:
            shorter = min(len(place), len(other))
            if place[:shorter] != other[:shorter]:
                continue
            where = ("the same place as" if len(place) == len(other)
                     else "inside" if len(place) > len(other) else "around")
            raise ValueError(f"{name} is {where} {other_name}: a copy store needs a place of "
                             "its own, or the stores would delete each other's objects")
