"""Concurrent order payments on PostgreSQL: never overdraw, never pay one order twice.

Real threads, each paying in its own database transaction (``rt.engine.begin()``)
against one customer account (BAL-4: prepaid never overdraws; BAL-7: credit is
never drawn beyond its amount; ORD-3: one order, one payment).
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select, text

from feecenter.accounts.permissions import SYSTEM
from feecenter.errors import Conflict, InsufficientBalance
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger.reconcile import reconcile
from feecenter.ledger.tables import ledger_accounts, ledger_postings, ledger_transactions
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.orders.tables import payments
from tests import helpers
from tests.helpers import (OPS, add_cash, add_gift, balance, load_sample_catalog, new_account,
                           run_threads)

pytestmark = [pytest.mark.postgres_only, pytest.mark.spec("BAL-4", "ORD-3")]

CVM_MONTH = 178_00   # S5.MEDIUM4, one month
SSL_YEAR = 3960_00   # ssl OV.single, twelve months, delivered by hand (stays frozen)
THREADS = 8


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    with rt.engine.begin() as conn:
        # the platform accounts exist before the race (as in any running system)
        for entity in ("cn-cloud", "cn-software"):
            funds.platform_account(conn, rt.clock, "revenue", entity)
    return rt


def buy(rt, uin, count=1, *, product="cvm", spec="S5.MEDIUM4", months=1,
        region="ap-guangzhou") -> list[int]:
    """``count`` separate orders (each its own purchase)."""
    return [order_id for _ in range(count)
            for order_id in helpers.buy(rt, uin, (product, spec, months, region))]


def pay_all(rt, uin, jobs: list[list[tuple[int, str]]]) -> dict:
    """Thread i pays the orders jobs[i] (order id, key) one by one, each in its own
    transaction. Returns the outcome: which orders were paid, which refused and why."""
    lock = threading.Lock()
    outcome = {"paid": [], "short": [], "conflict": [], "low_water": []}

    def work(i):
        for order_id, key in jobs[i]:
            try:
                with rt.engine.begin() as conn:
                    orders.pay(conn, rt.clock, SYSTEM, uin, [order_id], key=key)
                result = "paid"
            except InsufficientBalance:
                result = "short"
            except Conflict:
                result = "conflict"
            view = balance(rt, uin)  # watched from outside while the others write
            with lock:
                outcome[result].append(order_id)
                outcome["low_water"].append(min(view.cash, view.gift, view.available))

    errors = run_threads(len(jobs), work)
    assert errors == [], errors
    return outcome


def order_states(rt, ids) -> dict[int, str]:
    with rt.engine.connect() as conn:
        return dict(conn.execute(select(orders_table.c.id, orders_table.c.state)
                                 .where(orders_table.c.id.in_(ids))).all())


def customer_postings_never_negative(rt, uin) -> None:
    """Every balance the cash and gift accounts ever had, posting by posting, is ≥ 0."""
    with rt.engine.connect() as conn:
        lows = conn.execute(
            select(ledger_accounts.c.kind, func.min(ledger_postings.c.balance_after))
            .join(ledger_accounts, ledger_accounts.c.id == ledger_postings.c.account_id)
            .where(ledger_accounts.c.uin == uin,
                   ledger_accounts.c.kind.in_(("cash", "gift", "frozen_cash", "frozen_gift")))
            .group_by(ledger_accounts.c.kind)).all()
        assert reconcile(conn) == []
    assert lows and all(low >= 0 for _, low in lows), lows


def counts(rt, uin) -> dict[str, int]:
    with rt.engine.connect() as conn:
        def n(stmt):
            return conn.execute(stmt).scalar_one()
        return {
            "payments": n(select(func.count()).select_from(payments)
                          .where(payments.c.uin == uin)),
            "blocks": n(select(func.count()).select_from(statement_entries)
                        .where(statement_entries.c.uin == uin,
                               statement_entries.c.action_type == "block")),
            "block_txns": n(select(func.count()).select_from(ledger_transactions)
                            .where(ledger_transactions.c.uin == uin,
                                   ledger_transactions.c.kind == "block")),
        }


# ---------------------------------------------------------------- different orders, one balance

@pytest.mark.spec("FRZ-2")
def test_two_threads_two_orders_one_balance_only_one_is_paid(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)  # one certificate fits, two do not
    first, second = buy(rt, uin, 2, product="ssl", spec="OV.single", months=12,
                        region="mainland")
    outcome = pay_all(rt, uin, [[(first, "a")], [(second, "b")]])
    assert len(outcome["paid"]) == 1 and len(outcome["short"]) == 1
    assert outcome["conflict"] == [] and min(outcome["low_water"]) >= 0
    (paid,), (short,) = outcome["paid"], outcome["short"]
    assert order_states(rt, [first, second]) == {paid: "paid", short: "unpaid"}
    view = balance(rt, uin)
    assert (view.cash, view.frozen, view.available) == (5_000_00, SSL_YEAR, 5_000_00 - SSL_YEAR)
    assert counts(rt, uin) == {"payments": 1, "blocks": 1, "block_txns": 1}
    customer_postings_never_negative(rt, uin)


@pytest.mark.spec("BAL-3")
def test_eight_threads_paying_forty_orders_never_overdraw(shop):
    rt = shop
    uin = new_account(rt)
    initial_cash, initial_gift = 2_264_00, 100_00  # 13 orders of 178.00 fit, with 50.00 left
    add_cash(rt, uin, initial_cash)
    add_gift(rt, uin, initial_gift)
    ids = buy(rt, uin, THREADS * 5)
    jobs = [[(order_id, f"pay-{order_id}") for order_id in ids[i::THREADS]]
            for i in range(THREADS)]
    outcome = pay_all(rt, uin, jobs)

    assert len(ids) * CVM_MONTH > initial_cash + initial_gift  # demand exceeds supply
    assert len(outcome["paid"]) == (initial_cash + initial_gift) // CVM_MONTH == 13
    assert len(outcome["short"]) == len(ids) - 13 and outcome["conflict"] == []
    assert min(outcome["low_water"]) >= 0
    states = order_states(rt, ids)
    assert sorted(i for i, s in states.items() if s == "delivered") == sorted(outcome["paid"])
    view = balance(rt, uin)
    paid_total = 13 * CVM_MONTH
    assert paid_total <= initial_cash + initial_gift
    assert (view.gift, view.cash, view.frozen) == (0, initial_cash + initial_gift - paid_total, 0)
    with rt.engine.connect() as conn:
        paid_by = conn.execute(select(func.sum(orders_table.c.paid_gift),
                                      func.sum(orders_table.c.paid_cash),
                                      func.sum(orders_table.c.paid_credit))
                               .where(orders_table.c.id.in_(outcome["paid"]))).one()
    assert tuple(paid_by) == (initial_gift, paid_total - initial_gift, 0)  # gift first
    assert counts(rt, uin) == {"payments": 13, "blocks": 13, "block_txns": 13}
    customer_postings_never_negative(rt, uin)


@pytest.mark.spec("BAL-7")
def test_concurrent_payments_never_draw_credit_beyond_its_amount(shop):
    rt = shop
    uin = new_account(rt)
    with rt.engine.begin() as conn:
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=1_000_00)
    ids = buy(rt, uin, THREADS * 2)
    jobs = [[(order_id, f"credit-{order_id}") for order_id in ids[i::THREADS]]
            for i in range(THREADS)]
    outcome = pay_all(rt, uin, jobs)
    assert len(outcome["paid"]) == 1_000_00 // CVM_MONTH == 5
    view = balance(rt, uin)
    assert view.advances == 5 * CVM_MONTH <= view.credit_amount == 1_000_00
    assert (view.cash, view.arrears) == (0, 0)
    assert view.real_credit_balance == 1_000_00 - 5 * CVM_MONTH
    customer_postings_never_negative(rt, uin)


# ---------------------------------------------------------------- one order, two payers

def _waiting_on_locks(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")).scalar_one()


def _interleaved(rt, uin, order_id, first_key, second_key, second_order=None):
    """The first payment stays uncommitted until the second (of ``second_order``,
    default the same order) waits for a lock; then the first commits. Returns
    (results, errors)."""
    paid_first, release = threading.Event(), threading.Event()
    results: dict[str, dict] = {}
    errors: dict[str, BaseException] = {}
    paid = {"first": order_id, "second": second_order or order_id}

    def pay(name, key, hold_open):
        try:
            with rt.engine.begin() as conn:
                result = orders.pay(conn, rt.clock, SYSTEM, uin, [paid[name]], key=key)
                if hold_open:
                    paid_first.set()
                    assert release.wait(timeout=30)
            results[name] = result  # paid once committed: the writes may go with the COMMIT
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors[name] = exc
            paid_first.set()

    first = threading.Thread(target=pay, args=("first", first_key, True))
    first.start()
    assert paid_first.wait(timeout=30)
    second = threading.Thread(target=pay, args=("second", second_key, False))
    second.start()
    deadline = time.monotonic() + 10
    while _waiting_on_locks(rt) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _waiting_on_locks(rt) == 1, "the second payment should wait for the first"
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert not first.is_alive() and not second.is_alive()
    return results, errors


def test_one_order_paid_by_two_keys_at_once_is_paid_once(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    (order_id,) = buy(rt, uin)
    results, errors = _interleaved(rt, uin, order_id, "key-1", "key-2")
    assert set(results) == {"first"} and set(errors) == {"second"}
    assert isinstance(errors["second"], Conflict), repr(errors["second"])
    assert errors["second"].field == "order_ids"
    assert order_states(rt, [order_id]) == {order_id: "delivered"}
    assert balance(rt, uin).cash == 1_000_00 - CVM_MONTH
    assert counts(rt, uin) == {"payments": 1, "blocks": 1, "block_txns": 1}
    customer_postings_never_negative(rt, uin)


def test_one_order_retried_with_its_key_while_the_first_is_in_flight(shop):
    """A client retries (same key) before the first attempt has committed: it gets
    the first payment back, not an error, and nothing is written twice."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    (order_id,) = buy(rt, uin)
    results, errors = _interleaved(rt, uin, order_id, "retry", "retry")
    assert errors == {}, {k: repr(v) for k, v in errors.items()}
    assert results["second"]["payment_id"] == results["first"]["payment_id"]
    assert (results["first"]["created"], results["second"]["created"]) == (True, False)
    assert balance(rt, uin).cash == 1_000_00 - CVM_MONTH
    assert counts(rt, uin) == {"payments": 1, "blocks": 1, "block_txns": 1}


def test_one_key_for_two_orders_at_once_pays_the_first_and_refuses_the_second(shop):
    """Different orders lock different rows: the second payment waits on the balance
    rows instead, then finds the key taken (the key is looked up after both locks)."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    first, second = buy(rt, uin, 2)
    results, errors = _interleaved(rt, uin, first, "same-key", "same-key", second_order=second)
    assert set(results) == {"first"} and set(errors) == {"second"}
    assert isinstance(errors["second"], Conflict) and errors["second"].field == "idempotency_key"
    assert order_states(rt, [first, second]) == {first: "delivered", second: "unpaid"}
    assert counts(rt, uin) == {"payments": 1, "blocks": 1, "block_txns": 1}
    customer_postings_never_negative(rt, uin)


def test_eight_threads_race_for_each_order_with_their_own_keys(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 10_000_00)
    rounds = 6
    ids = buy(rt, uin, rounds)
    barriers = [threading.Barrier(THREADS) for _ in range(rounds)]
    lock = threading.Lock()
    outcome: dict[int, list[str]] = {i: [] for i in ids}
    unexpected: list[BaseException] = []

    def work(t):
        for r, order_id in enumerate(ids):
            barriers[r].wait(timeout=30)
            try:
                with rt.engine.begin() as conn:
                    orders.pay(conn, rt.clock, SYSTEM, uin, [order_id], key=f"t{t}-o{order_id}")
                result = "paid"
            except Conflict:
                result = "conflict"
            except BaseException as exc:  # noqa: BLE001 - an IntegrityError would be a bug
                with lock:
                    unexpected.append(exc)
                result = "error"
            with lock:
                outcome[order_id].append(result)

    errors = run_threads(THREADS, work)
    assert errors == [] and unexpected == [], [repr(e) for e in unexpected + errors]
    for order_id in ids:
        assert sorted(outcome[order_id]) == ["conflict"] * (THREADS - 1) + ["paid"]
    assert set(order_states(rt, ids).values()) == {"delivered"}
    assert balance(rt, uin).cash == 10_000_00 - rounds * CVM_MONTH
    assert counts(rt, uin) == {"payments": rounds, "blocks": rounds, "block_txns": rounds}
    customer_postings_never_negative(rt, uin)


def test_first_deliveries_of_two_customers_at_once(rt):
    """A fresh platform: nobody has bought from the entity yet, two customers pay together."""
    load_sample_catalog(rt)
    first, second = new_account(rt, "first-buyer"), new_account(rt, "second-buyer")
    orders_of = {}
    for uin in (first, second):  # paid, each waiting for its delivery by hand
        add_cash(rt, uin, SSL_YEAR)
        (orders_of[uin],) = buy(rt, uin, product="ssl", spec="OV.single", months=12,
                                region="mainland")
        with rt.engine.begin() as conn:
            orders.pay(conn, rt.clock, SYSTEM, uin, [orders_of[uin]], key=f"ssl-{uin}")
    delivered_first, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def deliver(order_id, hold_open):
        try:
            with rt.engine.begin() as conn:
                orders.deliver(conn, rt.clock, OPS, order_id)
                if hold_open:
                    delivered_first.set()
                    assert release.wait(timeout=30)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            delivered_first.set()

    one = threading.Thread(target=deliver, args=(orders_of[first], True))
    one.start()
    assert delivered_first.wait(timeout=30)
    two = threading.Thread(target=deliver, args=(orders_of[second], False))
    two.start()
    deadline = time.monotonic() + 10
    while _waiting_on_locks(rt) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    one.join(timeout=30)
    two.join(timeout=30)
    assert errors == [], [repr(e) for e in errors]
    assert set(order_states(rt, list(orders_of.values())).values()) == {"delivered"}
