"""Scheduled settlement cycles (SET-1, SET-4), registered with the job runner.

Each cycle is a job keyed by its period: hourly after each hour, daily after
each day, monthly on the 1st of the next month (the MONTHLY period of January
ends, and is due, at 2026-02-01 00:00 Shanghai, with January's last hour and
last day). Periods begin at the earliest usage recorded, so history is covered.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine

from feecenter.clock import Clock
from feecenter.jobs.registry import DAILY, HOURLY, MONTHLY, job
from feecenter.periods import Period


def _start(conn: Connection, clock: Clock):
    from feecenter.settlement.service import earliest_usage

    return earliest_usage(conn, clock)


def _settle(cycle: str, engine: Engine, clock: Clock, period: Period) -> dict:
    from feecenter.settlement.service import settle_period

    return settle_period(engine, clock, cycle, period)


@job("settlement.hourly", HOURLY, start=_start,
     description="SET-1/4: settle hourly postpaid usage after each hour")
def settle_hourly(engine: Engine, clock: Clock, period: Period) -> dict:
    return _settle("hour", engine, clock, period)


@job("settlement.daily", DAILY, start=_start,
     description="SET-1/4: settle daily postpaid usage after each day")
def settle_daily(engine: Engine, clock: Clock, period: Period) -> dict:
    return _settle("day", engine, clock, period)


@job("settlement.monthly", MONTHLY, start=_start,
     description="SET-1/4: settle monthly postpaid usage on the 1st of the next month")
def settle_monthly(engine: Engine, clock: Clock, period: Period) -> dict:
    return _settle("month", engine, clock, period)
