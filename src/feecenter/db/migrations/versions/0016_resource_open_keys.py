"""resources: the customer's idempotency key of a postpaid opening

``resources.idempotency_key`` (unique, NULL when the opening had none, and for
prepaid resources, whose purchase order holds the key): a retried
``open_postpaid`` with the same key returns the resource it opened instead of
opening (and freezing for) a second one (docs/orders.md, "Idempotency keys").

Revision ID: 0016
Revises: 0015
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('resources', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint(op.f('uq_resources_idempotency_key'),
                                          ['idempotency_key'])


def downgrade() -> None:
    with op.batch_alter_table('resources', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('uq_resources_idempotency_key'), type_='unique')
        batch_op.drop_column('idempotency_key')
