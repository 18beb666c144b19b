"""catalog: the products' legacy monthly freeze settlement option (monthly_freeze);
settlement: the monthly freezes of each cycle charge and the settled months
(monthly_freezes, monthly_freeze_settlements; FRZ-5). docs/settlement.md.

Revision ID: 0035
Revises: 0033
"""
import sqlalchemy as sa
from alembic import op

revision = '0035'
down_revision = '0033'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    # plain ADD COLUMN, not a batch: on SQLite a batch may recreate ``products``,
    # which billing items and others reference (see 0024)
    op.add_column('products', sa.Column('monthly_freeze', sa.Boolean(), nullable=False,
                                        server_default=sa.text('false')))
    op.create_table(
        'monthly_freezes',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('product_code', sa.String(length=40), nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('cycle', sa.String(length=10), nullable=False),
        sa.Column('period_key', sa.String(length=20), nullable=False),
        sa.Column('kind', sa.String(length=12), nullable=False),
        sa.Column('charge_key', sa.String(length=200), nullable=False),
        sa.Column('cost', sa.BigInteger(), nullable=False),
        sa.Column('frozen', sa.BigInteger(), nullable=False),
        sa.Column('shortfall', sa.BigInteger(), nullable=False),
        sa.Column('hold_id', sa.BigInteger(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_monthly_freezes')),
        sa.UniqueConstraint('charge_key', name='uq_monthly_freezes_charge_key'),
    )
    op.create_index('ix_monthly_freezes_month', 'monthly_freezes', ['month', 'uin'])
    op.create_table(
        'monthly_freeze_settlements',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('product_code', sa.String(length=40), nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('cost', sa.BigInteger(), nullable=False),
        sa.Column('released', sa.BigInteger(), nullable=False),
        sa.Column('txn_id', sa.BigInteger(), nullable=True),
        sa.Column('settled_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_monthly_freeze_settlements')),
        sa.UniqueConstraint('uin', 'product_code', 'month',
                            name='uq_monthly_freeze_settlements_once'),
    )


def downgrade() -> None:
    op.drop_table('monthly_freeze_settlements')
    op.drop_index('ix_monthly_freezes_month', table_name='monthly_freezes')
    op.drop_table('monthly_freezes')
    # not a batch (see 0024): SQLite 3.35+ drops a plain column
    op.drop_column('products', 'monthly_freeze')
