"""usage: a record's revision, so metering can correct a record (SET-9)

``usage_records.revision``: 0 for a record as first sent; a record sent again
with the same ``event_id`` and a higher revision is a correction and replaces
the stored quantity (and revision, and ``received_at``, so settlement's late
pass bills the difference as adjustment lines). Existing rows are revision 0.
See src/feecenter/usage/rules.py and docs/usage.md.

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.Integer(), nullable=False,
                                      server_default=sa.text('0')))


def downgrade() -> None:
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_column('revision')
