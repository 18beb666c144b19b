"""orders: a renewal aligned to the account's unified expiry day records the day
and the fen its extra days add to the amount (RNW-5). docs/renewal.md.

Revision ID: 0027
Revises: 0025
"""
import sqlalchemy as sa
from alembic import op

revision = '0027'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders') as batch_op:
        batch_op.add_column(sa.Column('unified_day', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('unified_extra', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('orders') as batch_op:
        batch_op.drop_column('unified_extra')
        batch_op.drop_column('unified_day')
