"""bills: the daily cost-bill roll-ups (bill_rollups) and the days refreshed
(bill_rollup_days), BIL-2. docs/bills.md.

Revision ID: 0028
Revises: 0027
"""
import sqlalchemy as sa
from alembic import op

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'bill_rollups',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('deducted_on', sa.Date(), nullable=False),
        sa.Column('deducted_month', sa.String(length=7), nullable=False),
        sa.Column('usage_month', sa.String(length=7), nullable=False),
        sa.Column('product_code', sa.String(length=40), nullable=False),
        sa.Column('project_id', sa.BigInteger(), nullable=False),
        sa.Column('project_name', sa.String(length=100), nullable=False),
        sa.Column('region', sa.String(length=40), nullable=False),
        sa.Column('pay_mode', sa.String(length=10), nullable=False),
        sa.Column('resource_id', sa.String(length=40), nullable=False),
        sa.Column('original_cost', sa.BigInteger(), nullable=False),
        sa.Column('discounted_cost', sa.BigInteger(), nullable=False),
        sa.Column('deducted', sa.BigInteger(), nullable=False),
        sa.Column('voucher_paid', sa.BigInteger(), nullable=False),
        sa.Column('cash_paid', sa.BigInteger(), nullable=False),
        sa.Column('gift_paid', sa.BigInteger(), nullable=False),
        sa.Column('precision_diff', sa.BigInteger(), nullable=False),
        sa.Column('lines', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_bill_rollups')),
    )
    op.create_index('ix_bill_rollups_uin_month', 'bill_rollups', ['uin', 'deducted_month'])
    op.create_index('ix_bill_rollups_day', 'bill_rollups', ['deducted_on'])
    op.create_table(
        'bill_rollup_days',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('lines', sa.BigInteger(), nullable=False),
        sa.Column('refreshed_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('day', name=op.f('pk_bill_rollup_days')),
    )


def downgrade() -> None:
    op.drop_table('bill_rollup_days')
    op.drop_index('ix_bill_rollups_day', table_name='bill_rollups')
    op.drop_index('ix_bill_rollups_uin_month', table_name='bill_rollups')
    op.drop_table('bill_rollups')
