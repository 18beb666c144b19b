"""Scheduled work of the arrears package (registered with the job runner)."""

from __future__ import annotations

from sqlalchemy import Engine

from feecenter.clock import Clock
from feecenter.jobs.registry import HOURLY, job
from feecenter.periods import Period


@job("arrears.escalate", HOURLY,
     description="ARR-3: dunning, stop, destruction warning, destruction, restore on repayment")
def escalate(engine: Engine, clock: Clock, period: Period) -> dict:
    """About the present (clock.now()); idempotent: a rerun finds every step already taken."""
    from feecenter.arrears import service

    return service.escalate(engine, clock)
