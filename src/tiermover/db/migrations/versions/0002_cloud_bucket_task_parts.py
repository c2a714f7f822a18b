"""task sources and destinations on cloud buckets

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 13:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

PARTS = ('task_sources', 'task_destinations')


def upgrade() -> None:
    for table in PARTS:
        # Batch mode: SQLite adds a foreign key only by rebuilding the table.
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column(
                'cloud_bucket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                nullable=True))
            batch_op.create_foreign_key(
                batch_op.f(f'fk_{table}_cloud_bucket_id_cloud_buckets'), 'cloud_buckets',
                ['cloud_bucket_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    for table in PARTS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f'fk_{table}_cloud_bucket_id_cloud_buckets'),
                                     type_='foreignkey')
            batch_op.drop_column('cloud_bucket_id')
