"""remittances: receiving codes, statement imports, remittance records, payer names

``remittance_codes``: each account's 10-digit code (9 digits + a Luhn check
digit) of its 25-digit receiving numbers (RMT-1). ``remittance_imports``: one
row per statement imported, with its counts. ``remittances``: one row per
incoming transfer, unique by (receiving account, bank reference) so a re-import
changes nothing (RMT-2), with its state, reason, flag and ledger transactions.
``remittance_payers``: the payer names an account registered by signing the
third-party payment agreement (RMT-4/5). docs/remittance.md.

Revision ID: 0020
Revises: 0019
"""
import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'remittance_codes',
        sa.Column('uin', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('code', sa.String(length=10), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('uin', name=op.f('pk_remittance_codes')),
        sa.UniqueConstraint('code', name=op.f('uq_remittance_codes_code')),
    )
    op.create_table(
        'remittance_imports',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('source', sa.String(length=40), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('operator', sa.String(length=200), nullable=False),
        sa.Column('imported_at', sa.DateTime(), nullable=False),
        sa.Column('lines', sa.BigInteger(), nullable=False),
        sa.Column('credited', sa.BigInteger(), nullable=False),
        sa.Column('unassigned', sa.BigInteger(), nullable=False),
        sa.Column('pending', sa.BigInteger(), nullable=False),
        sa.Column('held', sa.BigInteger(), nullable=False),
        sa.Column('not_ours', sa.BigInteger(), nullable=False),
        sa.Column('duplicates', sa.BigInteger(), nullable=False),
        sa.Column('new_fen', sa.BigInteger(), nullable=False),
        sa.Column('credited_fen', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_remittance_imports')),
    )
    op.create_index('ix_remittance_imports_digest', 'remittance_imports', ['digest'])
    op.create_table(
        'remittances',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('receiving_account', sa.String(length=40), nullable=False),
        sa.Column('bank_reference', sa.String(length=64), nullable=False),
        sa.Column('content_digest', sa.String(length=64), nullable=False),
        sa.Column('import_id', _ID, nullable=False),
        sa.Column('line', sa.BigInteger(), nullable=False),
        sa.Column('payee_account', sa.String(length=64), nullable=False),
        sa.Column('payer_name', sa.String(length=200), nullable=False),
        sa.Column('payer_account', sa.String(length=64), nullable=False),
        sa.Column('payer_bank', sa.String(length=200), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('memo', sa.String(length=500), nullable=False),
        sa.Column('value_date', sa.Date(), nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=True),
        sa.Column('state', sa.String(length=24), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('reviews', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('arrived_at', sa.DateTime(), nullable=False),
        sa.Column('flagged_at', sa.DateTime(), nullable=True),
        sa.Column('assigned_by', sa.String(length=200), nullable=True),
        sa.Column('released_by', sa.String(length=200), nullable=True),
        sa.Column('credited_at', sa.DateTime(), nullable=True),
        sa.Column('arrival_txn_id', _ID, nullable=True),
        sa.Column('txn_id', _ID, nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['import_id'], ['remittance_imports.id'],
                                name=op.f('fk_remittances_import_id_remittance_imports')),
        sa.ForeignKeyConstraint(['arrival_txn_id'], ['ledger_transactions.id'],
                                name=op.f('fk_remittances_arrival_txn_id_ledger_transactions')),
        sa.ForeignKeyConstraint(['txn_id'], ['ledger_transactions.id'],
                                name=op.f('fk_remittances_txn_id_ledger_transactions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_remittances')),
        sa.UniqueConstraint('receiving_account', 'bank_reference',
                            name='uq_remittances_receiving_account_reference'),
    )
    op.create_index('ix_remittances_uin_id', 'remittances', ['uin', 'id'])
    op.create_index('ix_remittances_state_arrived', 'remittances', ['state', 'arrived_at'])
    op.create_table(
        'remittance_payers',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('normalized', sa.String(length=400), nullable=False),
        sa.Column('signed_by', sa.String(length=200), nullable=False),
        sa.Column('signed_at', sa.DateTime(), nullable=False),
        sa.Column('removed_by', sa.String(length=200), nullable=True),
        sa.Column('removed_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_remittance_payers')),
        sa.UniqueConstraint('uin', 'normalized', name='uq_remittance_payers_uin_normalized'),
    )


def downgrade() -> None:
    op.drop_table('remittance_payers')
    op.drop_index('ix_remittances_state_arrived', table_name='remittances')
    op.drop_index('ix_remittances_uin_id', table_name='remittances')
    op.drop_table('remittances')
    op.drop_index('ix_remittance_imports_digest', table_name='remittance_imports')
    op.drop_table('remittance_imports')
    op.drop_table('remittance_codes')
