"""orders: an upgrade order records the spec it was priced from

``orders.from_spec_item``: the resource's spec when ``create_upgrade`` priced
the order (NULL for other kinds). Paying or delivering an upgrade is refused
as stale exactly when the resource's spec is not this one or its expiry is
not the order's ``service_end`` (docs/orders.md, "Stale prices"); until now
that was partly judged from order ids and timestamps.

Upgrade orders created before this revision have it NULL: what they were
priced from cannot be known without the timestamps, so they are refused as
stale when paid, or when delivered if paid and awaiting delivery by hand
(the operator records the failed delivery, which releases the freeze). The
customer creates a new upgrade order; nothing is undercharged. Delivered
upgrades keep NULL: they are history and nothing reads it.

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('from_spec_item', sa.String(length=60), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('from_spec_item')
