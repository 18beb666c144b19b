"""invoices: titles, emails, settings, applications, invoices and lines, number
counters, reversals, verification attempts (INV-1..9). docs/invoices.md.

Revision ID: 0032
Revises: 0031
"""
import sqlalchemy as sa
from alembic import op


revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('invoice_applications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uin', sa.BigInteger(), nullable=False),
    sa.Column('request_key', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('email', sa.String(length=200), nullable=False),
    sa.Column('automatic', sa.Boolean(), nullable=False),
    sa.Column('applied_by', sa.String(length=200), nullable=False),
    sa.Column('applied_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_applications')),
    sa.UniqueConstraint('uin', 'request_key', name='uq_invoice_applications_uin_request_key')
    )
    op.create_table('invoice_counters',
    sa.Column('entity', sa.String(length=40), nullable=False),
    sa.Column('year', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('next_value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('entity', 'year', name=op.f('pk_invoice_counters'))
    )
    op.create_table('invoice_emails',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uin', sa.BigInteger(), nullable=False),
    sa.Column('email', sa.String(length=200), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_emails')),
    sa.UniqueConstraint('uin', 'email', name='uq_invoice_emails_uin_email')
    )
    op.create_table('invoice_lines',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('invoice_id', sa.BigInteger(), nullable=False),
    sa.Column('uin', sa.BigInteger(), nullable=False),
    sa.Column('entity', sa.String(length=40), nullable=False),
    sa.Column('tax_category', sa.String(length=20), nullable=False),
    sa.Column('item_name', sa.String(length=100), nullable=False),
    sa.Column('tax_code', sa.String(length=20), nullable=False),
    sa.Column('rate_bp', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('net_amount', sa.BigInteger(), nullable=False),
    sa.Column('tax_amount', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_lines'))
    )
    with op.batch_alter_table('invoice_lines', schema=None) as batch_op:
        batch_op.create_index('ix_invoice_lines_invoice', ['invoice_id'], unique=False)
        batch_op.create_index('ix_invoice_lines_uin', ['uin', 'entity', 'tax_category'], unique=False)

    op.create_table('invoice_reversals',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uin', sa.BigInteger(), nullable=False),
    sa.Column('invoice_id', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('treatment', sa.String(length=10), nullable=False),
    sa.Column('red_letter_no', sa.String(length=30), nullable=True),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('explanation', sa.Text(), nullable=False),
    sa.Column('submitted_by', sa.String(length=200), nullable=False),
    sa.Column('submitted_at', sa.DateTime(), nullable=False),
    sa.Column('decided_by', sa.String(length=200), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('reject_reason', sa.Text(), nullable=True),
    sa.Column('red_invoice_id', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_reversals')),
    )
    with op.batch_alter_table('invoice_reversals', schema=None) as batch_op:
        batch_op.create_index('ix_invoice_reversals_state', ['state'], unique=False)
        batch_op.create_index('uq_invoice_reversals_invoice_id', ['invoice_id'], unique=True,
                              sqlite_where=sa.text("state <> 'rejected'"),
                              postgresql_where=sa.text("state <> 'rejected'"))
        batch_op.create_index('ix_invoice_reversals_uin', ['uin'], unique=False)

    op.create_table('invoice_settings',
    sa.Column('uin', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('auto_issue', sa.Boolean(), nullable=False),
    sa.Column('auto_issue_kind', sa.String(length=10), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('uin', name=op.f('pk_invoice_settings'))
    )
    op.create_table('invoice_titles',
    sa.Column('uin', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('title_kind', sa.String(length=12), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('tax_id', sa.String(length=20), nullable=True),
    sa.Column('address', sa.String(length=200), nullable=True),
    sa.Column('phone', sa.String(length=30), nullable=True),
    sa.Column('bank', sa.String(length=100), nullable=True),
    sa.Column('bank_account', sa.String(length=40), nullable=True),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('uin', name=op.f('pk_invoice_titles'))
    )
    op.create_table('invoice_verifications',
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.Column('minute', sa.DateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('client', 'minute', name=op.f('pk_invoice_verifications'))
    )
    op.create_table('invoices',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uin', sa.BigInteger(), nullable=False),
    sa.Column('application_id', sa.BigInteger(), nullable=True),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('entity', sa.String(length=40), nullable=False),
    sa.Column('title_kind', sa.String(length=12), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('tax_id', sa.String(length=20), nullable=True),
    sa.Column('address', sa.String(length=200), nullable=True),
    sa.Column('phone', sa.String(length=30), nullable=True),
    sa.Column('bank', sa.String(length=100), nullable=True),
    sa.Column('bank_account', sa.String(length=40), nullable=True),
    sa.Column('email', sa.String(length=200), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('net_amount', sa.BigInteger(), nullable=False),
    sa.Column('tax_amount', sa.BigInteger(), nullable=False),
    sa.Column('original_id', sa.BigInteger(), nullable=True),
    sa.Column('invoice_code', sa.String(length=12), nullable=True),
    sa.Column('invoice_number', sa.String(length=20), nullable=True),
    sa.Column('check_code', sa.String(length=20), nullable=True),
    sa.Column('applied_at', sa.DateTime(), nullable=False),
    sa.Column('issuing_at', sa.DateTime(), nullable=True),
    sa.Column('issued_at', sa.DateTime(), nullable=True),
    sa.Column('flagged_at', sa.DateTime(), nullable=True),
    sa.Column('emailed_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoices')),
    sa.UniqueConstraint('application_id', 'entity', name='uq_invoices_application_entity'),
    sa.UniqueConstraint('invoice_number', name='uq_invoices_invoice_number'),
    sa.UniqueConstraint('original_id', name='uq_invoices_original_id')
    )
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index('ix_invoices_state', ['state'], unique=False)
        batch_op.create_index('ix_invoices_uin_applied', ['uin', 'applied_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_uin_applied')
        batch_op.drop_index('ix_invoices_state')

    op.drop_table('invoices')
    op.drop_table('invoice_verifications')
    op.drop_table('invoice_titles')
    op.drop_table('invoice_settings')
    with op.batch_alter_table('invoice_reversals', schema=None) as batch_op:
        batch_op.drop_index('ix_invoice_reversals_uin')
        batch_op.drop_index('ix_invoice_reversals_state')
        batch_op.drop_index('uq_invoice_reversals_invoice_id')

    op.drop_table('invoice_reversals')
    with op.batch_alter_table('invoice_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_invoice_lines_uin')
        batch_op.drop_index('ix_invoice_lines_invoice')

    op.drop_table('invoice_lines')
    op.drop_table('invoice_emails')
    op.drop_table('invoice_counters')
    op.drop_table('invoice_applications')
