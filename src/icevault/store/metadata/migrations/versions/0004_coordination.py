"""Coordination of several servers on one database: job leases, a notification outbox on the
jobs, and the object name of each multipart part."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("lease_until", sa.BigInteger(), nullable=True))
    op.add_column("jobs", sa.Column("notify_at", sa.BigInteger(), nullable=True))
    op.add_column("jobs", sa.Column("notify_attempts", sa.Integer(), nullable=False,
                                    server_default="0"))
    op.create_index("jobs_by_notify", "jobs", ["notify_at"])
    op.add_column("parts", sa.Column("blob_part", sa.String(length=64), nullable=True))
    op.create_index("notification_log_by_job", "notification_log", ["job_id"])


def downgrade() -> None:
    op.drop_index("notification_log_by_job", table_name="notification_log")
    with op.batch_alter_table("parts") as batch:
        batch.drop_column("blob_part")
    op.drop_index("jobs_by_notify", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("notify_attempts")
        batch.drop_column("notify_at")
        batch.drop_column("lease_until")
