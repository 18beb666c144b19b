"""remittance cases: refunds, wrong-account claims, legacy transfers and their credits

``remittance_refunds``: a record refunded to the payer (RMT-11), once, with the
payout details, who confirmed it and the day the money must arrive by;
``remittance_claims``: a remittance claimed from another account (RMT-9), once per
record; ``remittance_legacy_transfers``: what of a legacy transfer forms have not
credited yet (RMT-10, ``remaining`` only falls); ``remittance_legacy_credits``: one
row per legacy form credited. docs/remittance.md.

Revision ID: 0022
Revises: 0021
"""
import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _fk(table: str, column: str, referred: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f'{referred}.id'],
                                   name=op.f(f'fk_{table}_{column}_{referred}'))


def upgrade() -> None:
    op.create_table(
        'remittance_refunds',
        sa.Column('remittance_id', _ID, autoincrement=False, nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=True),
        sa.Column('request_id', _ID, nullable=True),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('payout', sa.Text(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('confirmed_by', sa.String(length=200), nullable=False),
        sa.Column('confirmed_at', sa.DateTime(), nullable=False),
        sa.Column('arrives_by', sa.Date(), nullable=False),
        sa.Column('txn_id', _ID, nullable=True),
        _fk('remittance_refunds', 'remittance_id', 'remittances'),
        _fk('remittance_refunds', 'txn_id', 'ledger_transactions'),
        sa.PrimaryKeyConstraint('remittance_id', name=op.f('pk_remittance_refunds')),
    )
    op.create_table(
        'remittance_claims',
        sa.Column('request_id', _ID, autoincrement=False, nullable=False),
        sa.Column('remittance_id', _ID, nullable=False),
        sa.Column('from_uin', sa.BigInteger(), nullable=False),
        sa.Column('to_uin', sa.BigInteger(), nullable=False),
        sa.Column('claim_remittance_id', _ID, nullable=False),
        sa.Column('credit_txn_id', _ID, nullable=False),
        sa.Column('operator', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        _fk('remittance_claims', 'remittance_id', 'remittances'),
        _fk('remittance_claims', 'claim_remittance_id', 'remittances'),
        _fk('remittance_claims', 'credit_txn_id', 'ledger_transactions'),
        sa.PrimaryKeyConstraint('request_id', name=op.f('pk_remittance_claims')),
        sa.UniqueConstraint('remittance_id', name=op.f('uq_remittance_claims_remittance_id')),
    )
    op.create_table(
        'remittance_legacy_transfers',
        sa.Column('remittance_id', _ID, autoincrement=False, nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('remaining', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint('remaining >= 0 AND remaining <= amount',
                           name=op.f('ck_remittance_legacy_transfers_remaining_within')),
        _fk('remittance_legacy_transfers', 'remittance_id', 'remittances'),
        sa.PrimaryKeyConstraint('remittance_id', name=op.f('pk_remittance_legacy_transfers')),
    )
    op.create_table(
        'remittance_legacy_credits',
        sa.Column('request_id', _ID, autoincrement=False, nullable=False),
        sa.Column('remittance_id', _ID, nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('txn_id', _ID, nullable=False),
        sa.Column('operator', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        _fk('remittance_legacy_credits', 'remittance_id', 'remittances'),
        _fk('remittance_legacy_credits', 'txn_id', 'ledger_transactions'),
        sa.PrimaryKeyConstraint('request_id', name=op.f('pk_remittance_legacy_credits')),
    )
    op.create_index('ix_remittance_legacy_credits_remittance', 'remittance_legacy_credits',
                    ['remittance_id'])


def downgrade() -> None:
    op.drop_index('ix_remittance_legacy_credits_remittance',
                  table_name='remittance_legacy_credits')
    op.drop_table('remittance_legacy_credits')
    op.drop_table('remittance_legacy_transfers')
    op.drop_table('remittance_claims')
    op.drop_table('remittance_refunds')
