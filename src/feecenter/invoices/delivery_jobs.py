"""Scheduled work of invoice documents: email issued invoices (INV-5), registered
with the job runner as ``invoices.deliver``, hourly (the runner's finest cadence).
A deployment that wants invoices in the inbox within minutes also calls
``delivery.deliver_pending`` from its worker loop."""

from __future__ import annotations

from sqlalchemy import Engine

from feecenter.clock import Clock
from feecenter.jobs.registry import HOURLY, job
from feecenter.periods import Period


@job("invoices.deliver", HOURLY, description="INV-5: email issued invoices with their PDF and XML")
def deliver(engine: Engine, clock: Clock, period: Period) -> dict:
    """Idempotent: an emailed invoice is never emailed again; a rerun sends what is left."""
    from feecenter.config import load_settings
    from feecenter.invoices.delivery import deliver_pending

    return deliver_pending(engine, clock, load_settings())
