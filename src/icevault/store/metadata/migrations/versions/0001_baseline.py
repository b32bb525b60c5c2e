"""The schema as the first releases built it (their schema_version 3).

Databases made by those releases are stamped with this revision instead of running it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('access_keys',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('secret', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('user_name', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('account_settings',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'key')
    )
    op.create_table('accounts',
    sa.Column('id', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('archives',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('vault_name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('tree_hash', sa.String(length=64), nullable=False),
    sa.Column('leaf_hashes', sa.LargeBinary(), nullable=False),
    sa.Column('blob_key', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('deleted_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id', name='archives_id_key')
    )
    op.create_index('archives_by_blob', 'archives', ['blob_key'], unique=False)
    op.create_index('archives_by_vault', 'archives', ['account_id', 'vault_name', 'seq'], unique=False)
    op.create_table('garbage',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    op.create_table('identity_policies',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('user_name', sa.String(length=64), nullable=False),
    sa.Column('policy_name', sa.String(length=128), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'user_name', 'policy_name')
    )
    op.create_table('jobs',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('vault_name', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('ready_at', sa.BigInteger(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('sns_topic', sa.Text(), nullable=True),
    sa.Column('tier', sa.String(length=16), nullable=True),
    sa.Column('archive_id', sa.String(length=200), nullable=True),
    sa.Column('archive_size', sa.BigInteger(), nullable=True),
    sa.Column('archive_tree_hash', sa.String(length=64), nullable=True),
    sa.Column('retrieval_start', sa.BigInteger(), nullable=True),
    sa.Column('retrieval_end', sa.BigInteger(), nullable=True),
    sa.Column('range_tree_hash', sa.String(length=64), nullable=True),
    sa.Column('inv_format', sa.String(length=8), nullable=True),
    sa.Column('inv_start', sa.BigInteger(), nullable=True),
    sa.Column('inv_end', sa.BigInteger(), nullable=True),
    sa.Column('inv_limit', sa.BigInteger(), nullable=True),
    sa.Column('inv_marker', sa.Text(), nullable=True),
    sa.Column('inv_marker_out', sa.Text(), nullable=True),
    sa.Column('status_message', sa.Text(), nullable=True),
    sa.Column('completed_at', sa.BigInteger(), nullable=True),
    sa.Column('output_blob_key', sa.String(length=64), nullable=True),
    sa.Column('output_size', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id', name='jobs_id_key')
    )
    op.create_index('jobs_by_archive', 'jobs', ['archive_id'], unique=False)
    op.create_index('jobs_by_output', 'jobs', ['output_blob_key'], unique=False)
    op.create_index('jobs_by_status', 'jobs', ['status', 'ready_at'], unique=False)
    op.create_index('jobs_by_vault', 'jobs', ['account_id', 'vault_name', 'seq'], unique=False)
    op.create_table('notification_log',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('vault_name', sa.String(length=255), nullable=False),
    sa.Column('job_id', sa.String(length=200), nullable=False),
    sa.Column('topic', sa.Text(), nullable=False),
    sa.Column('target', sa.Text(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    op.create_table('parts',
    sa.Column('upload_id', sa.String(length=200), nullable=False),
    sa.Column('range_start', sa.BigInteger(), nullable=False),
    sa.Column('range_end', sa.BigInteger(), nullable=False),
    sa.Column('tree_hash', sa.String(length=64), nullable=False),
    sa.Column('leaf_hashes', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('upload_id', 'range_start')
    )
    op.create_table('provisioned_capacity',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('start_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('uploads',
    sa.Column('id', sa.String(length=200).with_variant(sa.String(length=200, collation='C'), 'postgresql'), nullable=False),
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('vault_name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('part_size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('staging_key', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('archive_id', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('uploads_by_staging', 'uploads', ['staging_key'], unique=False)
    op.create_index('uploads_by_vault', 'uploads', ['account_id', 'vault_name', 'state', 'id'], unique=False)
    op.create_table('users',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'name')
    )
    op.create_table('vault_notifications',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('vault_name', sa.String(length=255), nullable=False),
    sa.Column('sns_topic', sa.Text(), nullable=False),
    sa.Column('events', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'vault_name')
    )
    op.create_table('vault_policies',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('vault_name', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('lock_id', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('account_id', 'vault_name', 'kind')
    )
    op.create_table('vault_tags',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('vault_name', sa.String(length=255), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('value', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'vault_name', 'key')
    )
    op.create_table('vaults',
    sa.Column('account_id', sa.String(length=12), nullable=False),
    sa.Column('name', sa.String(length=255).with_variant(sa.String(length=255, collation='C'), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('archive_count', sa.BigInteger(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('last_inventory_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('account_id', 'name')
    )


def downgrade() -> None:
    op.drop_table('vaults')
    op.drop_table('vault_tags')
    op.drop_table('vault_policies')
    op.drop_table('vault_notifications')
    op.drop_table('users')
    op.drop_index('uploads_by_vault', table_name='uploads')
    op.drop_index('uploads_by_staging', table_name='uploads')
    op.drop_table('uploads')
    op.drop_table('settings')
    op.drop_table('provisioned_capacity')
    op.drop_table('parts')
    op.drop_table('notification_log')
    op.drop_index('jobs_by_vault', table_name='jobs')
    op.drop_index('jobs_by_status', table_name='jobs')
    op.drop_index('jobs_by_output', table_name='jobs')
    op.drop_index('jobs_by_archive', table_name='jobs')
    op.drop_table('jobs')
    op.drop_table('identity_policies')
    op.drop_table('garbage')
    op.drop_index('archives_by_vault', table_name='archives')
    op.drop_index('archives_by_blob', table_name='archives')
    op.drop_table('archives')
    op.drop_table('accounts')
    op.drop_table('account_settings')
    op.drop_table('access_keys')
