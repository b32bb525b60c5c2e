"""Schema migrations on SQLite and PostgreSQL: the migrated schema is the models' schema,
and databases made before Alembic are taken over with their data."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from icevault.store.metadata import migrations
from icevault.store.metadata.schema import metadata
from icevault.store.metadata.sql import SqlMetadataStore, sqlite_url
from tests.postgres import PostgresServer


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "m.sqlite3")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


def test_migrated_schema_matches_the_models(empty_url: str) -> None:
    SqlMetadataStore(empty_url).close()
    engine = create_engine(empty_url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diffs == []


def test_pre_alembic_database_is_stamped_and_upgraded(empty_url: str) -> None:
    # Build what the first releases left: the baseline schema, recorded as schema_version 3.
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        from alembic import command

        config = migrations._config(conn)
        command.upgrade(config, migrations.BASELINE)
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(text("CREATE TABLE schema_version (version INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO schema_version VALUES (1), (2), (3)"))
        conn.execute(text("INSERT INTO accounts (id, created_at) VALUES ('123456789012', 1)"))
        conn.execute(text(
            "INSERT INTO vaults (account_id, name, created_at, archive_count, size_bytes) "
            "VALUES ('123456789012', 'kept', 1, 0, 0)"))
    engine.dispose()
    store = SqlMetadataStore(empty_url)
    try:
        assert store.schema_revision() == migrations.head()
        from icevault.core.models import VaultRef

        assert store.get_vault(VaultRef("123456789012", "kept")) is not None
    finally:
        store.close()
    engine = create_engine(empty_url)
    with engine.connect() as conn:
        assert "schema_version" not in inspect(conn).get_table_names()
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()


def test_unknown_development_schema_is_refused(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "old.sqlite3")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE schema_version (version INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO schema_version VALUES (1)"))
    engine.dispose()
    with pytest.raises(RuntimeError, match="schema version 1"):
        SqlMetadataStore(url)
