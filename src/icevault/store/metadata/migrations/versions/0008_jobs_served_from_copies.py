"""A retrieval served from a restored cold copy names that copy."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("source_store", sa.String(length=255), nullable=True))
    op.add_column("jobs", sa.Column("source_key", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("source_key")
        batch.drop_column("source_store")
