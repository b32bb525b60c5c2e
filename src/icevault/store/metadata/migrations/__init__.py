"""Schema migrations (Alembic), applied by the metadata store when it opens a database.

``versions/`` holds one file per revision; a release adds revisions and never edits one that
has shipped. Databases made before Alembic carry a ``schema_version`` table at version 3:
they are stamped with the baseline revision, which describes exactly that schema.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

BASELINE = "0001"
_LEGACY_VERSION = 3
# Any constant: servers starting together on one PostgreSQL database take turns migrating.
_ADVISORY_LOCK = 0x1CE7A017


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    revision = ScriptDirectory.from_config(config).get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection) -> None:
    """Bring the database on ``connection`` (inside a write transaction) to the newest
    revision."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
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
