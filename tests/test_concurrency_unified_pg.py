"""Aligned renewals (RNW-5) paid concurrently on PostgreSQL: eight renewal orders of
one resource, each aligned to the unified day from the same expiry, paid at once
by eight threads: the resource row lock lets exactly one through; the others
are refused as stale (their extra days were priced from an expiry that moved)
and pay nothing; the expiry is the winner's previewed one, the books balance."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest

from feecenter.accounts.permissions import SYSTEM
from feecenter.clock import BUSINESS_TZ, from_db_time
from feecenter.errors import Conflict
from feecenter.funds import service as funds
from feecenter.orders import service as orders
from feecenter.renewal import settings
from feecenter.resources import service as resources
from tests.helpers import (add_cash, assert_reconciled, balance, buy, load_sample_catalog,
                           new_account, pay, run_threads)

pytestmark = [pytest.mark.postgres_only, pytest.mark.spec("RNW-5")]
THREADS = 8


@pytest.mark.slow
def test_one_of_eight_aligned_renewals_of_one_resource_is_delivered(rt):
    load_sample_catalog(rt)
    rt.clock.set(datetime(2026, 11, 20, 10, 0, tzinfo=BUSINESS_TZ))
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    with rt.engine.begin() as conn:
        for entity in ("cn-cloud", "cn-software"):
            funds.platform_account(conn, rt.clock, "revenue", entity)
    (bought,) = buy(rt, uin)
    pay(rt, uin, [bought])
    with rt.engine.begin() as conn:
        resource_id = orders.get_order(conn, SYSTEM, uin, bought)["resource_id"]
        settings.set_unified_day(conn, rt.clock, SYSTEM, uin, 10)
        order_ids = [orders.create_renewal(conn, rt.clock, SYSTEM, uin, resource_id, 1)
                     for _ in range(THREADS)]
    cash_before = balance(rt, uin).cash
    lock, outcome = threading.Lock(), {"paid": [], "stale": []}

    def work(i):
        try:
            with rt.engine.begin() as conn:
                orders.pay(conn, rt.clock, SYSTEM, uin, [order_ids[i]], key=f"race-{i}")
            result = "paid"
        except Conflict as refused:
            assert refused.field == "resource_id", refused
            result = "stale"
        with lock:
            outcome[result].append(order_ids[i])

    assert run_threads(THREADS, work) == []
    assert len(outcome["paid"]) == 1 and len(outcome["stale"]) == THREADS - 1
    with rt.engine.connect() as conn:
        winner = orders.get_order(conn, SYSTEM, uin, outcome["paid"][0])
        expiry = resources.get_resource(conn, uin, resource_id)["period_end"]
    assert from_db_time(expiry) == datetime(2027, 2, 10, 10, 0, tzinfo=BUSINESS_TZ)
    assert expiry == winner["service_end"]
    assert cash_before - balance(rt, uin).cash == winner["amount"] == 178_00 + 126_12
    assert_reconciled(rt, uin)
