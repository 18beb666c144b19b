"""balance warnings: each account's warning settings (balance_warning_settings,
XTR-2). docs/balance-warning.md.

Revision ID: 0036
Revises: 0035
"""
import sqlalchemy as sa
from alembic import op

revision = '0036'
down_revision = '0035'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'balance_warning_settings',
        sa.Column('uin', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('days_on', sa.Boolean(), nullable=False),
        sa.Column('days', sa.Integer(), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('uin', name=op.f('pk_balance_warning_settings')),
    )


def downgrade() -> None:
    op.drop_table('balance_warning_settings')
