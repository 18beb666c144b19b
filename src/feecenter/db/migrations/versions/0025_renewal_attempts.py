"""renewal: each auto-renewal's outcome per resource and term (renewal_attempts,
RNW-1, RNW-2); indexes for the expiry scans and the recycle bin (RNW-6).
docs/renewal.md.

Revision ID: 0025
Revises: 0024
"""
import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'renewal_attempts',
        sa.Column('resource_id', sa.String(length=40), nullable=False),
        sa.Column('term_end', sa.DateTime(), nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('reason_code', sa.String(length=40), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('tries', sa.Integer(), nullable=False),
        sa.Column('last_tried_on', sa.Date(), nullable=False),
        sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('resource_id', 'term_end', name=op.f('pk_renewal_attempts')),
    )
    op.create_index('ix_renewal_attempts_uin', 'renewal_attempts', ['uin'])
    op.create_index('ix_resources_state_period_end', 'resources', ['state', 'period_end'])
    op.create_index('ix_resource_stops_open', 'resource_stops',
                    ['reason', 'ended_at', 'stopped_at'])


def downgrade() -> None:
    op.drop_index('ix_resource_stops_open', table_name='resource_stops')
    op.drop_index('ix_resources_state_period_end', table_name='resources')
    op.drop_index('ix_renewal_attempts_uin', table_name='renewal_attempts')
    op.drop_table('renewal_attempts')
