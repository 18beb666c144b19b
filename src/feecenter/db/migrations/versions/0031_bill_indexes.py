"""bills: indexes for the L3 lines read by deduction time (issue #24) — a day's
postpaid lines for the roll-up refresh (bill_lines.deducted_at), an account's
month sorted and paged on the index alone (bill_lines (uin, deducted_at) gets
id), an account's prepaid order lines of a month and a day's (orders (uin,
closed_at), orders closed_at). docs/bills.md.

Revision ID: 0031
Revises: 0029
"""
from alembic import op

revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_bill_lines_uin_deducted', table_name='bill_lines')
    op.create_index('ix_bill_lines_uin_deducted', 'bill_lines', ['uin', 'deducted_at', 'id'])
    op.create_index('ix_bill_lines_deducted', 'bill_lines', ['deducted_at'])
    op.create_index('ix_orders_uin_closed', 'orders', ['uin', 'closed_at'])
    op.create_index('ix_orders_closed', 'orders', ['closed_at'])


def downgrade() -> None:
    op.drop_index('ix_orders_closed', table_name='orders')
    op.drop_index('ix_orders_uin_closed', table_name='orders')
    op.drop_index('ix_bill_lines_deducted', table_name='bill_lines')
    op.drop_index('ix_bill_lines_uin_deducted', table_name='bill_lines')
    op.create_index('ix_bill_lines_uin_deducted', 'bill_lines', ['uin', 'deducted_at'])
