"""Scheduled work of service requests: flag open requests past their due time
(SRV-2), hourly."""

from __future__ import annotations

from sqlalchemy import Engine

from feecenter.clock import Clock
from feecenter.jobs.registry import HOURLY, job
from feecenter.periods import Period


@job("service_requests.flag_overdue", HOURLY,
     description="SRV-2: flag open service requests past their due time")
def flag_overdue(engine: Engine, clock: Clock, period: Period) -> dict:
    """About the present; idempotent: a request is flagged once (overdue_at)."""
    from feecenter.db.engine import transaction
    from feecenter.service_requests import service

    with transaction(engine) as conn:
        return {"flagged": service.flag_overdue(conn, clock)}
