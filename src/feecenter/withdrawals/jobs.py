"""Scheduled work of withdrawals: pay out the online legs (refunds through the
recharge's channel) and ask the provider about those sent before (WDR-2, WDR-5).

Hourly is the job runner's finest cadence; a deployment that wants online
withdrawals within minutes runs ``sending.send_pending`` from its worker loop
every minute too (docs/withdrawal.md): it is safe to run at any rate and in
parallel (each leg is claimed by a conditional UPDATE).
"""

from __future__ import annotations

from sqlalchemy import Engine

from feecenter.clock import Clock
from feecenter.jobs.registry import HOURLY, job
from feecenter.periods import Period


@job("withdrawals.pay_out", HOURLY,
     description="WDR-2/5: refund online withdrawal legs; query those sent before retrying")
def pay_out(engine: Engine, clock: Clock, period: Period) -> dict:
    """About the present; idempotent: a leg is settled once, a rerun asks again."""
    from feecenter.runtime import payment_gateways
    from feecenter.withdrawals import sending

    return sending.send_pending(engine, clock, payment_gateways())
