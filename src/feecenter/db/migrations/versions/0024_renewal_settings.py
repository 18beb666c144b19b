"""renewal: each resource's auto-renew flag and period, each account's default and
unified expiry day; the products' recovery period, auto-renewal retry days and
whether renewal management lists them (RNW-1, RNW-2, RNW-5..7). docs/renewal.md.

Revision ID: 0024
Revises: 0023
"""
import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ALTER TABLE … ADD COLUMN, not a batch: on SQLite a batch may recreate
    # ``products``, which billing items and others reference (a foreign-key failure
    # once rows exist)
    op.add_column('products', sa.Column('recovery_days', sa.Integer(), nullable=False,
                                        server_default=sa.text('7')))
    op.add_column('products', sa.Column('auto_renew_retry_days', sa.Integer(), nullable=False,
                                        server_default=sa.text('3')))
    op.add_column('products', sa.Column('renewal_managed', sa.Boolean(), nullable=False,
                                        server_default=sa.text('true')))
    op.create_table(
        'renewal_settings',
        sa.Column('resource_id', sa.String(length=40), nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('auto_renew', sa.Boolean(), nullable=False),
        sa.Column('months', sa.Integer(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('resource_id', name=op.f('pk_renewal_settings')),
    )
    op.create_index('ix_renewal_settings_uin', 'renewal_settings', ['uin'])
    op.create_table(
        'renewal_accounts',
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('auto_renew_default', sa.Boolean(), nullable=False),
        sa.Column('unified_day', sa.Integer(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('uin', name=op.f('pk_renewal_accounts')),
    )


def downgrade() -> None:
    op.drop_table('renewal_accounts')
    op.drop_index('ix_renewal_settings_uin', table_name='renewal_settings')
    op.drop_table('renewal_settings')
    # not a batch: on SQLite that recreates ``products``, which billing items and
    # others reference (a foreign-key failure); SQLite 3.35+ drops a plain column
    for column in ('renewal_managed', 'auto_renew_retry_days', 'recovery_days'):
        op.drop_column('products', column)
