"""Scheduled work of the resources package (registered with the job runner)."""

from __future__ import annotations

from sqlalchemy import Engine

from feecenter.clock import Clock
from feecenter.db.engine import transaction
from feecenter.jobs.registry import HOURLY, job
from feecenter.periods import Period


@job("resources.release_due_freezes", HOURLY,
     description="FRZ-3: release the freezes of released postpaid resources when due")
def release_due_freezes(engine: Engine, clock: Clock, period: Period) -> dict:
    """Idempotent: a released freeze is cleared from its resource, so a rerun finds none."""
    from feecenter.resources import postpaid

    with transaction(engine) as conn:
        return {"released": postpaid.release_due_freezes(conn, clock)}
