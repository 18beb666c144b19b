"""The one place that knows which packages register jobs.

A package that schedules work registers its jobs at import time (see
``registry``) and adds its module here; every worker, the simulator and the
CLI call ``load_all()`` before they enqueue or run anything, so they all know
the same jobs.
"""

from __future__ import annotations

import importlib

from feecenter.jobs.registry import REGISTRY, Registry

JOB_MODULES: tuple[str, ...] = (
    "feecenter.orders.jobs",  # orders.expire_unpaid (ORD-2)
    "feecenter.resources.jobs",  # resources.release_due_freezes (FRZ-3)
    "feecenter.notifications.jobs",  # notifications.deliver
    "feecenter.settlement.jobs",  # settlement.hourly / daily / monthly (SET-1, SET-4), monthly_freeze (FRZ-5)
    "feecenter.arrears.jobs",  # arrears.escalate (ARR-3)
    "feecenter.coupons.jobs",  # coupons.expire (CPN-3)
    "feecenter.recharges.jobs",  # recharges.sync (RCH-5, RCH-6)
    "feecenter.remittances.jobs",  # remittances.flag_overdue (RMT-2)
    "feecenter.service_requests.jobs",  # service_requests.flag_overdue (SRV-2)
    "feecenter.renewal.jobs",  # renewal.expiry, renewal.release (RNW-1, RNW-2, RNW-6)
    "feecenter.renewal.reminder_jobs",  # renewal.remind, renewal.announce_prices (RNW-1/3/4)
    "feecenter.bills.jobs",  # bills.refresh_rollups (BIL-2)
    "feecenter.invoices.delivery_jobs",  # invoices.deliver (INV-5)
    "feecenter.invoices.jobs",  # invoices.issue, invoices.auto_issue (INV-5)
    "feecenter.withdrawals.jobs",  # withdrawals.pay_out (WDR-2, WDR-5)
    "feecenter.balance_warnings.jobs",  # balance_warnings.warn (XTR-2)
)


def load_all() -> Registry:
    """Import every job-registering module (idempotent) and return the registry."""
    for module in JOB_MODULES:
        importlib.import_module(module)
    return REGISTRY
