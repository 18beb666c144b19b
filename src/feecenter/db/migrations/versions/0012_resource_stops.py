"""ARR-3: when resources were stopped, and the usage of those hours that is not charged

``resource_stops``: each span a resource was stopped for arrears
([stopped_at, ended_at), ended_at NULL while still stopped).
``usage_records.stopped_quantity``: of a record's quantity, what fell in such a
span (pro-rated by time); ``bill_lines.stopped_quantity``: of a line's
quantity, that part — not charged. Both are 0 for rows written before.

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    for table in ('usage_records', 'bill_lines'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('stopped_quantity', sa.BigInteger(), nullable=False,
                                          server_default=sa.text('0')))
    op.create_table(
        'resource_stops',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('resource_id', sa.String(length=40), nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('reason', sa.String(length=20), nullable=False),
        sa.Column('stopped_at', sa.DateTime(), nullable=False),
        sa.Column('ended_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_resource_stops')),
    )
    op.create_index('ix_resource_stops_resource', 'resource_stops',
                    ['resource_id', 'stopped_at'])


def downgrade() -> None:
    op.drop_index('ix_resource_stops_resource', table_name='resource_stops')
    op.drop_table('resource_stops')
    for table in ('bill_lines', 'usage_records'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('stopped_quantity')
