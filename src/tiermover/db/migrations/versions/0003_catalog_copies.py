"""catalog: file checksums, copies on secondary storage, backup sets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 15:00:00
"""
from alembic import op
import sqlalchemy as sa
import tiermover.db.base


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checksum', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('algorithm', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('seen_by', sa.String(length=32), nullable=True))

    op.create_table('file_copies',
    sa.Column('id', ID, nullable=False),
    sa.Column('file_id', ID, nullable=False),
    sa.Column('storage_kind', sa.String(length=16), nullable=False),
    sa.Column('storage_id', sa.BigInteger(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('file_path', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('mtime', tiermover.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('checksum', sa.String(length=128), nullable=True),
    sa.Column('algorithm', sa.String(length=16), nullable=True),
    sa.Column('execution_id', sa.String(length=32), nullable=True),
    sa.Column('creation_date', tiermover.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('verified_date', tiermover.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('verified_ok', sa.Boolean(), nullable=True),
    sa.ForeignKeyConstraint(['file_id'], ['files.id'], name=op.f('fk_file_copies_file_id_files'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_file_copies')),
    sa.UniqueConstraint('storage_kind', 'storage_id', 'path', name='uq_file_copies_location')
    )
    with op.batch_alter_table('file_copies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_file_copies_file_id'), ['file_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_file_copies_execution_id'), ['execution_id'], unique=False)

    op.create_table('backup_set_files',
    sa.Column('id', ID, nullable=False),
    sa.Column('execution_id', sa.String(length=32), nullable=False),
    sa.Column('file_id', ID, nullable=False),
    sa.Column('copy_id', ID, nullable=False),
    sa.ForeignKeyConstraint(['copy_id'], ['file_copies.id'], name=op.f('fk_backup_set_files_copy_id_file_copies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['execution_id'], ['task_executions.id'], name=op.f('fk_backup_set_files_execution_id_task_executions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['file_id'], ['files.id'], name=op.f('fk_backup_set_files_file_id_files'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backup_set_files')),
    sa.UniqueConstraint('execution_id', 'file_id', name='uq_backup_set_files')
    )
    with op.batch_alter_table('backup_set_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_backup_set_files_copy_id'), ['copy_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_backup_set_files_execution_id'), ['execution_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_backup_set_files_file_id'), ['file_id'], unique=False)


def downgrade() -> None:
    op.drop_table('backup_set_files')
    op.drop_table('file_copies')
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.drop_column('seen_by')
        batch_op.drop_column('algorithm')
        batch_op.drop_column('checksum')
