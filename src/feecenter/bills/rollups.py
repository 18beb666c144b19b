"""The daily cost-bill roll-up refresh (BIL-2: L0–L2 are T+1): one business day's L3
lines (bills.lines.day_aggregates) summed into ``bill_rollups`` by (account,
deduction day, usage month, product, project, region, pay mode, resource).

A refresh replaces the day whole, in ONE database transaction: claim the day's
``bill_rollup_days`` row (a row lock on PostgreSQL, so two refreshes of a day
run one after the other), delete the day's roll-ups, insert the day's aggregates
with one set-based INSERT … SELECT … GROUP BY. It touches that day's lines only
(incremental), and a rerun — after a success or a crash at any point —
recomputes the same rows (idempotent, crash-safe: the jobs registry contract).
On PostgreSQL the transaction raises ``work_mem`` (``WORK_MEM``) so that the
day's GROUP BY is a hash aggregate in memory rather than a sort spilled to disk.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, delete, func, insert, literal, select, update

from feecenter.bills.lines import AGGREGATE_COLUMNS, day_aggregates
from feecenter.bills.tables import bill_rollup_days, bill_rollups
from feecenter.clock import Clock, db_time
from feecenter.db.engine import transaction
from feecenter.db.upsert import insert_if_absent

WORK_MEM = "256MB"  # PostgreSQL: memory for the day's aggregate, this transaction only


def refresh_day(engine: Engine, clock: Clock, day: date) -> dict:
    """Recompute the roll-ups of business day ``day``; returns rows and lines written."""
    with transaction(engine) as conn:
        if conn.dialect.name == "postgresql":  # the day's GROUP BY hashed in memory
            conn.exec_driver_sql(f"SET LOCAL work_mem = '{WORK_MEM}'")
        now = db_time(clock.now())
        conn.execute(insert_if_absent(conn, bill_rollup_days, ["day"])
                     .values(day=day, lines=0, refreshed_at=now))
        conn.execute(update(bill_rollup_days).where(bill_rollup_days.c.day == day)
                     .values(refreshed_at=now))  # the claim: waits for a concurrent refresh
        conn.execute(delete(bill_rollups).where(bill_rollups.c.deducted_on == day))
        day_rows = day_aggregates(conn, day).subquery()
        source = select(literal(day).label("deducted_on"),
                        literal(day.strftime("%Y-%m")).label("deducted_month"),
                        *[day_rows.c[name] for name in AGGREGATE_COLUMNS])
        conn.execute(insert(bill_rollups).from_select(
            ["deducted_on", "deducted_month", *AGGREGATE_COLUMNS], source))
        rows, lines = conn.execute(
            select(func.count(), func.coalesce(func.sum(bill_rollups.c.lines), 0))
            .where(bill_rollups.c.deducted_on == day)).one()
        conn.execute(update(bill_rollup_days).where(bill_rollup_days.c.day == day)
                     .values(lines=int(lines)))
    return {"day": day.isoformat(), "rows": int(rows), "lines": int(lines)}
