"""Console sessions that end before they expire (sign-out, a key disabled), failed sign-ins
counted per client address and per key, and when an imported archive arrived."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("archives", sa.Column("stored_at", sa.BigInteger(), nullable=True))
    op.create_table(
        "console_session_ends",
        sa.Column("subject", sa.String(length=160), primary_key=True),
        sa.Column("ended_at", sa.BigInteger(), nullable=False),
        sa.Column("keep_until", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "sign_in_failures",
        sa.Column("subject", sa.String(length=160), primary_key=True),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sign_in_failures")
    op.drop_table("console_session_ends")
    with op.batch_alter_table("archives") as batch:
        batch.drop_column("stored_at")
