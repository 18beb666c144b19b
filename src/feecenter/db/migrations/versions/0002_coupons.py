"""coupons

Revision ID: 0002
Revises: 0001

The coupons domain (CPN-1..6): coupon_code_batches, coupon_codes, coupons,
coupon_uses — written by hand to match src/feecenter/coupons/tables.py.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('coupon_code_batches',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('campaign', sa.String(length=120), nullable=False),
    sa.Column('format', sa.String(length=10), nullable=False),
    sa.Column('terms', sa.Text(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('redeem_until', sa.DateTime(), nullable=True),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupon_code_batches')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_coupon_code_batches_idempotency_key'))
    )
    op.create_table('coupon_codes',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('batch_id', ID, nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('hint', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('uin', sa.BigInteger(), nullable=True),
    sa.Column('redeemed_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['coupon_code_batches.id'],
                            name=op.f('fk_coupon_codes_batch_id_coupon_code_batches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupon_codes')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_coupon_codes_code_hash'))
    )
    with op.batch_alter_table('coupon_codes', schema=None) as batch_op:
        batch_op.create_index('ix_coupon_codes_batch_id_id', ['batch_id', 'id'], unique=False)

    op.create_table('coupons',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('uin', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('pay_mode', sa.String(length=10), nullable=False),
    sa.Column('face_amount', sa.BigInteger(), nullable=True),
    sa.Column('discount_bp', sa.Integer(), nullable=True),
    sa.Column('max_discount', sa.BigInteger(), nullable=True),
    sa.Column('remaining', sa.BigInteger(), nullable=True),
    sa.Column('forfeited', sa.BigInteger(), nullable=False),
    sa.Column('product_scope', sa.String(length=10), nullable=False),
    sa.Column('products', sa.Text(), nullable=False),
    sa.Column('order_kinds', sa.String(length=40), nullable=True),
    sa.Column('min_months', sa.Integer(), nullable=True),
    sa.Column('max_months', sa.Integer(), nullable=True),
    sa.Column('threshold', sa.BigInteger(), nullable=False),
    sa.Column('valid_from', sa.DateTime(), nullable=False),
    sa.Column('valid_until', sa.DateTime(), nullable=False),
    sa.Column('single_use', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('source_kind', sa.String(length=10), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('code_id', ID, nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['code_id'], ['coupon_codes.id'],
                            name=op.f('fk_coupons_code_id_coupon_codes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupons')),
    sa.UniqueConstraint('code_id', name=op.f('uq_coupons_code_id')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_coupons_idempotency_key'))
    )
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.create_index('ix_coupons_state_valid_until', ['state', 'valid_until'],
                              unique=False)
        batch_op.create_index('ix_coupons_uin_state', ['uin', 'state'], unique=False)

    op.create_table('coupon_uses',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('uin', sa.BigInteger(), nullable=False),
    sa.Column('coupon_id', ID, nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('line_index', sa.Integer(), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('product_code', sa.String(length=40), nullable=False),
    sa.Column('entity', sa.String(length=40), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('returns_use_id', ID, nullable=True),
    sa.Column('txn_id', ID, nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('settled_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'],
                            name=op.f('fk_coupon_uses_coupon_id_coupons')),
    sa.ForeignKeyConstraint(['returns_use_id'], ['coupon_uses.id'],
                            name=op.f('fk_coupon_uses_returns_use_id_coupon_uses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupon_uses')),
    sa.UniqueConstraint('uin', 'idempotency_key', 'seq', name='uq_coupon_uses_key_seq')
    )
    with op.batch_alter_table('coupon_uses', schema=None) as batch_op:
        batch_op.create_index('ix_coupon_uses_coupon_id', ['coupon_id'], unique=False)
        batch_op.create_index('ix_coupon_uses_uin_reference', ['uin', 'reference'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('coupon_uses', schema=None) as batch_op:
        batch_op.drop_index('ix_coupon_uses_uin_reference')
        batch_op.drop_index('ix_coupon_uses_coupon_id')
    op.drop_table('coupon_uses')
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.drop_index('ix_coupons_uin_state')
        batch_op.drop_index('ix_coupons_state_valid_until')
    op.drop_table('coupons')
    with op.batch_alter_table('coupon_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_coupon_codes_batch_id_id')
    op.drop_table('coupon_codes')
    op.drop_table('coupon_code_batches')
