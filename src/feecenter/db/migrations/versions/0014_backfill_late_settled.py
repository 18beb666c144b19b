"""settlement: the settled_accounts rows the late pass did not write before the SET-8 fix

Until the fix, an account that had no usage when its period completed, and whose
usage for that period came later, got adjustment lines from the late pass but no
``settled_accounts`` row; a rerun of the period then charged the same usage again
(docs/settlement.md, "Late and corrected usage"). This writes the missing rows, as
the late pass now does: what the account's lines of the period deducted, their first
transaction, the first line's deduction time. Bill lines and their rows are written
in one transaction otherwise, so an account with lines and no row can only be one of
those. No schema change; the downgrade leaves the rows (they are what the code writes).

Revision ID: 0014
Revises: 0013
"""
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        INSERT INTO settled_accounts (uin, cycle, period_key, amount, txn_id, settled_at)
        SELECT b.uin, b.cycle, b.period_key, SUM(b.deducted), MIN(b.txn_id),
               MIN(b.deducted_at)
        FROM bill_lines b
        WHERE NOT EXISTS (SELECT 1 FROM settled_accounts s
                          WHERE s.uin = b.uin AND s.cycle = b.cycle
                            AND s.period_key = b.period_key)
        GROUP BY b.uin, b.cycle, b.period_key
    """)


def downgrade() -> None:
    """Nothing to undo: the rows are what the code writes since the fix."""
