"""service requests (工单): the requests, their events, their attachments, compensated months

``service_requests``: one row per request with its kind, state, validated fields
(JSON), subject, due time and who took and ended it (SRV-1..2);
``service_request_events``: the history; ``service_request_attachments``: files stored
in the database with their sniffed type and sha256; ``precision_compensations``: the
months whose precision difference was credited (SET-3), one row per (account, month).
docs/service-requests.md.

Revision ID: 0021
Revises: 0020
"""
import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'service_requests',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('state', sa.String(length=12), nullable=False),
        sa.Column('fields', sa.Text(), nullable=False),
        sa.Column('subject', sa.String(length=200), nullable=True),
        sa.Column('created_by', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('due_at', sa.DateTime(), nullable=False),
        sa.Column('overdue_at', sa.DateTime(), nullable=True),
        sa.Column('taken_by', sa.String(length=200), nullable=True),
        sa.Column('taken_at', sa.DateTime(), nullable=True),
        sa.Column('ended_by', sa.String(length=200), nullable=True),
        sa.Column('ended_at', sa.DateTime(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('result', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_service_requests')),
    )
    op.create_index('ix_service_requests_uin_created', 'service_requests', ['uin', 'created_at'])
    op.create_index('ix_service_requests_state_due', 'service_requests', ['state', 'due_at'])
    op.create_index('ix_service_requests_kind_subject', 'service_requests',
                    ['kind', 'uin', 'subject'])
    op.create_table(
        'service_request_events',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('request_id', _ID, nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('event', sa.String(length=20), nullable=False),
        sa.Column('state', sa.String(length=12), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_service_request_events')),
    )
    op.create_index('ix_service_request_events_request', 'service_request_events',
                    ['request_id', 'id'])
    op.create_table(
        'service_request_attachments',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('request_id', _ID, nullable=False),
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('filename', sa.String(length=200), nullable=False),
        sa.Column('content_type', sa.String(length=40), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('content', sa.LargeBinary(), nullable=False),
        sa.Column('created_by', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_service_request_attachments')),
    )
    op.create_index('ix_service_request_attachments_request', 'service_request_attachments',
                    ['request_id'])
    op.create_table(
        'precision_compensations',
        sa.Column('uin', sa.BigInteger(), nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('request_id', _ID, nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('difference', sa.BigInteger(), nullable=False),
        sa.Column('txn_id', _ID, nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('uin', 'month', name='pk_precision_compensations'),
    )


def downgrade() -> None:
    op.drop_table('precision_compensations')
    op.drop_index('ix_service_request_attachments_request',
                  table_name='service_request_attachments')
    op.drop_table('service_request_attachments')
    op.drop_index('ix_service_request_events_request', table_name='service_request_events')
    op.drop_table('service_request_events')
    op.drop_index('ix_service_requests_kind_subject', table_name='service_requests')
    op.drop_index('ix_service_requests_state_due', table_name='service_requests')
    op.drop_index('ix_service_requests_uin_created', table_name='service_requests')
    op.drop_table('service_requests')
