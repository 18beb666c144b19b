"""funds: an index for 收支明细 filtered by type (and product)

The console's and the API's transaction list counts the entries its filters
select on every page; filtered by type, or type and product, that count read
every entry of the account. With (uin, action_type, product_code, created_at)
it is a range of this index (benchmarks/console.py, docs/benchmarks.md).

Revision ID: 0018
Revises: 0017
"""
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('statement_entries', schema=None) as batch_op:
        batch_op.create_index('ix_statement_entries_uin_type',
                              ['uin', 'action_type', 'product_code', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('statement_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_statement_entries_uin_type')
