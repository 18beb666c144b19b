"""Scheduled work of the recharges package: query pending recharges whose
notification is missing (credit what was paid) and close those past their term,
at the provider too (RCH-5, RCH-6)."""

from __future__ import annotations

from sqlalchemy import Engine

from feecenter.clock import Clock
from feecenter.jobs.registry import HOURLY, job
from feecenter.periods import Period


@job("recharges.sync", HOURLY,
     description="RCH-5/6: recover missed payment notifications by query; close expired recharges")
def sync(engine: Engine, clock: Clock, period: Period) -> dict:
    """About the present; idempotent: a rerun finds the recharges paid or closed."""
    from feecenter.recharges import service
    from feecenter.runtime import payment_gateways

    return service.sync_pending(engine, clock, payment_gateways())
