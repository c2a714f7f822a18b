"""what blank cartridges of a tape library are: capacity, type, barcode prefix

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 14:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tape_libraries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cartridge_capacity', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('cartridge_type', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('barcode_prefix', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tape_libraries', schema=None) as batch_op:
        batch_op.drop_column('barcode_prefix')
        batch_op.drop_column('cartridge_type')
        batch_op.drop_column('cartridge_capacity')
