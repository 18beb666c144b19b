"""Prepaid coupons in order payment (ORD-3 coupons first, FRZ-3, ORD-4, CPN-3/4/6)."""

import pytest
from sqlalchemy import select

from feecenter.accounts.permissions import SYSTEM
from feecenter.catalog import service as catalog
from feecenter.coupons import rules
from feecenter.coupons import service as coupons
from feecenter.coupons.tables import coupon_uses
from feecenter.coupons.tables import coupons as coupons_table
from feecenter.errors import Conflict, InvalidInput, NotFound
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger import service as ledger
from feecenter.ledger.tables import ledger_transactions
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from tests import helpers
from tests.helpers import (OPS, add_cash, add_gift, assert_reconciled, balance,
                           load_sample_catalog, new_account, row_counts)

CVM_MEDIUM_MONTH = 178_00
CVM_LARGE_MONTH = 356_00


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return rt


def grant(rt, uin, *, kind=rules.VOUCHER, face=50_00, **kw) -> int:
    terms = rules.Terms(kind=kind, pay_mode=rules.PREPAID, face_amount=face, valid_days=30, **kw)
    with rt.engine.begin() as conn:
        return coupons.grant(conn, rt.clock, OPS, uin, terms, campaign="launch")


def buy(rt, uin, spec="S5.MEDIUM4", months=1, product="cvm", region="ap-guangzhou", **each):
    return helpers.buy(rt, uin, (product, spec, months, region), **each)


def pay(rt, uin, order_ids, key="pay-1", **kw) -> dict:
    with rt.engine.begin() as conn:
        return orders.pay(conn, rt.clock, SYSTEM, uin, list(order_ids), key=key, **kw)


def preview(rt, uin, order_ids, **kw) -> dict:
    with rt.engine.connect() as conn:
        return orders.preview_payment(conn, rt.clock, SYSTEM, uin, list(order_ids), **kw)


def order(rt, uin, order_id) -> dict:
    with rt.engine.connect() as conn:
        return orders.get_order(conn, SYSTEM, uin, order_id)


def coupon(rt, coupon_id):
    with rt.engine.connect() as conn:
        return conn.execute(select(coupons_table).where(coupons_table.c.id == coupon_id)).one()


def uses(rt, order_id) -> list[tuple[str, int]]:
    with rt.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(coupon_uses.c.state, coupon_uses.c.amount)
            .where(coupon_uses.c.reference == f"order:{order_id}").order_by(coupon_uses.c.id))]


def platform(rt, purpose, entity) -> int:
    with rt.engine.begin() as conn:
        return ledger.balance_of(conn, funds.platform_account(conn, rt.clock, purpose, entity))


def ssl_year(rt, uin) -> tuple[str, int]:
    with rt.engine.connect() as conn:
        spec = catalog.list_items(conn, "ssl")[0]["code"]
        amount = catalog.quote(conn, uin, "ssl", spec, "mainland", "prepaid", 1_000_000,
                               rt.clock.now(), months=12).amount // 1_000_000
    return spec, amount


@pytest.mark.spec("ORD-3", "CPN-1", "BAL-5")
def test_coupons_pay_first_then_gift_then_cash_as_previewed(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 500_00)
    add_gift(rt, uin, 20_00)
    voucher = grant(rt, uin, face=50_00)
    ids = buy(rt, uin)
    plan = preview(rt, uin, ids)
    assert plan["totals"] == {"amount": CVM_MEDIUM_MONTH, "coupon": 50_00, "gift": 20_00,
                              "cash": CVM_MEDIUM_MONTH - 70_00, "credit": 0}
    assert plan["coupon_uses"] == [{"coupon_id": voucher, "order_id": ids[0], "amount": 50_00}]
    assert coupon(rt, voucher).remaining == 50_00  # the preview wrote nothing
    result = pay(rt, uin, ids)
    assert {k: result[k] for k in plan["totals"]} == plan["totals"]
    paid = order(rt, uin, ids[0])
    assert (paid["state"], paid["paid_coupon"], paid["paid_gift"]) == ("delivered", 50_00, 20_00)
    view = balance(rt, uin)
    assert (view.gift, view.cash, view.frozen) == (0, 500_00 - (CVM_MEDIUM_MONTH - 70_00), 0)
    assert (coupon(rt, voucher).remaining, coupon(rt, voucher).state) == (0, "used")
    assert uses(rt, ids[0]) == [("confirmed", 50_00)]  # delivered at once: confirmed at once
    # revenue holds the whole price: the customer's part and the platform's coupon money
    assert platform(rt, "revenue", "cn-cloud") == CVM_MEDIUM_MONTH
    assert platform(rt, "coupon_funding", "cn-cloud") == -50_00
    with rt.engine.connect() as conn:
        block = conn.execute(select(statement_entries).where(
            statement_entries.c.uin == uin, statement_entries.c.action_type == "block")).one()
    assert (block.amount, block.coupon_amount) == (-CVM_MEDIUM_MONTH, -50_00)
    assert_reconciled(rt)


@pytest.mark.spec("ORD-3", "CPN-3", "CPN-6")
def test_an_order_coupons_pay_in_full_freezes_nothing_in_a_merged_payment(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 400_00)
    cash_coupon = grant(rt, uin, kind=rules.CASH, face=200_00, products=("cvm",),
                        product_scope=rules.ONLY, threshold=500_00)
    small, large = buy(rt, uin)[0], buy(rt, uin, spec="S5.LARGE8")[0]
    result = pay(rt, uin, [small, large])  # 534.00 together: over the threshold (CPN-6)
    assert result["coupon"] == 200_00 and result["cash"] == CVM_MEDIUM_MONTH + CVM_LARGE_MONTH - 200_00
    by_id = {i: order(rt, uin, i) for i in (small, large)}
    coupon_paid = [i for i, o in by_id.items() if o["paid_coupon"] == o["amount"]]
    assert len(coupon_paid) == 1  # the cash coupon pays one order whole, the other in part
    whole = by_id[coupon_paid[0]]
    assert whole["hold_id"] is None and whole["state"] == "delivered"
    assert (whole["paid_gift"], whole["paid_cash"], whole["paid_credit"]) == (0, 0, 0)
    assert sum(o["paid_coupon"] for o in by_id.values()) == 200_00
    assert (coupon(rt, cash_coupon).remaining, coupon(rt, cash_coupon).state) == (0, "used")
    assert all(o["state"] == "delivered" for o in by_id.values())
    assert balance(rt, uin).cash == 400_00 - result["cash"]
    assert_reconciled(rt)


@pytest.mark.spec("ORD-3", "CPN-3", "CPN-4")
def test_the_customer_picks_coupons_or_none_and_a_promotional_order_takes_none(shop):
    rt = shop
    uin, other = new_account(rt), new_account(rt, name="other")
    add_cash(rt, uin, 1_000_00)
    first = grant(rt, uin, face=30_00)
    second = grant(rt, uin, face=40_00)
    theirs = grant(rt, other, face=40_00)
    ids = buy(rt, uin)
    before = row_counts(rt, ledger_transactions, statement_entries, orders_table, coupon_uses)
    with pytest.raises(NotFound) as err:
        pay(rt, uin, ids, coupon_ids=[theirs])
    assert err.value.field == "coupon_ids" and err.value.message_zh and err.value.message_en
    with pytest.raises(InvalidInput) as err:
        pay(rt, uin, ids, coupon_ids=["1"])
    assert err.value.field == "coupon_ids"
    assert row_counts(rt, ledger_transactions, statement_entries, orders_table,
                      coupon_uses) == before
    assert pay(rt, uin, ids, coupon_ids=[second])["coupon"] == 40_00
    assert coupon(rt, first).remaining == 30_00
    assert pay(rt, uin, buy(rt, uin), key="pay-2", coupon_ids=[])["coupon"] == 0
    assert coupon(rt, first).remaining == 30_00
    promo = buy(rt, uin, promo_term_days=3)
    plan = preview(rt, uin, promo)
    assert plan["totals"]["coupon"] == 0 and plan["coupons_skipped"][first]["code"] == "promo"
    assert pay(rt, uin, promo, key="pay-3")["coupon"] == 0
    assert pay(rt, uin, buy(rt, uin), key="pay-4")["coupon"] == 30_00  # automatic: the rest
    assert_reconciled(rt)


@pytest.mark.spec("FRZ-3", "ORD-3")
def test_manual_delivery_confirms_the_coupon_and_a_failed_one_gives_it_back(shop):
    rt = shop
    uin = new_account(rt)
    spec, amount = ssl_year(rt, uin)
    add_cash(rt, uin, 2 * amount)
    voucher = grant(rt, uin, face=100_00)
    (ok_id,) = buy(rt, uin, spec=spec, months=12, product="ssl", region="mainland")
    (bad_id,) = buy(rt, uin, spec=spec, months=12, product="ssl", region="mainland")
    pay(rt, uin, [ok_id], coupon_ids=[voucher])
    assert order(rt, uin, ok_id)["state"] == "paid" and uses(rt, ok_id) == [("pending", 100_00)]
    assert balance(rt, uin).frozen == amount - 100_00
    assert platform(rt, "revenue", "cn-software") == 0  # nothing posted before delivery
    with rt.engine.begin() as conn:
        orders.deliver(conn, rt.clock, OPS, ok_id)
    assert uses(rt, ok_id) == [("confirmed", 100_00)]
    assert platform(rt, "revenue", "cn-software") == amount
    assert platform(rt, "coupon_funding", "cn-software") == -100_00
    grant(rt, uin, face=amount)  # pays the second certificate whole
    pay(rt, uin, [bad_id], key="pay-2")
    failed = order(rt, uin, bad_id)
    assert failed["hold_id"] is None and failed["paid_coupon"] == amount
    cash_before = balance(rt, uin).cash
    with rt.engine.begin() as conn:
        orders.fail_delivery(conn, rt.clock, OPS, bad_id, "CA refused")
    assert uses(rt, bad_id) == [("released", amount)]
    assert balance(rt, uin).cash == cash_before  # no customer money was frozen
    with rt.engine.connect() as conn:
        left = coupons.list_coupons(conn, rt.clock, SYSTEM, uin)["items"]
    assert sorted(c["remaining"] for c in left) == [0, amount]
    assert_reconciled(rt)


@pytest.mark.spec("ORD-4", "CPN-1")
def test_a_refund_returns_gift_cash_and_cash_coupons_but_not_vouchers(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 200_00)
    add_gift(rt, uin, 56_00)
    cash_coupon = grant(rt, uin, kind=rules.CASH, face=60_00)
    voucher = grant(rt, uin, face=40_00)
    (order_id,) = buy(rt, uin, months=2)  # 356.00: 100 coupons, 56 gift, 200 cash
    result = pay(rt, uin, [order_id])
    assert (result["coupon"], result["gift"], result["cash"]) == (100_00, 56_00, 200_00)
    rt.clock.advance(days=2)  # inside the no-reason window: everything back
    resource_id = order(rt, uin, order_id)["resource_id"]
    with rt.engine.begin() as conn:
        refund_id = orders.refund_resource(conn, rt.clock, SYSTEM, uin, resource_id, key="r1")
    refund = order(rt, uin, refund_id)
    assert (refund["amount"], refund["paid_coupon"]) == (-356_00, -100_00)
    assert (refund["refunded_gift"], refund["refunded_cash"]) == (56_00, 200_00)
    view = balance(rt, uin)
    assert (view.gift, view.cash) == (56_00, 200_00)  # not a fen more: coupons are not cash
    assert (coupon(rt, cash_coupon).remaining, coupon(rt, cash_coupon).state) == (60_00, "unused")
    assert coupon(rt, voucher).remaining == 0  # vouchers are not returned (ORD-4)
    assert platform(rt, "revenue", "cn-cloud") == 40_00  # the voucher's part stays earned
    assert platform(rt, "coupon_funding", "cn-cloud") == -40_00
    assert_reconciled(rt)


@pytest.mark.spec("ORD-4")
def test_prorated_refund_and_downgrade_split_by_what_coupons_gift_and_cash_paid(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 2_000_00)
    cash_coupon = grant(rt, uin, kind=rules.CASH, face=356_00)
    (order_id,) = buy(rt, uin, spec="S5.LARGE8", months=4)  # 1424.00: 356 coupon, 1068 cash
    pay(rt, uin, [order_id])
    placed = order(rt, uin, order_id)
    rt.clock.advance(days=10)  # outside the window
    with rt.engine.begin() as conn:
        down_id = orders.downgrade(conn, rt.clock, SYSTEM, uin, placed["resource_id"],
                                   "S5.MEDIUM4", key="d1")
    down = order(rt, uin, down_id)
    back = -down["amount"]
    assert abs(down["paid_coupon"] * 4 + back) <= 4  # a quarter of the price was the coupon's
    assert down["refunded_cash"] == back + down["paid_coupon"] and down["refunded_gift"] == 0
    assert coupon(rt, cash_coupon).remaining == -down["paid_coupon"]
    period = placed["service_end"] - placed["service_start"]
    rt.clock.advance(seconds=period.total_seconds() / 2)
    with rt.engine.begin() as conn:
        refund_id = orders.refund_resource(conn, rt.clock, SYSTEM, uin, placed["resource_id"],
                                           key="r1")
    refund = order(rt, uin, refund_id)
    assert refund["amount"] < 0 and refund["paid_coupon"] < 0
    # a quarter of what is given back is the coupon's, as a quarter of the price was
    assert abs(refund["paid_coupon"] * 4 - refund["amount"]) <= 4
    assert coupon(rt, cash_coupon).remaining == -down["paid_coupon"] - refund["paid_coupon"]
    assert balance(rt, uin).cash == (2_000_00 - 1068_00 + down["refunded_cash"]
                                     + refund["refunded_cash"])
    assert_reconciled(rt)


def refund_preview(rt, uin, resource_id) -> dict:
    with rt.engine.connect() as conn:
        return orders.preview_refund(conn, rt.clock, SYSTEM, uin, resource_id)


@pytest.mark.spec("ORD-4")
@pytest.mark.parametrize("days, full", [(2, True), (40, False)])
def test_the_refund_preview_is_what_the_refund_then_gives_back(shop, days, full):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 2_000_00)
    add_gift(rt, uin, 56_00)
    grant(rt, uin, kind=rules.CASH, face=60_00)
    grant(rt, uin, face=40_00)  # a voucher: its part is not returned
    (order_id,) = buy(rt, uin, months=3)  # 534.00: 100 coupons, 56 gift, 378 cash
    pay(rt, uin, [order_id])
    resource_id = order(rt, uin, order_id)["resource_id"]
    rt.clock.advance(days=days)
    before = row_counts(rt, ledger_transactions, statement_entries, coupon_uses)
    shown = refund_preview(rt, uin, resource_id)
    assert row_counts(rt, ledger_transactions, statement_entries, coupon_uses) == before
    assert shown["full"] is full and shown["window_days"] == 5
    view = balance(rt, uin)
    with rt.engine.begin() as conn:
        refund_id = orders.refund_resource(conn, rt.clock, SYSTEM, uin, resource_id, key="r1")
    refund = order(rt, uin, refund_id)
    after = balance(rt, uin)
    assert (shown["gift"], shown["cash"]) == (refund["refunded_gift"], refund["refunded_cash"])
    assert (after.gift - view.gift, after.cash - view.cash) == (shown["gift"], shown["cash"])
    assert shown["coupon"] + shown["coupon_kept"] == -refund["paid_coupon"]
    with rt.engine.connect() as conn:
        cash_coupon = coupons.list_coupons(conn, rt.clock, SYSTEM, uin,
                                           coupons.CouponQuery(kind=rules.CASH))["items"][0]
    assert cash_coupon["remaining"] == shown["coupon"] > 0
    if full:
        assert (shown["gift"], shown["cash"], shown["coupon"]) == (56_00, 378_00, 60_00)
    with pytest.raises(Conflict):  # released: no preview either
        refund_preview(rt, uin, resource_id)
