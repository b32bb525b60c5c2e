"""Backends the contract suites run on. Each yields a fresh, empty store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from icevault.store.blobs.local import LocalBlobStore
from icevault.store.metadata.sql import SqlMetadataStore, sqlite_url
from tests.postgres import PostgresServer

METADATA_BACKENDS = ["sqlite", "postgres"]
BLOB_BACKENDS = ["local"]


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
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> LocalBlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    raise AssertionError(request.param)  # pragma: no cover
