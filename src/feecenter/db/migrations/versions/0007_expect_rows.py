"""fc_expect_rows: a write's expected row count checked by the server (db.sending.writes)

A batch of writes sent with its COMMIT in one round trip must fail before the
COMMIT when a guarded write changed another number of rows; on PostgreSQL the
statement's last SELECT calls this function, which raises SQLSTATE FC001 with
the write's position in the batch. SQLite runs each write as it is sent and
checks its count at once: nothing to create there.

Revision ID: 0007
Revises: 0006
"""
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("""
        CREATE FUNCTION fc_expect_rows(changed bigint, expected bigint, part integer)
        RETURNS bigint LANGUAGE plpgsql AS $$
        BEGIN
            IF changed <> expected THEN
                RAISE EXCEPTION 'write % changed % rows, not %', part, changed, expected
                    USING ERRCODE = 'FC001', DETAIL = part::text;
            END IF;
            RETURN changed;
        END $$""")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP FUNCTION fc_expect_rows(bigint, bigint, integer)")
