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
    # Every revision in turn, from an empty database (not the store's create-and-stamp path).
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        migrations.upgrade_with_alembic(conn)
    with engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diffs == []


def test_head_constant_is_the_scripts_head() -> None:
    # A new revision without bumping HEAD would leave databases at the old revision.
    assert migrations.head() == migrations.HEAD


def _schema(url: str) -> dict[str, object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            return {
                table: (
                    sorted((c["name"], str(c["type"]), c["nullable"])
                           for c in found.get_columns(table)),
                    found.get_pk_constraint(table)["constrained_columns"],
                    sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                           for i in found.get_indexes(table)),
                    sorted((tuple(f["constrained_columns"]), f["referred_table"])
                           for f in found.get_foreign_keys(table)),
                    sorted(tuple(u["column_names"]) for u in found.get_unique_constraints(table)),
                )
                for table in sorted(found.get_table_names())
            }
    finally:
        engine.dispose()


def test_new_database_is_built_as_the_migrations_build_it(empty_url: str,
                                                          request: pytest.FixtureRequest,
                                                          tmp_path: Path) -> None:
    # A new database is created from the models and stamped at HEAD (no Alembic import);
    # it must be the same database that running every migration gives.
    SqlMetadataStore(empty_url).close()
    if empty_url.startswith("sqlite"):
        migrated_url = sqlite_url(tmp_path / "migrated.sqlite3")
    else:
        migrated_url = request.getfixturevalue("postgres").new_database()
    engine = create_engine(migrated_url)
    with engine.begin() as conn:
        migrations.upgrade_with_alembic(conn)
    engine.dispose()
    assert _schema(empty_url) == _schema(migrated_url)
    engine = create_engine(empty_url)
    with engine.connect() as conn:
        assert migrations.current(conn) == migrations.HEAD
    engine.dispose()


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
