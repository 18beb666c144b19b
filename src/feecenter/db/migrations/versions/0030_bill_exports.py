"""bills: the bill exports of the download center (bill_exports), BIL-7. docs/bills.md.

Revision ID: 0030
Revises: 0029
"""
import sqlalchemy as sa
from alembic import op

revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'bill_exports',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('request_key', sa.String(length=64), nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('level', sa.String(length=20), nullable=False),
        sa.Column('fmt', sa.String(length=10), nullable=False),
        sa.Column('tag_key', sa.String(length=127), nullable=True),
        sa.Column('requested_by', sa.String(length=200), nullable=False),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('lines_written', sa.BigInteger(), nullable=False),
        sa.Column('lines_total', sa.BigInteger(), nullable=True),
        sa.Column('file_name', sa.String(length=200), nullable=True),
        sa.Column('size_bytes', sa.BigInteger(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=True),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.Column('expires_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_bill_exports')),
        sa.UniqueConstraint('uin', 'request_key', name='uq_bill_exports_uin_request_key'),
    )
    op.create_index('ix_bill_exports_state', 'bill_exports', ['state'])
    op.create_index('ix_bill_exports_uin_created', 'bill_exports', ['uin', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_bill_exports_uin_created', table_name='bill_exports')
    op.drop_index('ix_bill_exports_state', table_name='bill_exports')
    op.drop_table('bill_exports')
