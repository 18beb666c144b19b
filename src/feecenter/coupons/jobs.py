"""Scheduled work of the coupons package (registered with the job runner)."""

from __future__ import annotations

from sqlalchemy import Engine

from feecenter.clock import Clock
from feecenter.db.engine import transaction
from feecenter.jobs.registry import HOURLY, job
from feecenter.periods import Period


@job("coupons.expire", HOURLY,
     description="CPN-3: unused coupons past their validity become expired (never extended)")
def expire(engine: Engine, clock: Clock, period: Period) -> dict:
    """Idempotent: a coupon is expired once; a rerun finds nothing left to expire.

    About the present, like orders.expire_unpaid: whatever is past its
    validity when the job runs is marked, so a catching-up worker does it all
    in its first run. Listing and payment judge validity by time anyway; the
    stored state only catches up here.
    """
    from feecenter.coupons import service as coupons

    with transaction(engine) as conn:
        return {"expired": coupons.expire(conn, clock)}
