"""orders: the expiry job's index holds unpaid orders only

``ix_orders_state_expires`` (state, expires_at) indexed every order. The
planner, before statistics exist, could take it for a payment's
``UPDATE orders … WHERE id = … AND state = 'unpaid'`` and walk every unpaid
order; every payment also added an entry to it. The partial index
``ix_orders_unpaid_expires`` (expires_at) WHERE state = 'unpaid' serves the
expiry job alone: a paid order leaves it.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_UNPAID = sa.text("state = 'unpaid'")


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_state_expires')
        batch_op.create_index('ix_orders_unpaid_expires', ['expires_at'], unique=False,
                              postgresql_where=_UNPAID, sqlite_where=_UNPAID)


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_unpaid_expires')
        batch_op.create_index('ix_orders_state_expires', ['state', 'expires_at'], unique=False)
