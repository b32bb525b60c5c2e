"""When a cold copy's restore stops being readable, as its store said once it was done."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("archive_copies", sa.Column("restored_until", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("archive_copies") as batch:
        batch.drop_column("restored_until")
