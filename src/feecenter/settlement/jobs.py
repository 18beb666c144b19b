"""Scheduled settlement cycles (SET-1, SET-4), registered with the job runner.

Each cycle is a job keyed by its period, due a short metering grace after the
period ends (``METERING_GRACE``, the job's ``lag``): hourly 15 minutes after
each hour, daily an hour after each day, monthly at 02:00 on the 1st of the
next month (January's month ends at 2026-02-01 00:00 Shanghai and is settled
at 02:00 that day, with January's last hour at 00:15 and last day at 01:00).
Usage metered for a period that arrives before its run is billed on the
period's charge lines; what arrives after it is late usage (SET-9). Periods
begin at the earliest usage recorded, so history is covered.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, Engine

from feecenter.clock import Clock, business_date
from feecenter.jobs.registry import DAILY, HOURLY, MONTHLY, job
from feecenter.periods import Period

# cycle -> how long after its period ends a run is due: metering arrives minutes
# after the hour; each stays well inside the next period and the 1st (SET-4)
METERING_GRACE = {"hour": timedelta(minutes=15), "day": timedelta(hours=1),
                  "month": timedelta(hours=2)}


def _start(conn: Connection, clock: Clock):
    from feecenter.settlement.service import earliest_usage

    return earliest_usage(conn, clock)


def _settle(cycle: str, engine: Engine, clock: Clock, period: Period) -> dict:
    from feecenter.settlement.service import settle_period

    return settle_period(engine, clock, cycle, period)


@job("settlement.hourly", HOURLY, start=_start, lag=METERING_GRACE["hour"],
     description="SET-1/4: settle hourly postpaid usage 15 min after each hour")
def settle_hourly(engine: Engine, clock: Clock, period: Period) -> dict:
    return _settle("hour", engine, clock, period)


@job("settlement.daily", DAILY, start=_start, lag=METERING_GRACE["day"],
     description="SET-1/4: settle daily postpaid usage at 01:00 after each day")
def settle_daily(engine: Engine, clock: Clock, period: Period) -> dict:
    return _settle("day", engine, clock, period)


@job("settlement.monthly", MONTHLY, start=_start, lag=METERING_GRACE["month"],
     description="SET-1/4: settle monthly postpaid usage at 02:00 on the 1st of the next month")
def settle_monthly(engine: Engine, clock: Clock, period: Period) -> dict:
    return _settle("month", engine, clock, period)


# FRZ-5: the run of business day D is due at 03:00 on D + 1 (after the monthly
# settlement at 02:00) and settles as of D + 1: on the settlement day of the next
# month (the 3rd by default, FEECENTER_MONTHLY_FREEZE_DAY) the month's freezes are
# released and its cost deducted; a later day's run settles a month a missed run left.
MONTHLY_FREEZE_LAG = timedelta(hours=3)


@job("settlement.monthly_freeze", DAILY, lag=MONTHLY_FREEZE_LAG,
     description="FRZ-5: on the settlement day (3rd) release last month's monthly freezes "
                 "and deduct its actual cost")
def settle_monthly_freezes(engine: Engine, clock: Clock, period: Period) -> dict:
    from feecenter.settlement.monthly_freeze import settle_due

    return settle_due(engine, clock, business_date(period.end))
