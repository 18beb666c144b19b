"""auth: console passwords, sessions and the login throttle

``user_passwords``: a user's Argon2id password hash (only users given one can
log in to the web console). ``console_sessions``: server-side sessions, keyed
by the SHA-256 of the cookie's token, with their CSRF token, last use and
absolute expiry. ``login_failures``: failed logins per account and login name
(docs/console.md).

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'user_passwords',
        sa.Column('user_id', _ID, autoincrement=False, nullable=False),
        sa.Column('password_hash', sa.String(length=200), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_user_passwords_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_user_passwords')),
    )
    op.create_table(
        'console_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('user_id', _ID, nullable=False),
        sa.Column('csrf_token', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_console_sessions_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_console_sessions')),
    )
    op.create_index(op.f('ix_console_sessions_user_id'), 'console_sessions', ['user_id'])
    op.create_index(op.f('ix_console_sessions_expires_at'), 'console_sessions', ['expires_at'])
    op.create_table(
        'login_failures',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('window_start', sa.DateTime(), nullable=False),
        sa.Column('locked_until', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_login_failures')),
    )


def downgrade() -> None:
    op.drop_table('login_failures')
    op.drop_index(op.f('ix_console_sessions_expires_at'), table_name='console_sessions')
    op.drop_index(op.f('ix_console_sessions_user_id'), table_name='console_sessions')
    op.drop_table('console_sessions')
    op.drop_table('user_passwords')
