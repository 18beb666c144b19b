"""settlement: each account's one-way switch to the usage-time statistic period
(statistic_period_switches, BIL-3). docs/bills.md.

Revision ID: 0029
Revises: 0028
"""
import sqlalchemy as sa
from alembic import op

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'statistic_period_switches',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('switched_in', sa.String(length=7), nullable=False),
        sa.Column('switched_at', sa.DateTime(), nullable=False),
        sa.Column('requested_by', sa.String(length=10), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('acknowledgement_version', sa.String(length=40), nullable=False),
        sa.Column('request_note', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_statistic_period_switches')),
        sa.UniqueConstraint('uin', name='uq_statistic_period_switches_uin'),
    )


def downgrade() -> None:
    op.drop_table('statistic_period_switches')
