"""Alembic's environment: migrations always run on a connection the store hands in."""

from __future__ import annotations

from alembic import context

from icevault.store.metadata.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
