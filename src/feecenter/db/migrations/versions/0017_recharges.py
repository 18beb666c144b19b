"""recharges: online recharges, the provider notifications received, frequency blocks

``recharges``: one row per recharge (RCH-2..6) with its state, the provider's
transaction id and whether an international card paid it, and the ledger
transaction of its credit. ``recharge_notifications``: every notification the
provider sent, refused ones included (RCH-5). ``recharge_blocks``: an account's
frequency-control block of the WeChat QR code (RCH-3). docs/recharge.md.

Revision ID: 0017
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'recharges',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('channel', sa.String(length=20), nullable=False),
        sa.Column('payer', sa.String(length=128), nullable=False),
        sa.Column('out_trade_no', sa.String(length=32), nullable=False),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('fail_reason', sa.Text(), nullable=True),
        sa.Column('provider_txn_id', sa.String(length=64), nullable=True),
        sa.Column('provider_payer', sa.String(length=128), nullable=True),
        sa.Column('intl_card', sa.Boolean(), nullable=False),
        sa.Column('code_url', sa.Text(), nullable=True),
        sa.Column('txn_id', _ID, nullable=True),
        sa.Column('created_by', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('paid_at', sa.DateTime(), nullable=True),
        sa.Column('ended_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['txn_id'], ['ledger_transactions.id'],
                                name=op.f('fk_recharges_txn_id_ledger_transactions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_recharges')),
        sa.UniqueConstraint('out_trade_no', name=op.f('uq_recharges_out_trade_no')),
    )
    op.create_index('ix_recharges_uin_created', 'recharges', ['uin', 'created_at'])
    op.create_index('ix_recharges_payer_created', 'recharges', ['payer', 'created_at'])
    op.create_index('ix_recharges_state_expires', 'recharges', ['state', 'expires_at'])
    op.create_table(
        'recharge_notifications',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('channel', sa.String(length=20), nullable=False),
        sa.Column('notification_id', sa.String(length=64), nullable=True),
        sa.Column('out_trade_no', sa.String(length=64), nullable=True),
        sa.Column('recharge_id', _ID, nullable=True),
        sa.Column('outcome', sa.String(length=20), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_recharge_notifications')),
    )
    op.create_index('ix_recharge_notifications_recharge', 'recharge_notifications',
                    ['recharge_id'])
    op.create_table(
        'recharge_blocks',
        sa.Column('uin', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('blocked_until', sa.DateTime(), nullable=False),
        sa.Column('payers', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('uin', name=op.f('pk_recharge_blocks')),
    )


def downgrade() -> None:
    op.drop_table('recharge_blocks')
    op.drop_index('ix_recharge_notifications_recharge', table_name='recharge_notifications')
    op.drop_table('recharge_notifications')
    op.drop_index('ix_recharges_state_expires', table_name='recharges')
    op.drop_index('ix_recharges_payer_created', table_name='recharges')
    op.drop_index('ix_recharges_uin_created', table_name='recharges')
    op.drop_table('recharges')
