"""remittances: the signed pushes of one transfer as received (RMT-2)

``remittance_pushes``: one row per push, accepted or refused (forged, replayed,
late, malformed), with the reason and the body's sha256; ``nonce`` is unique and
set once the signature verified, so a replayed nonce is refused. docs/remittance.md.

Revision ID: 0023
Revises: 0022
"""
import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'remittance_pushes',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.Column('nonce', sa.String(length=64), nullable=True),
        sa.Column('presented_nonce', sa.String(length=80), nullable=False),
        sa.Column('outcome', sa.String(length=12), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('body_digest', sa.String(length=64), nullable=False),
        sa.Column('bank_reference', sa.String(length=64), nullable=True),
        sa.Column('remittance_id', _ID, nullable=True),
        sa.ForeignKeyConstraint(['remittance_id'], ['remittances.id'],
                                name=op.f('fk_remittance_pushes_remittance_id_remittances')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_remittance_pushes')),
        sa.UniqueConstraint('nonce', name=op.f('uq_remittance_pushes_nonce')),
    )
    op.create_index('ix_remittance_pushes_received', 'remittance_pushes', ['received_at'])


def downgrade() -> None:
    op.drop_index('ix_remittance_pushes_received', table_name='remittance_pushes')
    op.drop_table('remittance_pushes')
