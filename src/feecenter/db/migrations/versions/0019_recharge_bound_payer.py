"""recharges: where a recharge was created and the payer a mini-program code is bound to

``source``: ``qr`` (the web console, REST, CLI: a Native QR code anyone may pay)
or ``mini_program`` (a JSAPI payment bound to its creator, RCH-4);
``bound_payer``: the creator's payer identity (WeChat openid) a mini-program
recharge may only be paid by; ``prepay_id``: the provider's id of a JSAPI
payment, which the mini-program hands to the WeChat client. docs/recharge.md.

Revision ID: 0019
Revises: 0018
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('recharges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=20), nullable=False,
                                      server_default='qr'))
        batch_op.add_column(sa.Column('bound_payer', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('prepay_id', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('recharges', schema=None) as batch_op:
        batch_op.drop_column('prepay_id')
        batch_op.drop_column('bound_payer')
        batch_op.drop_column('source')
