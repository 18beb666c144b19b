"""Scheduled work of notifications: send what the outbox holds (registered with the job runner).

Hourly is the runner's finest cadence; a deployment that wants email within
minutes also runs ``deliver_pending`` from the worker loop (see docs/notifications.md).
"""

from __future__ import annotations

from sqlalchemy import Engine

from feecenter.clock import Clock
from feecenter.jobs.registry import HOURLY, job
from feecenter.periods import Period


@job("notifications.deliver", HOURLY, description="send pending email and SMS from the outbox")
def deliver(engine: Engine, clock: Clock, period: Period) -> dict:
    """Idempotent: a sent row is never sent again; a rerun sends only what is still pending."""
    from feecenter.config import load_settings
    from feecenter.notifications.senders import senders_from_settings
    from feecenter.notifications.service import deliver_pending

    settings = load_settings()
    return deliver_pending(engine, clock, senders_from_settings(settings),
                           max_attempts=settings.notify_max_attempts)
