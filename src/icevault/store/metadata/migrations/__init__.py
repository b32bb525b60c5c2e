"""Schema migrations (Alembic), applied by the metadata store when it opens a database.

``versions/`` holds one file per revision; a release adds revisions and never edits one that
has shipped. Databases made before Alembic carry a ``schema_version`` table at version 3:
they are stamped with the baseline revision, which describes exactly that schema.

Alembic is imported only when there is something to migrate. A database already at
:data:`HEAD` is recognised with one query, and an empty one is built from the models and
stamped (Alembic's own recipe for a new database, "create_all, then stamp head", with the
stamp written directly): importing Alembic and reading its scripts takes 0.4 s here, most of
a test server's start. A test keeps :data:`HEAD` equal to the scripts' head, and another
that migrating an empty database step by step gives exactly the models' schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    inspect,
    text,
)

from icevault.store.metadata.schema import metadata

if TYPE_CHECKING:
    from alembic.config import Config

BASELINE = "0001"
HEAD = "0009"  # the newest revision in versions/; bump it with every new revision

# Alembic's version table, exactly as Alembic creates it.
_VERSION_TABLE = Table(
    "alembic_version", MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
_LEGACY_VERSION = 3
# Any constant: servers starting together on one PostgreSQL database take turns migrating.
_ADVISORY_LOCK = 0x1CE7A017


def _config(connection: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The head revision as Alembic reads it from the scripts."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    revision = ScriptDirectory.from_config(config).get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection) -> None:
    """Bring the database on ``connection`` (inside a write transaction) to the newest
    revision."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
    tables = set(inspect(connection).get_table_names())
    if not tables:
        metadata.create_all(connection)
        _VERSION_TABLE.create(connection)
        connection.execute(_VERSION_TABLE.insert().values(version_num=HEAD))
        return
    if "alembic_version" in tables and connection.execute(
        text("SELECT version_num FROM alembic_version")
    ).scalars().all() == [HEAD]:
        return
    upgrade_with_alembic(connection)


def upgrade_with_alembic(connection: Connection) -> None:
    """Run Alembic's upgrade to head (stamping a pre-Alembic database first)."""
    from alembic import command

    config = _config(connection)
    tables = set(inspect(connection).get_table_names())
    if "schema_version" in tables and "alembic_version" not in tables:
        version = connection.execute(text("SELECT max(version) FROM schema_version")).scalar()
        if version != _LEGACY_VERSION:
            raise RuntimeError(
                f"this database has schema version {version} from a development build; "
                "icevault can migrate only from version 3"
            )
        command.stamp(config, BASELINE)
        connection.execute(text("DROP TABLE schema_version"))
    command.upgrade(config, "head")
