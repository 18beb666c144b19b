"""orders: a per-product no-reason refund window (ORD-4)

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # products loaded before this revision keep the window that used to be fixed: 5 days
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refund_window_days', sa.Integer(), nullable=False,
                                      server_default=sa.text('5')))


def downgrade() -> None:
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_column('refund_window_days')
