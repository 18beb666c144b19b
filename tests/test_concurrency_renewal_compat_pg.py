"""Renewals that pay at once, sent by 8 concurrent requests (PostgreSQL).

``RenewInstance`` (compat) creates a renewal order and pays it from the balance
in one unit of work. 8 threads with one ClientToken (a client's retries) make
one order and one payment; 8 threads with tokens of their own each renew once,
every term counted after the one before (the resource locked at delivery) and
the balance charged 8 times exactly. The console's restore from the recycle bin
with one form key, 8 times at once, makes one order. None sees a 500 or a raw
IntegrityError; the ledger reconciles.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from feecenter.accounts.permissions import SYSTEM, Actor
from feecenter.clock import add_months, from_db_time
from feecenter.compat import renewal as compat_renewal
from feecenter.db.engine import transaction
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.orders.tables import payments
from feecenter.renewal import recycle_bin
from feecenter.resources import service as resources
from tests.helpers import (add_cash, assert_reconciled, balance, buy, load_sample_catalog,
                           new_account, pay, run_threads)

pytestmark = [pytest.mark.postgres_only]

THREADS = 8
CVM_MEDIUM_MONTH = 178_00


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    uin = new_account(rt)
    add_cash(rt, uin, 10_000_00)
    (order_id,) = buy(rt, uin)
    pay(rt, uin, [order_id])
    with rt.engine.connect() as conn:
        resource_id = orders.get_order(conn, SYSTEM, uin, order_id)["resource_id"]
    return rt, uin, resource_id


def customer(uin) -> Actor:
    """The account's owner, as a signed request or a console session makes it."""
    return Actor("user", "owner", uin=uin, user_id=None, role="owner")


def at_once(call) -> list:
    results: list = [None] * THREADS
    lock = threading.Lock()

    def work(i):
        result = call(i)
        with lock:
            results[i] = result

    errors = run_threads(THREADS, work)
    assert errors == [], [repr(e) for e in errors]
    return results


def renewals(rt, resource_id) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(orders_table).where(
            orders_table.c.resource_id == resource_id, orders_table.c.kind == "renew")
        ).scalar_one()


def expiry(rt, uin, resource_id):
    with rt.engine.connect() as conn:
        return from_db_time(resources.get_resource(conn, uin, resource_id)["period_end"])


@pytest.mark.spec("XTR-5", "ORD-1")
def test_one_client_token_eight_times_at_once_renews_and_pays_once(shop):
    rt, uin, resource_id = shop
    cash, end = balance(rt, uin).cash, expiry(rt, uin, resource_id)
    payments_before = _count(rt, payments)
    answers = at_once(lambda i: compat_renewal.renew_instance(
        rt, customer(uin), {"InstanceId": resource_id, "Period": 1, "ClientToken": "retry-1"}))
    assert len({tuple(a["OrderIdList"]) for a in answers}) == 1
    assert renewals(rt, resource_id) == 1 and _count(rt, payments) == payments_before + 1
    assert balance(rt, uin).cash == cash - CVM_MEDIUM_MONTH
    assert expiry(rt, uin, resource_id) == add_months(end, 1)
    assert_reconciled(rt, uin)


@pytest.mark.spec("XTR-5", "RNW-6")
def test_eight_renewals_at_once_each_add_their_term(shop):
    rt, uin, resource_id = shop
    cash, end = balance(rt, uin).cash, expiry(rt, uin, resource_id)
    answers = at_once(lambda i: compat_renewal.renew_instance(
        rt, customer(uin), {"InstanceId": resource_id, "Period": 1, "ClientToken": f"own-{i}"}))
    assert len({a["OrderIdList"][0] for a in answers}) == THREADS
    assert renewals(rt, resource_id) == THREADS
    assert balance(rt, uin).cash == cash - THREADS * CVM_MEDIUM_MONTH
    assert expiry(rt, uin, resource_id) == add_months(end, THREADS)
    assert_reconciled(rt, uin)


@pytest.mark.spec("RNW-6")
def test_one_restore_form_sent_eight_times_at_once_makes_one_order(shop):
    rt, uin, resource_id = shop
    with transaction(rt.engine) as conn:
        end = from_db_time(resources.get_resource(conn, uin, resource_id)["period_end"])
        rt.clock.set(end)
        resources.stop_resource(conn, resource_id, end, "expired")

    def restore(i):
        with transaction(rt.engine) as conn:
            return recycle_bin.restore(conn, rt.clock, customer(uin), uin, resource_id, 1,
                                       key="console-restore:form-1")

    assert len(set(at_once(restore))) == 1 and renewals(rt, resource_id) == 1


def _count(rt, table) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()
