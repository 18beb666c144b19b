"""usage: a leaner usage_records for the bulk intake (issue #4)

- event_id becomes the primary key and the surrogate id goes: nothing reads
  by it, and on PostgreSQL its sequence and index cost each record ~20 % of
  its write;
- the (resource_id, usage_start) index goes: only the late-usage pass's
  per-(resource, item) sum used it, and its inserts, spread over every
  resource, cost SQLite about 3 us of a record's 9.5;
- the usage_end index also carries resource_id and billing_item (the
  late-usage pass reads one resource's item in a period from it);
- on PostgreSQL the received_at index is a BRIN index (rows arrive in
  received_at order).
See src/feecenter/usage/tables.py and docs/usage.md.

Revision ID: 0004
Revises: 0002
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0004'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_records_resource_start')
        batch_op.drop_index('ix_usage_records_end')
        batch_op.drop_index('ix_usage_records_received')
        batch_op.drop_constraint('uq_usage_records_event_id', type_='unique')
        batch_op.drop_constraint('pk_usage_records', type_='primary')
        batch_op.drop_column('id')
        batch_op.create_primary_key('pk_usage_records', ['event_id'])
        batch_op.create_index('ix_usage_records_end_item',
                              ['usage_end', 'resource_id', 'billing_item'], unique=False)
        batch_op.create_index('ix_usage_records_received', ['received_at'], unique=False,
                              postgresql_using='brin',
                              postgresql_with={'autosummarize': 'on'})


def downgrade() -> None:
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_records_received')
        batch_op.drop_index('ix_usage_records_end_item')
        batch_op.drop_constraint('pk_usage_records', type_='primary')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE usage_records ADD COLUMN id BIGSERIAL')
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        if op.get_bind().dialect.name != 'postgresql':
            batch_op.add_column(sa.Column('id', sa.Integer(), nullable=True))
        batch_op.create_primary_key('pk_usage_records', ['id'])
        batch_op.create_unique_constraint('uq_usage_records_event_id', ['event_id'])
        batch_op.create_index('ix_usage_records_received', ['received_at'], unique=False)
        batch_op.create_index('ix_usage_records_end', ['usage_end'], unique=False)
        batch_op.create_index('ix_usage_records_resource_start',
                              ['resource_id', 'usage_start'], unique=False)
