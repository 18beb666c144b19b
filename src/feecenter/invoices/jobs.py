"""Scheduled work of invoices (INV-5), registered with the job runner:

- ``invoices.issue`` (hourly): the sweeper of ``issuing.issue_pending``, which flags
  invoices not issued 30 minutes after applying and issues every one waiting. The
  REST and console adapters call ``issuing.issue_invoices`` right after an
  application, so invoices are normally issued at once; the sweeper catches what
  they left.
- ``invoices.auto_issue`` (daily, 04:00 the next day, after the cost-bill roll-up at
  03:00): 自动开票. For each account with automatic issuing on, applies for its whole
  available amount when that is at least ``AUTO_ISSUE_MIN`` (100.00 yuan), or any
  positive amount on the last business day of a month, so nothing waits more than a
  month; the request key ``auto:{day}`` makes a rerun of the day return the same
  application. Accounts that cannot apply now (owing money, no valid title, special
  details missing) are skipped and counted, and tried again the next day.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Engine

from feecenter.clock import Clock, business_date
from feecenter.jobs.registry import DAILY, HOURLY, job
from feecenter.periods import Period

AUTO_ISSUE_MIN = 10_000  # fen: 100.00 yuan
AUTO_ISSUE_LAG = timedelta(hours=4)


@job("invoices.issue", HOURLY,
     description="INV-5: flag invoices not issued 30 minutes after applying, issue the waiting ones")
def issue(engine: Engine, clock: Clock, period: Period) -> dict:
    from feecenter.config import load_settings
    from feecenter.invoices.issuing import issue_pending

    return issue_pending(engine, clock, load_settings())


@job("invoices.auto_issue", DAILY, lag=AUTO_ISSUE_LAG,
     description="INV-5: automatic issuing (自动开票) of each auto-issue account's available amount")
def auto_issue(engine: Engine, clock: Clock, period: Period) -> dict:
    from feecenter.config import load_settings

    return auto_issue_day(engine, clock, business_date(period.start), load_settings())


def month_end(day: date) -> bool:
    return (day + timedelta(days=1)).month != day.month


def auto_issue_day(engine: Engine, clock: Clock, day: date, settings) -> dict:
    """Apply (and issue) for each auto-issue account as the module says; one unit of
    work per account. ``{"applied", "skipped", "below_minimum", "issued"}``."""
    from feecenter.accounts.permissions import SYSTEM
    from feecenter.db.engine import transaction
    from feecenter.errors import FeeCenterError
    from feecenter.invoices import invoiceable, service, titles
    from feecenter.invoices.issuing import issue_one

    with engine.connect() as conn:
        accounts = titles.auto_issue_accounts(conn)
    counts = {"applied": 0, "skipped": 0, "below_minimum": 0, "issued": 0}
    for account in accounts:
        uin = account["uin"]
        with engine.connect() as conn:
            available = invoiceable.invoiceable(conn, SYSTEM, uin)["amount"]
        if available <= 0 or (available < AUTO_ISSUE_MIN and not month_end(day)):
            counts["below_minimum"] += 1
            continue
        try:
            with transaction(engine) as conn:
                made = service.apply(conn, clock, SYSTEM, uin, kind=account["auto_issue_kind"],
                                     amount=None, email=None, request_key=f"auto:{day}")
        except FeeCenterError:
            counts["skipped"] += 1
            continue
        counts["applied"] += 1
        for invoice in made["invoices"]:
            counts["issued"] += issue_one(engine, clock, settings, invoice["id"])
    return counts
