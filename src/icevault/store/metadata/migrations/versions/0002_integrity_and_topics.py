"""Integrity marks on archives (corrupt, last verified), registered SNS topics, and the
archive size a multipart upload's parts declared."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("archives", sa.Column("corrupt_at", sa.BigInteger(), nullable=True))
    op.add_column("archives", sa.Column("corrupt_reason", sa.Text(), nullable=True))
    op.add_column("archives", sa.Column("verified_at", sa.BigInteger(), nullable=True))
    op.add_column("uploads", sa.Column("declared_size", sa.BigInteger(), nullable=True))
    op.create_table(
        "topics",
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "name"),
    )


def downgrade() -> None:
    op.drop_table("topics")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("declared_size")
    with op.batch_alter_table("archives") as batch:
        batch.drop_column("verified_at")
        batch.drop_column("corrupt_reason")
        batch.drop_column("corrupt_at")
