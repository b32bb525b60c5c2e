"""Backends the contract suites run on. Each yields a fresh, empty store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from icevault.store.blobs.local import LocalBlobStore
from icevault.store.metadata.sql import SqlMetadataStore, sqlite_url

METADATA_BACKENDS = ["sqlite"]
BLOB_BACKENDS = ["local"]


@pytest.fixture(params=METADATA_BACKENDS)
def meta(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlMetadataStore]:
    if request.param == "sqlite":
        store = SqlMetadataStore(sqlite_url(tmp_path / "meta.sqlite3"))
    else:  # pragma: no cover - other backends are added with their issue
        raise AssertionError(request.param)
    yield store
    store.close()


@pytest.fixture(params=BLOB_BACKENDS)
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> LocalBlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    raise AssertionError(request.param)  # pragma: no cover


