"""accounts: a user's own contact email and phone

``users.email`` and ``users.phone`` (both optional): where a sub-user or
collaborator receives the notifications addressed to its role
(docs/notifications.md, "Who receives what"), besides the account's own
contacts on ``customers``. Existing users have none.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('phone', sa.String(length=30), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('phone')
        batch_op.drop_column('email')
