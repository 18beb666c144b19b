"""The daily cost-bill roll-up job (BIL-2), registered with the job runner: each
business day is refreshed T+1, at 03:00 the next day (after the daily and
monthly settlement runs at 01:00 and 02:00, so their lines are in it). Periods
begin at the earliest line deducted (postpaid or prepaid), so history is
covered. Rerunning a day recomputes it (bills.rollups).

``bills.process_exports`` (hourly, BIL-7) runs the queued bill exports and deletes
those past their retention (bills.exports); a rerun finds nothing left to do. The
REST and console requests also start their export right after answering."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, Engine

from feecenter.clock import Clock, business_date
from feecenter.jobs.registry import DAILY, HOURLY, job
from feecenter.periods import Period

REFRESH_LAG = timedelta(hours=3)


def _start(conn: Connection, clock: Clock):
    from feecenter.bills.lines import earliest_line

    return earliest_line(conn)


@job("bills.refresh_rollups", DAILY, start=_start, lag=REFRESH_LAG,
     description="BIL-2: refresh the cost-bill roll-ups of each day at 03:00 the next day")
def refresh_rollups(engine: Engine, clock: Clock, period: Period) -> dict:
    from feecenter.bills.rollups import refresh_day

    return refresh_day(engine, clock, business_date(period.start))


@job("bills.process_exports", HOURLY,
     description="BIL-7: write the queued bill exports, delete those past their retention")
def process_exports(engine: Engine, clock: Clock, period: Period) -> dict:
    from feecenter.bills.exports import export_settings, has_work, process_pending
    from feecenter.config import load_settings

    if not has_work(engine, clock):
        return {"done": 0, "failed": 0, "expired": 0}
    return process_pending(engine, clock, export_settings(load_settings()))
