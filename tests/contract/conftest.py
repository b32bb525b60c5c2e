"""Backends the contract suites run on. Each yields a fresh, empty store."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from icevault.store.blobs.base import BlobStore
from icevault.store.blobs.local import LocalBlobStore
from icevault.store.blobs.s3 import S3BlobStore, S3Location
from icevault.store.metadata.sql import SqlMetadataStore, sqlite_url
from tests.postgres import PostgresServer
from tests.seaweed import SeaweedServer

METADATA_BACKENDS = ["sqlite", "postgres"]
# "local" writes with direct I/O on the test disk; "local-buffered" through the page cache;
# "local-tmpfs" on a memory file system (direct I/O there only since Linux 6.6).
# "s3" on a real S3-compatible object store (SeaweedFS, started once per test session).
BLOB_BACKENDS = ["local", "local-buffered", "local-tmpfs", "s3"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=METADATA_BACKENDS)
def meta(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlMetadataStore]:
    if request.param == "sqlite":
        store = SqlMetadataStore(sqlite_url(tmp_path / "meta.sqlite3"))
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        store = SqlMetadataStore(server.new_database())
    yield store
    store.close()


@pytest.fixture(params=BLOB_BACKENDS)
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    if request.param == "local-buffered":
        return LocalBlobStore(tmp_path / "blobs", direct_io=False)
    if request.param == "local-tmpfs":
        shm = Path("/dev/shm")
        assert shm.is_dir(), "this suite expects a tmpfs at /dev/shm"
        root = Path(tempfile.mkdtemp(prefix="icevault-blobs-", dir=shm))
        request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
        return LocalBlobStore(root)
    if request.param == "s3":
        server: SeaweedServer = request.getfixturevalue("seaweed")
        return S3BlobStore(S3Location.parse(server.new_store_url()), client=server.client())
    raise AssertionError(request.param)  # pragma: no cover
