"""The one store factory: which metadata and blob stores a data directory, a database URL
and a blob URL name, opened for the server, the admin commands and the benchmarks alike."""

from __future__ import annotations

from pathlib import Path

from icevault.store.blobs.base import BlobStore
from icevault.store.blobs.local import LocalBlobStore
from icevault.store.metadata.sql import SqlMetadataStore, sqlite_url

METADATA_FILE = "metadata.sqlite3"


def metadata_url_for(data_dir: Path, metadata_url: str | None) -> str:
    """The database: ``metadata_url``, or the embedded SQLite file of ``data_dir``."""
    return metadata_url or sqlite_url(data_dir / METADATA_FILE)


def open_metadata(data_dir: Path, metadata_url: str | None) -> SqlMetadataStore:
    return SqlMetadataStore(metadata_url_for(data_dir, metadata_url))


def open_blobs(data_dir: Path, blob_url: str | None) -> BlobStore:
    """The blob store: an S3-compatible bucket (``s3://...``), or files in ``data_dir``."""
    if blob_url:
        # Imported only when used: boto3 adds a quarter of a second to every start.
        from icevault.store.blobs.s3 import S3BlobStore, S3Location

        return S3BlobStore(S3Location.parse(blob_url))
    return LocalBlobStore(data_dir)
