"""One idempotency key sent by 8 concurrent requests creates once (PostgreSQL).

A client that times out retries; here 8 real threads, each in its own database
transaction, send the same creation with the same key at once: a purchase of
two items, a renewal, an upgrade, a postpaid opening. The account's balance
rows are the claim (docs/orders.md, "Idempotency keys"): exactly one request
creates, every other one waits for it and returns the same result; none sees a
500 or a raw IntegrityError. SQLite serialises writers, so these run on
PostgreSQL only (the sequential repeats: tests/test_orders_idempotency.py).
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from feecenter.accounts.permissions import SYSTEM
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.resources import postpaid
from feecenter.resources.tables import resources as resources_table
from tests import helpers
from tests.helpers import (add_cash, assert_reconciled, balance, load_sample_catalog, new_account,
                           run_threads)

pytestmark = [pytest.mark.postgres_only, pytest.mark.spec("ORD-1")]

THREADS = 8
ITEMS = [orders.NewPurchase(product="cvm", region="ap-guangzhou", spec_item="S5.MEDIUM4"),
         orders.NewPurchase(product="ssl", region="mainland", spec_item="OV.single", months=12)]


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return rt


def same_key_at_once(rt, call) -> list:
    """Thread i runs ``call(conn)`` in a transaction of its own, all released together;
    every result (any exception, a Conflict included, fails the test)."""
    results: list = [None] * THREADS
    lock = threading.Lock()

    def work(i):
        with rt.engine.begin() as conn:
            result = call(conn)
        with lock:
            results[i] = result

    errors = run_threads(THREADS, work)
    assert errors == [], [repr(e) for e in errors]
    return results


def count(rt, table, *where) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def delivered_cvm(rt, uin) -> str:
    (order_id,) = helpers.buy(rt, uin)
    helpers.pay(rt, uin, [order_id])
    with rt.engine.connect() as conn:
        return orders.get_order(conn, SYSTEM, uin, order_id)["resource_id"]


def test_eight_purchases_with_one_key_make_one_big_deal(shop):
    rt = shop
    uin = new_account(rt)
    results = same_key_at_once(rt, lambda conn: orders.create_purchase(
        conn, rt.clock, SYSTEM, uin, ITEMS, key="checkout-7"))
    assert len({tuple(r) for r in results}) == 1, results
    assert len(results[0]) == 2
    assert count(rt, orders_table, orders_table.c.uin == uin) == 2


def test_eight_renewals_with_one_key_make_one_order(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    resource_id = delivered_cvm(rt, uin)
    results = same_key_at_once(rt, lambda conn: orders.create_renewal(
        conn, rt.clock, SYSTEM, uin, resource_id, 1, key="renew-7"))
    assert len(set(results)) == 1, results
    assert count(rt, orders_table, orders_table.c.kind == "renew") == 1


def test_eight_upgrades_with_one_key_make_one_order(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    resource_id = delivered_cvm(rt, uin)
    results = same_key_at_once(rt, lambda conn: orders.create_upgrade(
        conn, rt.clock, SYSTEM, uin, resource_id, "S5.LARGE8", key="up-7"))
    assert len(set(results)) == 1, results
    assert count(rt, orders_table, orders_table.c.kind == "upgrade") == 1


@pytest.mark.spec("FRZ-1")
def test_eight_openings_with_one_key_open_one_resource_and_freeze_once(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 100_00)
    results = same_key_at_once(rt, lambda conn: postpaid.open_postpaid(
        conn, rt.clock, SYSTEM, uin, product="cdb", region="ap-guangzhou",
        spec_item="MYSQL.2C4G", key="open-7"))
    assert len(set(results)) == 1, results
    assert count(rt, resources_table, resources_table.c.uin == uin) == 1
    assert balance(rt, uin).frozen == 20_00
    assert_reconciled(rt)
