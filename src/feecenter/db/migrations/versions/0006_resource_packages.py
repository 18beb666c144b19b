"""resource packages (SET-10): what a package item covers, what a bill line it covered, the trace

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('bill_lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('package_quantity', sa.BigInteger(), nullable=False,
                                      server_default=sa.text('0')))
    with op.batch_alter_table('billing_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('covers_product', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('covers_item', sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column('covers_quantity', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('covers_per', sa.String(length=10), nullable=True))
    op.create_table(
        'package_uses',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('package_id', sa.String(length=40), nullable=False),
        sa.Column('resource_id', sa.String(length=40), nullable=False),
        sa.Column('billing_item', sa.String(length=60), nullable=False),
        sa.Column('cycle', sa.String(length=10), nullable=False),
        sa.Column('period_key', sa.String(length=20), nullable=False),
        sa.Column('kind', sa.String(length=12), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('quantity', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_package_uses')),
        sa.UniqueConstraint('package_id', 'resource_id', 'billing_item', 'cycle', 'period_key',
                            'kind', 'sequence', name='uq_package_uses_once'),
    )
    op.create_index('ix_package_uses_package_month', 'package_uses', ['package_id', 'month'])
    op.create_index('ix_package_uses_uin_period', 'package_uses', ['uin', 'period_key'])


def downgrade() -> None:
    op.drop_index('ix_package_uses_uin_period', table_name='package_uses')
    op.drop_index('ix_package_uses_package_month', table_name='package_uses')
    op.drop_table('package_uses')
    with op.batch_alter_table('billing_items', schema=None) as batch_op:
        for name in ('covers_per', 'covers_quantity', 'covers_item', 'covers_product'):
            batch_op.drop_column(name)
    with op.batch_alter_table('bill_lines', schema=None) as batch_op:
        batch_op.drop_column('package_quantity')
