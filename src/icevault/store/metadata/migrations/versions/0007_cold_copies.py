"""Hot bytes removed once every copy is verified (--hot-days), and the restores of cold
copies a retrieval asked for."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("archives", sa.Column("hot_evicted_at", sa.BigInteger(), nullable=True))
    op.add_column("archive_copies",
                  sa.Column("restore_requested_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("archive_copies") as batch:
        batch.drop_column("restore_requested_at")
    with op.batch_alter_table("archives") as batch:
        batch.drop_column("hot_evicted_at")
