"""withdrawals: the withdrawals, their legs with their ledger holds, the operators'
payout batches (WDR-2..6). docs/withdrawal.md.

Revision ID: 0033
Revises: 0032
"""
import sqlalchemy as sa
from alembic import op


revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('withdrawals',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('uin', sa.BigInteger(), nullable=False),
    sa.Column('request_key', sa.String(length=64), nullable=False),
    sa.Column('request_digest', sa.String(length=64), nullable=False),
    sa.Column('route', sa.String(length=10), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('bank_holder', sa.String(length=200), nullable=True),
    sa.Column('bank_account_no', sa.String(length=30), nullable=True),
    sa.Column('bank_name', sa.String(length=100), nullable=True),
    sa.Column('bank_branch', sa.String(length=100), nullable=True),
    sa.Column('applied_by', sa.String(length=200), nullable=False),
    sa.Column('applied_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_withdrawals')),
    sa.UniqueConstraint('uin', 'request_key', name='uq_withdrawals_uin_request_key')
    )
    with op.batch_alter_table('withdrawals', schema=None) as batch_op:
        batch_op.create_index('ix_withdrawals_uin_id', ['uin', 'id'], unique=False)
        batch_op.create_index('ix_withdrawals_state', ['state'], unique=False)

    op.create_table('payout_batches',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('legs', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('result_imported_by', sa.String(length=200), nullable=True),
    sa.Column('result_imported_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payout_batches'))
    )
    op.create_table('withdrawal_legs',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('withdrawal_id', ID, nullable=False),
    sa.Column('uin', sa.BigInteger(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=12), nullable=False),
    sa.Column('recharge_id', ID, nullable=True),
    sa.Column('remittance_id', ID, nullable=True),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('intl_card', sa.Boolean(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('hold_id', ID, nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('out_refund_no', sa.String(length=64), nullable=False),
    sa.Column('provider_refund_id', sa.String(length=64), nullable=True),
    sa.Column('estimate_from', sa.DateTime(), nullable=False),
    sa.Column('estimate_to', sa.DateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('batch_id', ID, nullable=True),
    sa.Column('settled_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['withdrawal_id'], ['withdrawals.id'],
                            name=op.f('fk_withdrawal_legs_withdrawal_id_withdrawals')),
    sa.ForeignKeyConstraint(['recharge_id'], ['recharges.id'],
                            name=op.f('fk_withdrawal_legs_recharge_id_recharges')),
    sa.ForeignKeyConstraint(['remittance_id'], ['remittances.id'],
                            name=op.f('fk_withdrawal_legs_remittance_id_remittances')),
    sa.ForeignKeyConstraint(['hold_id'], ['ledger_holds.id'],
                            name=op.f('fk_withdrawal_legs_hold_id_ledger_holds')),
    sa.ForeignKeyConstraint(['batch_id'], ['payout_batches.id'],
                            name=op.f('fk_withdrawal_legs_batch_id_payout_batches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_withdrawal_legs')),
    sa.UniqueConstraint('out_refund_no', name=op.f('uq_withdrawal_legs_out_refund_no')),
    sa.UniqueConstraint('withdrawal_id', 'seq', name='uq_withdrawal_legs_withdrawal_id')
    )
    with op.batch_alter_table('withdrawal_legs', schema=None) as batch_op:
        batch_op.create_index('ix_withdrawal_legs_recharge', ['recharge_id'], unique=False)
        batch_op.create_index('ix_withdrawal_legs_remittance', ['remittance_id'], unique=False)
        batch_op.create_index('ix_withdrawal_legs_state_id', ['state', 'id'], unique=False)
        batch_op.create_index('ix_withdrawal_legs_uin', ['uin'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('withdrawal_legs', schema=None) as batch_op:
        batch_op.drop_index('ix_withdrawal_legs_uin')
        batch_op.drop_index('ix_withdrawal_legs_state_id')
        batch_op.drop_index('ix_withdrawal_legs_remittance')
        batch_op.drop_index('ix_withdrawal_legs_recharge')

    op.drop_table('withdrawal_legs')
    op.drop_table('payout_batches')
    with op.batch_alter_table('withdrawals', schema=None) as batch_op:
        batch_op.drop_index('ix_withdrawals_state')
        batch_op.drop_index('ix_withdrawals_uin_id')

    op.drop_table('withdrawals')
