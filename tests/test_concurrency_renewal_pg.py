"""One expiry day's auto-renewal run eight times at once on PostgreSQL (RNW-1, RNW-2):
the runner's run, an operator's rerun and retries racing. Each resource gets one
renewal order, paid once; an account short of money gets one failed attempt (one
try that day) and no order; no database error reaches a caller; balances are
right and reconcile stays clean (BAL-6). The stops of the same hour race too:
each expired resource is stopped once, with one stop row, named in one notice."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from feecenter.accounts.permissions import SYSTEM
from feecenter.db.engine import transaction
from feecenter.notifications.tables import in_site_messages
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.periods import HOURLY, period_containing
from feecenter.renewal import auto, jobs, lifecycle, settings
from feecenter.resources.tables import resource_stops
from tests.helpers import (add_cash, assert_reconciled, balance, buy, load_sample_catalog,
                           new_account, pay, run_threads)
from tests.test_renewal_lifecycle import resource, sh

pytestmark = [pytest.mark.postgres_only, pytest.mark.spec("RNW-1", "RNW-2", "RNW-6")]

THREADS = 8
MONTH = 178_00
PER_ACCOUNT = 4


def _buy(rt, uin: int, key: str) -> list[str]:
    order_ids = buy(rt, uin, *[("cvm", "S5.MEDIUM4", 1, "ap-guangzhou")] * PER_ACCOUNT)
    pay(rt, uin, order_ids, key=key)
    with rt.engine.connect() as conn:
        return [o["resource_id"] for o in orders.get_orders(conn, SYSTEM, uin, order_ids)]


def _count(rt, table, *where) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def test_eight_runs_of_one_expiry_day_renew_each_resource_once(rt):
    load_sample_catalog(rt)
    rich = [new_account(rt, f"rich-{i}") for i in range(3)]
    poor, manual = new_account(rt, "poor"), new_account(rt, "manual")
    owned = {}
    for uin in rich + [poor, manual]:
        add_cash(rt, uin, PER_ACCOUNT * MONTH * (1 if uin == poor else 2), key=f"c-{uin}")
        owned[uin] = _buy(rt, uin, f"buy-{uin}")
        with transaction(rt.engine) as conn:
            settings.set_auto_renew(conn, rt.clock, SYSTEM, uin, owned[uin],
                                    auto_renew=uin != manual)
    rt.clock.set(sh(2026, 4, 2, 11, 5))  # the expiry (10:00) has passed: renew, then stop
    day = sh(2026, 4, 2).date()
    period = period_containing(HOURLY, sh(2026, 4, 2, 10, 0))
    results = []

    def run(i):
        if i % 2:
            results.append(jobs.expiry(rt.engine, rt.clock, period))
        else:
            results.append({**auto.renew_due(rt.engine, rt.clock, day, batch=3),
                            "stopped": lifecycle.stop_due(rt.engine, rt.clock, period.end,
                                                          batch=3)})

    assert run_threads(THREADS, run) == []
    assert sum(r["renewed"] for r in results) == 3 * PER_ACCOUNT
    assert sum(r["stopped"] for r in results) == PER_ACCOUNT  # the manual ones (no auto-renew)
    o = orders_table.c
    for uin in rich:
        made = Counter(r for (r,) in _rows(rt, o.uin == uin, o.kind == "renew"))
        assert made == Counter(owned[uin])
        assert balance(rt, uin).cash == PER_ACCOUNT * MONTH * 2 - 2 * PER_ACCOUNT * MONTH
        assert {resource(rt, uin, r)["state"] for r in owned[uin]} == {"running"}
    assert _count(rt, orders_table, o.uin == poor, o.kind == "renew") == 0  # none left unpaid
    with rt.engine.connect() as conn:
        tried = auto.attempts(conn, SYSTEM, poor, owned[poor])
    assert {(a["state"], a["tries"]) for a in tried.values()} == {("failed", 1)}
    assert len(tried) == PER_ACCOUNT
    for uin in (poor, manual):  # retried tomorrow / not auto: stopped once, told once
        for resource_id in owned[uin]:
            assert _count(rt, resource_stops, resource_stops.c.resource_id == resource_id) == (
                0 if uin == poor else 1)
    m = in_site_messages.c
    with rt.engine.connect() as conn:
        bodies = conn.execute(select(m.body).where(m.uin == manual,
                                                   m.template == "renewal_stopped")).scalars().all()
    for resource_id in owned[manual]:  # in the notice of the run that stopped it, only
        assert sum(resource_id in body for body in bodies) == 1
    assert_reconciled(rt)


def _rows(rt, *where):
    with rt.engine.connect() as conn:
        return conn.execute(select(orders_table.c.resource_id).where(*where)).all()
