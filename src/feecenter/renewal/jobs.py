"""Scheduled work of the renewal package (registered with the job runner): the
expiry lifecycle of prepaid resources (RNW-1, RNW-2, RNW-6). docs/renewal.md."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from feecenter.clock import Clock, business_date
from feecenter.jobs.registry import DAILY, HOURLY, job
from feecenter.periods import Period


@job("renewal.expiry", HOURLY, lease=timedelta(hours=2),
     description="RNW-1, RNW-2, RNW-6: auto-renew on the expiry day (retried daily), "
                 "then stop the prepaid resources not renewed by their stop time")
def expiry(engine: Engine, clock: Clock, period: Period) -> dict:
    """For the hour ``period``: first the auto-renewals of its business day (each
    resource tried once a day: the day's first run tries, later ones find it tried),
    then the stops due before the hour's end. Idempotent: renewals are keyed per
    resource and term, stops are conditional (a rerun finds them done)."""
    from feecenter.renewal import auto, lifecycle

    counts = auto.renew_due(engine, clock, business_date(period.start), stopping_by=period.end)
    return {**counts, "stopped": lifecycle.stop_due(engine, clock, period.end,
                                                     since=period.start)}


@job("renewal.release", DAILY, lease=timedelta(hours=1),
     description="RNW-6: release the resources whose recovery period ended (00:00)")
def release(engine: Engine, clock: Clock, period: Period) -> dict:
    """For the business day ``period``: release what is due by its end (the next
    day's 00:00). Idempotent: a released resource is no longer in the recycle bin."""
    from feecenter.renewal import lifecycle

    return {"released": lifecycle.release_due(engine, clock, period.end)}
