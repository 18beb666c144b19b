"""auth: operators' console passwords and sessions

``operator_passwords``: an operator's Argon2id password hash (only operators
given one can log in to the operator console). ``operator_sessions``: their
server-side sessions, apart from the customers' ``console_sessions``
(docs/console.md, "Operator console").

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'operator_passwords',
        sa.Column('operator_id', _ID, autoincrement=False, nullable=False),
        sa.Column('password_hash', sa.String(length=200), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['operator_id'], ['operators.id'],
                                name=op.f('fk_operator_passwords_operator_id_operators')),
        sa.PrimaryKeyConstraint('operator_id', name=op.f('pk_operator_passwords')),
    )
    op.create_table(
        'operator_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('operator_id', _ID, nullable=False),
        sa.Column('csrf_token', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['operator_id'], ['operators.id'],
                                name=op.f('fk_operator_sessions_operator_id_operators')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_operator_sessions')),
    )
    op.create_index(op.f('ix_operator_sessions_operator_id'), 'operator_sessions',
                    ['operator_id'])
    op.create_index(op.f('ix_operator_sessions_expires_at'), 'operator_sessions',
                    ['expires_at'])


def downgrade() -> None:
    op.drop_index(op.f('ix_operator_sessions_expires_at'), table_name='operator_sessions')
    op.drop_index(op.f('ix_operator_sessions_operator_id'), table_name='operator_sessions')
    op.drop_table('operator_sessions')
    op.drop_table('operator_passwords')
