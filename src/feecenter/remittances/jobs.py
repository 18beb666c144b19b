"""Scheduled work of the remittances package: flag the records still unresolved one
day after they arrived (RMT-2), so the operators' queues show them."""

from __future__ import annotations

from sqlalchemy import Engine

from feecenter.clock import Clock
from feecenter.db.engine import transaction
from feecenter.jobs.registry import HOURLY, job
from feecenter.periods import Period


@job("remittances.flag_overdue", HOURLY,
     description="RMT-2: flag remittances still unresolved 1 day after arrival")
def flag_overdue(engine: Engine, clock: Clock, period: Period) -> dict:
    """About the present; idempotent: a record is flagged once, a rerun finds it flagged."""
    from feecenter.remittances import service

    with transaction(engine) as conn:
        return {"flagged": service.flag_overdue(conn, clock)}
