"""where a copy on a tape lies: the byte of the cartridge where its data starts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 14:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('file_copies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('position', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('file_copies', schema=None) as batch_op:
        batch_op.drop_column('position')
