"""Copies of every archive in further blob stores (--copy-url): one row per archive and
store, written by whichever server claims it."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archive_copies",
        sa.Column("archive_id", sa.String(length=200), primary_key=True),
        sa.Column("store", sa.String(length=255), primary_key=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("blob_key", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.BigInteger(), nullable=True),
        sa.Column("retry_at", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("archive_copies_by_state", "archive_copies", ["store", "state"])


def downgrade() -> None:
    op.drop_index("archive_copies_by_state", table_name="archive_copies")
    op.drop_table("archive_copies")
