"""Scheduled work of balance warnings (registered with the job runner): the daily
warning (XTR-2), docs/balance-warning.md.

Business day D is the day the daily period ends into; the run is due at 02:00
of D (after the daily settlement at 01:00) and counts the spending deducted in
the 24 hours before then. A period whose day D has passed when it runs (a
worker catching up after an outage) sends nothing: a stale warning helps no
one, and the current day's run covers the present. Idempotent per period:
notices are keyed by account and day.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from feecenter.clock import Clock, business_date
from feecenter.jobs.registry import DAILY, job
from feecenter.periods import Period

LAG = timedelta(hours=2)  # after settlement.daily (01:00)


@job("balance_warnings.warn", DAILY, lag=LAG, lease=timedelta(hours=1),
     description="XTR-2: daily balance warning (days left, warning amount), one per account")
def warn(engine: Engine, clock: Clock, period: Period) -> dict:
    from feecenter.balance_warnings import service

    day = business_date(period.end)
    if day < business_date(clock.now()):
        return {"day": day.isoformat(), "skipped": "past"}
    return {"day": day.isoformat(), **service.warn(engine, clock, day, period.end + LAG)}
