"""Multipart uploads that import an archive under its original ID and creation date
(``icevault migrate``)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("uploads", sa.Column("import_archive_id", sa.String(length=200), nullable=True))
    op.add_column("uploads", sa.Column("import_created_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("import_created_at")
        batch.drop_column("import_archive_id")
