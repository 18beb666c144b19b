"""Scheduled work of the orders package (registered with the job runner)."""

from __future__ import annotations

from sqlalchemy import Engine

from feecenter.clock import Clock
from feecenter.db.engine import transaction
from feecenter.jobs.registry import HOURLY, job
from feecenter.periods import Period


@job("orders.expire_unpaid", HOURLY,
     description="ORD-2: unpaid orders past their term become expired")
def expire_unpaid_orders(engine: Engine, clock: Clock, period: Period) -> dict:
    """Idempotent: an order is expired once; a rerun finds nothing left to expire.

    It looks at "now" rather than the period on purpose: what is past its term
    at the moment the job runs is expired, so a worker catching up after a
    pause expires everything overdue in its first run and the rest are no-ops.
    """
    from feecenter.orders import service as orders

    with transaction(engine) as conn:
        return {"expired": orders.expire_unpaid(conn, clock)}
