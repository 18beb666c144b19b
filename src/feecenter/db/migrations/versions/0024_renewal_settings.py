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
    with op.batch_alter_table('products') as batch_op:
        batch_op.add_column(sa.Column('recovery_days', sa.Integer(), nullable=False,
                                      server_default=sa.text('7')))
        batch_op.add_column(sa.Column('auto_renew_retry_days', sa.Integer(), nullable=False,
                                      server_default=sa.text('3')))
        batch_op.add_column(sa.Column('renewal_managed', sa.Boolean(), nullable=False,
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
    with op.batch_alter_table('products') as batch_op:
        batch_op.drop_column('renewal_managed')
        batch_op.drop_column('auto_renew_retry_days')
        batch_op.drop_column('recovery_days')
