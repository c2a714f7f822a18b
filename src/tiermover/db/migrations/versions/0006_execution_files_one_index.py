"""execution_files: no separate index on execution_id (uq_execution_files starts with it)

The unique constraint on (execution_id, file_id) serves every lookup by execution; the
second index only cost each inserted row one more index entry (one row per file an
execution handles).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 21:45:00
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('execution_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_execution_files_execution_id'))


def downgrade() -> None:
    with op.batch_alter_table('execution_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_execution_files_execution_id'), ['execution_id'],
                              unique=False)
