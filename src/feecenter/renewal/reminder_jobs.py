"""Scheduled work of renewal's notices (registered with the job runner): the daily
renewal reminders (RNW-3, RNW-4) and price-change announcements (RNW-1).

Both work on business day D = the day their daily period ends into: the run due
at 00:00 of D sends D's notices. A period whose day D has already passed when it
runs (a worker catching up after an outage) sends nothing: a reminder for a past
day would be stale, and the current day's run covers what is still ahead.
Idempotent per period: every message is keyed by day (or price version) and
account, so a rerun or a run after a crash sends nothing twice.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Engine

from feecenter.clock import Clock, business_date
from feecenter.jobs.registry import DAILY, job
from feecenter.periods import Period


def notice_day(period: Period) -> date:
    """The business day whose notices the daily ``period`` sends: the day it ends into."""
    return business_date(period.end)


def _past(clock: Clock, day: date) -> bool:
    return day < business_date(clock.now())


@job("renewal.remind", DAILY, lease=timedelta(hours=1),
     description="RNW-3/RNW-4: daily recharge and expiry reminders, one per account and kind")
def remind(engine: Engine, clock: Clock, period: Period) -> dict:
    from feecenter.renewal import reminders

    day = notice_day(period)
    if _past(clock, day):
        return {"day": day.isoformat(), "skipped": "past"}
    return {"day": day.isoformat(), **reminders.remind(engine, clock, day)}


@job("renewal.announce_prices", DAILY,
     description="RNW-1: announce prepaid price changes to the owners of affected resources")
def announce_prices(engine: Engine, clock: Clock, period: Period) -> dict:
    from feecenter.renewal import announcements

    day = notice_day(period)
    if _past(clock, day):
        return {"day": day.isoformat(), "skipped": "past"}
    return {"day": day.isoformat(), **announcements.announce(engine, clock, day)}
