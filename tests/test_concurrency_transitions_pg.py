"""Every money-moving state transition claimed once under 8 concurrent requests (PostgreSQL).

Issue #16 point 1 (docs/architecture.md, "Claiming a state change"):
8 real threads, each in its own database transaction, ask for the same
transition at once (each with its own idempotency key, unless a test says
otherwise). Exactly one wins; the others
get a Conflict naming the state they found; the balances, the ledger
transactions and the 收支明细 entries move exactly once; reconcile is clean.
SQLite serialises writers, so these run on PostgreSQL only.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from feecenter.accounts.permissions import SYSTEM
from feecenter.catalog import service as catalog
from feecenter.clock import add_months, from_db_time
from feecenter.coupons import rules as coupon_rules
from feecenter.coupons import service as coupons
from feecenter.coupons.tables import coupons as coupons_table
from feecenter.errors import Conflict
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.orders import service as orders
from feecenter.orders.rules import prorated_change
from feecenter.orders.tables import orders as orders_table
from feecenter.resources import postpaid
from feecenter.resources import service as resources
from tests import helpers
from tests.helpers import (OPS, add_cash, assert_reconciled, balance, load_sample_catalog,
                           new_account, run_threads)

pytestmark = pytest.mark.postgres_only

THREADS = 8
CVM_MONTH = 178_00    # S5.MEDIUM4, one month
CVM_LARGE = 356_00    # S5.LARGE8, one month
CVM_XLARGE = 712_00   # S5.2XLARGE16, one month
SSL_YEAR = 3960_00    # ssl OV.single, twelve months, delivered by hand
# what one payment delivered at once writes: the freeze and its posting (收支明细 both)
PAID_AT_ONCE = {"txn:block": 1, "entry:block": 1, "txn:deduct": 1, "entry:deduct": 1}


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    with rt.engine.begin() as conn:  # the platform accounts exist before the race
        for entity in ("cn-cloud", "cn-software"):
            for purpose in ("revenue", coupons.FUNDING):
                funds.platform_account(conn, rt.clock, purpose, entity)
    return rt


# ---------------------------------------------------------------- the race

Call = Callable[[object], object]


def race(rt, calls: list[Call]) -> list[tuple[str, object]]:
    """Thread i runs ``calls[i](conn)`` in a transaction of its own, all released
    together; per thread ("won", result) or ("conflict", the Conflict). Any other
    exception fails the test (a deadlock or an IntegrityError is a bug)."""
    outcomes: list = [None] * len(calls)
    lock = threading.Lock()

    def work(i):
        try:
            with rt.engine.begin() as conn:
                result = ("won", calls[i](conn))
        except Conflict as exc:
            result = ("conflict", exc)
        with lock:
            outcomes[i] = result

    errors = run_threads(len(calls), work)
    assert errors == [], [repr(e) for e in errors]
    return outcomes


def summary(outcomes) -> str:
    """For failure messages: how many won, and what each loser said."""
    won = sum(1 for kind, _ in outcomes if kind == "won")
    said = Counter(exc.message for kind, exc in outcomes if kind == "conflict")
    return f"{won} of {len(outcomes)} won; refused: {dict(said)}"


def winners(outcomes, indexes=None) -> list[int]:
    return [i for i, (kind, _) in enumerate(outcomes)
            if kind == "won" and (indexes is None or i in indexes)]


def assert_losers_name(outcomes, field: str, **named) -> None:
    """Every loser is a Conflict on ``field`` whose details and both messages name
    what it found (e.g. state="delivered")."""
    losers = [exc for kind, exc in outcomes if kind == "conflict"]
    for exc in losers:
        assert exc.field == field, exc.message
        for key, value in named.items():
            assert exc.details.get(key) == value, (exc.message, exc.details)
            assert value in exc.message_en and value in exc.message_zh, exc.message


def movements(rt, uin) -> Counter:
    """The account's ledger transactions by kind and 收支明细 entries by type."""
    t, e = ledger_transactions.c, statement_entries.c
    with rt.engine.connect() as conn:
        txns = conn.execute(select(t.kind, func.count()).where(t.uin == uin)
                            .group_by(t.kind)).all()
        entries = conn.execute(select(e.action_type, func.count()).where(e.uin == uin)
                               .group_by(e.action_type)).all()
    return Counter({f"txn:{k}": n for k, n in txns}) + Counter(
        {f"entry:{k}": n for k, n in entries})


def moved(rt, uin, before: Counter) -> dict:
    return dict(movements(rt, uin) - before)


def order_row(rt, order_id) -> dict:
    with rt.engine.connect() as conn:
        return dict(conn.execute(select(orders_table).where(orders_table.c.id == order_id))
                    .mappings().one())


def resource(rt, uin, resource_id) -> dict:
    with rt.engine.connect() as conn:
        return resources.get_resource(conn, uin, resource_id)


def coupon_remaining(rt, coupon_id) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(coupons_table.c.remaining)
                            .where(coupons_table.c.id == coupon_id)).scalar_one()


def grant(rt, uin, kind, face, **kw) -> int:
    terms = coupon_rules.Terms(kind=kind, pay_mode=coupon_rules.PREPAID, face_amount=face,
                               valid_days=30, **kw)
    with rt.engine.begin() as conn:
        return coupons.grant(conn, rt.clock, OPS, uin, terms, campaign="race")


def bought(rt, uin, spec="S5.MEDIUM4", coupon_ids=None) -> tuple[int, str]:
    """A cvm bought for one month and paid (delivered at once): (order id, resource id)."""
    (order_id,) = helpers.buy(rt, uin, ("cvm", spec, 1, "ap-guangzhou"))
    with rt.engine.begin() as conn:
        orders.pay(conn, rt.clock, SYSTEM, uin, [order_id], key=f"buy-{order_id}",
                   coupon_ids=coupon_ids)
    return order_id, order_row(rt, order_id)["resource_id"]


def paid_certificate(rt, uin, coupon_ids=None) -> int:
    """An ssl certificate paid and waiting for its delivery by hand (frozen)."""
    (order_id,) = helpers.buy(rt, uin, ("ssl", "OV.single", 12, "mainland"))
    with rt.engine.begin() as conn:
        orders.pay(conn, rt.clock, SYSTEM, uin, [order_id], key=f"ssl-{order_id}",
                   coupon_ids=coupon_ids)
    assert order_row(rt, order_id)["state"] == "paid"
    return order_id


def refund_call(rt, uin, resource_id, key) -> Call:
    return lambda conn: orders.refund_resource(conn, rt.clock, SYSTEM, uin, resource_id, key=key)


def downgrade_call(rt, uin, resource_id, spec, key) -> Call:
    return lambda conn: orders.downgrade(conn, rt.clock, SYSTEM, uin, resource_id, spec, key=key)


def pay_call(rt, uin, order_id, key) -> Call:
    return lambda conn: orders.pay(conn, rt.clock, SYSTEM, uin, [order_id], key=key)


# ---------------------------------------------------------------- refunds and downgrades

@pytest.mark.spec("ORD-4", "BAL-5")
def test_eight_refunds_of_one_resource_pay_back_once(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    cash_coupon = grant(rt, uin, coupon_rules.CASH, 78_00)
    _, resource_id = bought(rt, uin, coupon_ids=[cash_coupon])  # 78.00 coupon + 100.00 cash
    assert coupon_remaining(rt, cash_coupon) == 0
    before, cash = movements(rt, uin), balance(rt, uin).cash
    outcomes = race(rt, [refund_call(rt, uin, resource_id, f"refund-{i}")
                         for i in range(THREADS)])
    assert len(winners(outcomes)) == 1, summary(outcomes)
    assert_losers_name(outcomes, "resource_id", state="recycled")
    assert balance(rt, uin).cash == cash + 100_00  # inside the no-reason window: all of it
    assert coupon_remaining(rt, cash_coupon) == 78_00  # the cash coupon back, once
    assert moved(rt, uin, before) == {"txn:return": 1, "entry:return": 1,
                                      "txn:coupon_return": 1}
    assert resource(rt, uin, resource_id)["state"] == "recycled"
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1", "BAL-5")
def test_eight_downgrades_of_one_resource_pay_back_once(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    _, resource_id = bought(rt, uin, spec="S5.LARGE8")
    before, cash = movements(rt, uin), balance(rt, uin).cash
    outcomes = race(rt, [downgrade_call(rt, uin, resource_id, "S5.MEDIUM4", f"down-{i}")
                         for i in range(THREADS)])
    assert len(winners(outcomes)) == 1, summary(outcomes)
    (won,) = winners(outcomes)
    assert_losers_name(outcomes, "spec_item", spec_item="S5.MEDIUM4")
    down = order_row(rt, outcomes[won][1])
    assert 0 < down["refunded_cash"] <= CVM_LARGE - CVM_MONTH + 6_00  # a month, prorated
    assert balance(rt, uin).cash == cash + down["refunded_cash"]
    assert moved(rt, uin, before) == {"txn:return": 1, "entry:return": 1}
    assert resource(rt, uin, resource_id)["spec_item"] == "S5.MEDIUM4"
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1", "ORD-4", "BAL-5")
def test_refunds_racing_downgrades_give_back_what_was_paid_once(shop):
    """In any serial order the customer gets back exactly what was paid (inside the
    no-reason window): a downgrade then the refund of the rest, or the refund alone."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    _, resource_id = bought(rt, uin, spec="S5.LARGE8")
    before = movements(rt, uin)
    refunds, downgrades = set(range(0, THREADS, 2)), set(range(1, THREADS, 2))
    outcomes = race(rt, [refund_call(rt, uin, resource_id, f"refund-{i}") if i in refunds
                         else downgrade_call(rt, uin, resource_id, "S5.MEDIUM4", f"down-{i}")
                         for i in range(THREADS)])
    assert len(winners(outcomes, refunds)) == 1, summary(outcomes)
    (refund_won,) = winners(outcomes, refunds)
    downgrade_won = winners(outcomes, downgrades)
    assert len(downgrade_won) <= 1, summary(outcomes)
    for i in downgrade_won:  # a downgrade can only have come first
        assert outcomes[i][1] < outcomes[refund_won][1]
    for kind, exc in outcomes:
        if kind == "conflict":
            assert exc.details.get("state") == "recycled" or exc.details.get(
                "spec_item") == "S5.MEDIUM4", exc.message
    assert balance(rt, uin).cash == 1_000_00
    returns = 1 + len(downgrade_won)
    assert moved(rt, uin, before) == {"txn:return": returns, "entry:return": returns}
    assert resource(rt, uin, resource_id)["state"] == "recycled"
    assert_reconciled(rt)


@pytest.mark.spec("ORD-4")
def test_one_key_for_refunds_of_eight_resources_refunds_one(shop):
    """The key's earlier use is read after the claim: the account's refunds run one
    after the other, so the key names one refund and the others are refused (not
    a unique violation of the key, not a second refund)."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, THREADS * CVM_MONTH)
    resource_ids = [bought(rt, uin)[1] for _ in range(THREADS)]
    before = movements(rt, uin)
    outcomes = race(rt, [refund_call(rt, uin, r, "one-key") for r in resource_ids])
    assert len(winners(outcomes)) == 1, summary(outcomes)
    assert_losers_name(outcomes, "idempotency_key")
    assert balance(rt, uin).cash == CVM_MONTH
    assert moved(rt, uin, before) == {"txn:return": 1, "entry:return": 1}
    assert [resource(rt, uin, r)["state"] for r in resource_ids].count("recycled") == 1
    assert_reconciled(rt)


# ---------------------------------------------------------------- renewal and upgrade payments

@pytest.mark.spec("ORD-1", "ORD-3")
def test_eight_payments_of_one_renewal_extend_the_resource_once(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    _, resource_id = bought(rt, uin)
    end = from_db_time(resource(rt, uin, resource_id)["period_end"])
    with rt.engine.begin() as conn:
        renewal = orders.create_renewal(conn, rt.clock, SYSTEM, uin, resource_id, 1)
    before, cash = movements(rt, uin), balance(rt, uin).cash
    outcomes = race(rt, [pay_call(rt, uin, renewal, f"renew-{i}") for i in range(THREADS)])
    assert len(winners(outcomes)) == 1, summary(outcomes)
    assert_losers_name(outcomes, "order_ids", state="delivered")
    assert balance(rt, uin).cash == cash - CVM_MONTH
    assert from_db_time(resource(rt, uin, resource_id)["period_end"]) == add_months(end, 1)
    assert moved(rt, uin, before) == PAID_AT_ONCE
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1", "ORD-3")
def test_eight_payments_of_one_upgrade_charge_once(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    _, resource_id = bought(rt, uin)
    with rt.engine.begin() as conn:
        upgrade = orders.create_upgrade(conn, rt.clock, SYSTEM, uin, resource_id, "S5.LARGE8")
    amount = order_row(rt, upgrade)["amount"]
    before, cash = movements(rt, uin), balance(rt, uin).cash
    outcomes = race(rt, [pay_call(rt, uin, upgrade, f"up-{i}") for i in range(THREADS)])
    assert len(winners(outcomes)) == 1, summary(outcomes)
    assert_losers_name(outcomes, "order_ids", state="delivered")
    assert balance(rt, uin).cash == cash - amount
    assert resource(rt, uin, resource_id)["spec_item"] == "S5.LARGE8"
    assert moved(rt, uin, before) == PAID_AT_ONCE
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1", "ORD-3")
def test_eight_upgrade_orders_of_one_resource_paid_at_once_apply_one(shop):
    """Eight upgrade orders priced from one spec, each paid at once: the first paid
    changes the resource; the others find it changed since they were priced
    (docs/orders.md, "Stale prices") and write nothing."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 10_000_00)
    _, resource_id = bought(rt, uin)
    specs = ("S5.LARGE8", "S5.2XLARGE16")
    with rt.engine.begin() as conn:
        upgrades = [orders.create_upgrade(conn, rt.clock, SYSTEM, uin, resource_id, specs[i % 2])
                    for i in range(THREADS)]
    before, cash = movements(rt, uin), balance(rt, uin).cash
    outcomes = race(rt, [pay_call(rt, uin, u, f"up-{i}") for i, u in enumerate(upgrades)])
    assert len(winners(outcomes)) == 1, summary(outcomes)
    (won,) = winners(outcomes)
    assert_losers_name(outcomes, "resource_id", resource_id=resource_id)
    assert balance(rt, uin).cash == cash - order_row(rt, upgrades[won])["amount"]
    assert resource(rt, uin, resource_id)["spec_item"] == specs[won % 2]
    assert [order_row(rt, u)["state"] for u in upgrades].count("unpaid") == THREADS - 1
    assert moved(rt, uin, before) == PAID_AT_ONCE
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1")
def test_upgrade_orders_created_while_another_is_paid_are_priced_from_what_they_saw(shop):
    """One thread pays an upgrade MEDIUM4→LARGE8 while seven create upgrades to
    2XLARGE16. Each creation records the spec it read: MEDIUM4, and it is refused
    when paid (the upgrade to LARGE8 took effect since), or LARGE8, and it pays.
    All at one instant (the FixedClock): the times decide nothing."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 10_000_00)
    _, resource_id = bought(rt, uin)
    with rt.engine.begin() as conn:
        first = orders.create_upgrade(conn, rt.clock, SYSTEM, uin, resource_id, "S5.LARGE8")
    clock = rt.clock
    outcomes = race(rt, [
        (lambda conn: orders.pay(conn, clock, SYSTEM, uin, [first], key="first")) if i == 0
        else (lambda conn: orders.create_upgrade(conn, clock, SYSTEM, uin, resource_id,
                                                 "S5.2XLARGE16"))
        for i in range(THREADS)])
    assert len(winners(outcomes)) == THREADS, summary(outcomes)
    assert resource(rt, uin, resource_id)["spec_item"] == "S5.LARGE8"
    # about a month left: 534.00 a month from MEDIUM4, 356.00 from LARGE8
    created = [order_row(rt, result) for _, result in outcomes[1:]]
    from_medium = [o["id"] for o in created if o["amount"] > 450_00]
    from_large = [o["id"] for o in created if o["amount"] <= 450_00]
    for order in created:
        assert order["from_spec_item"] == ("S5.LARGE8" if order["id"] in from_large
                                           else "S5.MEDIUM4")
    for order_id in from_medium:
        with pytest.raises(Conflict) as err, rt.engine.begin() as conn:
            orders.pay(conn, clock, SYSTEM, uin, [order_id], key=f"stale-{order_id}")
        assert err.value.field == "resource_id", err.value.message
    if from_large:
        with rt.engine.begin() as conn:
            orders.pay(conn, clock, SYSTEM, uin, [from_large[0]], key="fresh")
        assert resource(rt, uin, resource_id)["spec_item"] == "S5.2XLARGE16"
    assert_reconciled(rt)


def _returned(rt, uin, resource_id, old_fen: int, new_fen: int) -> int:
    """What a downgrade from ``old_fen`` to ``new_fen`` a month returns now."""
    left = from_db_time(resource(rt, uin, resource_id)["period_end"]) - rt.clock.now()
    return -prorated_change(old_fen * 1_000_000, new_fen * 1_000_000, left)


@pytest.mark.spec("ORD-1", "BAL-5")
def test_downgrades_racing_the_payment_of_an_upgrade_never_undercharge(shop):
    """LARGE8 with an upgrade order to 2XLARGE16, paid while downgrades to MEDIUM4 run.
    Serially: the upgrade paid, then one downgrade returns 2XLARGE16 − MEDIUM4; or a
    downgrade first returns LARGE8 − MEDIUM4 and the upgrade, priced from LARGE8,
    is refused (paid, it would move MEDIUM4 to 2XLARGE16 for 2XLARGE16 − LARGE8)."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 10_000_00)
    _, resource_id = bought(rt, uin, spec="S5.LARGE8")
    with rt.engine.begin() as conn:
        upgrade = orders.create_upgrade(conn, rt.clock, SYSTEM, uin, resource_id,
                                        "S5.2XLARGE16")
    up = order_row(rt, upgrade)["amount"]
    cash = balance(rt, uin).cash
    pays = set(range(0, THREADS, 2))
    outcomes = race(rt, [pay_call(rt, uin, upgrade, f"up-{i}") if i in pays
                         else downgrade_call(rt, uin, resource_id, "S5.MEDIUM4", f"down-{i}")
                         for i in range(THREADS)])
    paid = winners(outcomes, pays)
    assert len(paid) <= 1 and len(winners(outcomes)) == len(paid) + 1, summary(outcomes)
    (down_won,) = [i for i in winners(outcomes) if i not in pays]
    back = -order_row(rt, outcomes[down_won][1])["amount"]
    if paid:
        assert back == _returned(rt, uin, resource_id, CVM_XLARGE, CVM_MONTH)
        assert balance(rt, uin).cash == cash - up + back
    else:
        assert back == _returned(rt, uin, resource_id, CVM_LARGE, CVM_MONTH)
        assert balance(rt, uin).cash == cash + back
        assert order_row(rt, upgrade)["state"] == "unpaid"
    for kind, exc in outcomes:
        if kind == "conflict":
            assert exc.field in ("resource_id", "spec_item", "order_ids"), exc.message
    assert resource(rt, uin, resource_id)["spec_item"] == "S5.MEDIUM4"
    assert_reconciled(rt)


@pytest.mark.spec("ORD-4")
def test_refunds_racing_the_payment_of_a_renewal_never_revive_the_resource(shop):
    """Serially: the renewal paid then everything refunded, or the refund first and the
    renewal refused (the resource is released). Never a paid renewal of a released
    resource, never a refund that misses a paid renewal."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    _, resource_id = bought(rt, uin)
    with rt.engine.begin() as conn:
        renewal = orders.create_renewal(conn, rt.clock, SYSTEM, uin, resource_id, 1)
    refunds = set(range(0, THREADS, 2))
    outcomes = race(rt, [refund_call(rt, uin, resource_id, f"refund-{i}") if i in refunds
                         else pay_call(rt, uin, renewal, f"renew-{i}") for i in range(THREADS)])
    assert len(winners(outcomes, refunds)) == 1, summary(outcomes)
    assert len(winners(outcomes)) <= 2, summary(outcomes)
    for kind, exc in outcomes:
        if kind == "conflict":
            assert exc.details.get("state") in ("recycled", "delivered", "refunded"), exc.message
    assert balance(rt, uin).cash == 1_000_00  # all paid came back, nothing more
    assert resource(rt, uin, resource_id)["state"] == "recycled"
    assert order_row(rt, renewal)["state"] in ("unpaid", "refunded")
    assert_reconciled(rt)


# ---------------------------------------------------------------- delivery by hand

@pytest.mark.spec("FRZ-3")
def test_eight_deliveries_of_one_order_post_the_freeze_once(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, SSL_YEAR)
    voucher = grant(rt, uin, coupon_rules.VOUCHER, 100_00)
    order_id = paid_certificate(rt, uin, coupon_ids=[voucher])
    before = movements(rt, uin)
    outcomes = race(rt, [lambda conn: orders.deliver(conn, rt.clock, OPS, order_id)
                         for _ in range(THREADS)])
    assert len(winners(outcomes)) == 1, summary(outcomes)
    assert_losers_name(outcomes, "order_id", state="delivered")
    view = balance(rt, uin)
    assert (view.cash, view.frozen) == (100_00, 0)
    assert moved(rt, uin, before) == {"txn:deduct": 1, "entry:deduct": 1, "txn:coupon_pay": 1}
    assert order_row(rt, order_id)["state"] == "delivered"
    assert_reconciled(rt)


@pytest.mark.spec("FRZ-3")
def test_eight_failed_deliveries_of_one_order_release_the_freeze_once(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, SSL_YEAR)
    voucher = grant(rt, uin, coupon_rules.VOUCHER, 100_00)
    order_id = paid_certificate(rt, uin, coupon_ids=[voucher])
    before = movements(rt, uin)
    outcomes = race(rt, [lambda conn: orders.fail_delivery(conn, rt.clock, OPS, order_id,
                                                           "CA refused")
                         for _ in range(THREADS)])
    assert len(winners(outcomes)) == 1, summary(outcomes)
    assert_losers_name(outcomes, "order_id", state="delivery_failed")
    view = balance(rt, uin)
    assert (view.cash, view.frozen) == (SSL_YEAR, 0)
    assert coupon_remaining(rt, voucher) == 100_00  # given back once, not twice
    assert moved(rt, uin, before) == {"txn:unblock": 1, "entry:unblock": 1}
    assert_reconciled(rt)


@pytest.mark.spec("FRZ-3")
def test_deliveries_racing_failed_deliveries_settle_the_freeze_once(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, SSL_YEAR)
    order_id = paid_certificate(rt, uin)
    before = movements(rt, uin)
    outcomes = race(rt, [
        (lambda conn: orders.deliver(conn, rt.clock, OPS, order_id)) if i % 2 else
        (lambda conn: orders.fail_delivery(conn, rt.clock, OPS, order_id, "CA refused"))
        for i in range(THREADS)])
    assert len(winners(outcomes)) == 1, summary(outcomes)
    (won,) = winners(outcomes)
    state = "delivered" if won % 2 else "delivery_failed"
    assert_losers_name(outcomes, "order_id", state=state)
    assert order_row(rt, order_id)["state"] == state
    view = balance(rt, uin)
    if state == "delivered":
        assert (view.cash, view.frozen) == (0, 0)
        assert moved(rt, uin, before) == {"txn:deduct": 1, "entry:deduct": 1}
    else:
        assert (view.cash, view.frozen) == (SSL_YEAR, 0)
        assert moved(rt, uin, before) == {"txn:unblock": 1, "entry:unblock": 1}
    assert_reconciled(rt)


# ---------------------------------------------------------------- closing unpaid orders

def test_eight_voids_of_one_order_void_it_once(shop):
    rt = shop
    uin = new_account(rt)
    (order_id,) = helpers.buy(rt, uin)
    outcomes = race(rt, [lambda conn: orders.void_order(conn, rt.clock, SYSTEM, uin, order_id)
                         for _ in range(THREADS)])
    assert len(winners(outcomes)) == 1, summary(outcomes)
    assert_losers_name(outcomes, "order_id", state="voided")
    assert order_row(rt, order_id)["state"] == "voided"


def test_voids_racing_payments_of_one_order(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    (order_id,) = helpers.buy(rt, uin)
    before = movements(rt, uin)
    outcomes = race(rt, [
        pay_call(rt, uin, order_id, f"pay-{i}") if i % 2 else
        (lambda conn: orders.void_order(conn, rt.clock, SYSTEM, uin, order_id))
        for i in range(THREADS)])
    assert len(winners(outcomes)) == 1, summary(outcomes)
    (won,) = winners(outcomes)
    state = "delivered" if won % 2 else "voided"
    for kind, exc in outcomes:
        if kind == "conflict":
            assert exc.details.get("state") == state, exc.message
    assert order_row(rt, order_id)["state"] == state
    paid = state == "delivered"
    assert balance(rt, uin).cash == 1_000_00 - (CVM_MONTH if paid else 0)
    assert moved(rt, uin, before) == (PAID_AT_ONCE if paid else {})
    assert_reconciled(rt)


@pytest.mark.spec("ORD-2")
def test_eight_expiry_runs_expire_each_order_once(shop):
    rt = shop
    uin = new_account(rt)
    ids = [order_id for _ in range(5) for order_id in helpers.buy(rt, uin)]
    rt.clock.advance(days=16)
    outcomes = race(rt, [lambda conn: orders.expire_unpaid(conn, rt.clock)
                         for _ in range(THREADS)])
    assert sum(result for _, result in outcomes) == len(ids), outcomes
    assert {order_row(rt, i)["state"] for i in ids} == {"expired"}


# ---------------------------------------------------------------- coupons

@pytest.mark.spec("ORD-3")
def test_one_coupon_picked_by_eight_payments_pays_once(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 2_000_00)
    cash_coupon = grant(rt, uin, coupon_rules.CASH, CVM_MONTH)
    ids = [order_id for _ in range(THREADS) for order_id in helpers.buy(rt, uin)]
    before = movements(rt, uin)
    outcomes = race(rt, [
        (lambda conn, o=order_id: orders.pay(conn, rt.clock, SYSTEM, uin, [o], key=f"p-{o}",
                                             coupon_ids=[cash_coupon])) for order_id in ids])
    assert len(winners(outcomes)) == THREADS, summary(outcomes)  # each pays its own order
    assert sorted(order_row(rt, i)["paid_coupon"] for i in ids) == [0] * 7 + [CVM_MONTH]
    assert coupon_remaining(rt, cash_coupon) == 0
    assert balance(rt, uin).cash == 2_000_00 - 7 * CVM_MONTH
    assert moved(rt, uin, before)["txn:coupon_pay"] == 1
    assert_reconciled(rt)


# ---------------------------------------------------------------- postpaid release

def open_database(rt, uin) -> str:
    with rt.engine.begin() as conn:
        return postpaid.open_postpaid(conn, rt.clock, SYSTEM, uin, product="cdb",
                                      region="ap-guangzhou", spec_item="MYSQL.2C4G")


@pytest.mark.spec("FRZ-3")
def test_eight_releases_of_one_postpaid_resource_unfreeze_once(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 100_00)
    resource_id = open_database(rt, uin)
    assert balance(rt, uin).frozen == 20_00
    before = movements(rt, uin)
    outcomes = race(rt, [lambda conn: postpaid.release_postpaid(conn, rt.clock, SYSTEM, uin,
                                                                resource_id)
                         for _ in range(THREADS)])
    assert len(winners(outcomes)) == 1, summary(outcomes)
    assert_losers_name(outcomes, "resource_id", state="recycled")
    view = balance(rt, uin)
    assert (view.cash, view.frozen) == (100_00, 0)
    assert moved(rt, uin, before) == {"txn:unblock": 1, "entry:unblock": 1}
    assert_reconciled(rt)


@pytest.mark.spec("FRZ-3")
def test_eight_runs_of_the_due_freeze_release_release_once(shop):
    rt = shop
    deferred = catalog.sample_catalog_text().replace("freeze_release: immediate",
                                                     "freeze_release: next_settlement")
    with rt.engine.begin() as conn:
        catalog.load_catalog(conn, rt.clock, OPS, deferred, "deferred.yaml")
    uin = new_account(rt)
    add_cash(rt, uin, 100_00)
    resource_id = open_database(rt, uin)
    with rt.engine.begin() as conn:
        released = postpaid.release_postpaid(conn, rt.clock, SYSTEM, uin, resource_id)
    assert balance(rt, uin).frozen == 20_00
    rt.clock.set(released["freeze_release_at"])
    before = movements(rt, uin)
    outcomes = race(rt, [lambda conn: postpaid.release_due_freezes(conn, rt.clock)
                         for _ in range(THREADS)])
    assert [kind for kind, _ in outcomes] == ["won"] * THREADS, summary(outcomes)
    assert sorted(result for _, result in outcomes) == [0] * 7 + [1]
    assert balance(rt, uin).frozen == 0
    assert moved(rt, uin, before) == {"txn:unblock": 1, "entry:unblock": 1}
    assert_reconciled(rt)
