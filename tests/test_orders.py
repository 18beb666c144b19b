"""Prepaid commerce: orders, payment, freeze, refunds, the arrears gate (issue #3)."""

from datetime import timedelta

import pytest

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM
from feecenter.catalog import service as catalog
from feecenter.errors import AccountInArrears, Conflict, FeeCenterError, InsufficientBalance
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.resources import service as resources
from tests import helpers
from tests.helpers import (OPS, add_cash, add_gift, assert_reconciled, balance,
                           load_sample_catalog, new_account, pay, row_counts)

CVM_MEDIUM_MONTH = 178_00  # sample catalog: S5.MEDIUM4 prepaid, yuan 178.00 a month
CVM_LARGE_MONTH = 356_00
SSL_OV_YEAR = 3960_00  # ssl OV.single: 330.00 a month, sold by the year


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return rt


def buy(rt, uin, *, product="cvm", spec="S5.MEDIUM4", months=1, region="ap-guangzhou", **each):
    return helpers.buy(rt, uin, (product, spec, months, region), **each)


def order(rt, uin, order_id):
    with rt.engine.connect() as conn:
        return orders.get_order(conn, SYSTEM, uin, order_id)


def entries(rt, uin):
    with rt.engine.connect() as conn:
        items = funds.list_transactions(conn, SYSTEM, uin, funds.StatementQuery(limit=100))["items"]
    return list(reversed(items))  # oldest first


def counts(rt):
    return row_counts(rt, ledger_transactions, statement_entries, orders_table)


@pytest.mark.spec("ORD-1", "ORD-3", "BAL-3", "FRZ-3", "FRZ-4", "BAL-5", "ORD-5")
def test_buy_pay_deliver_gift_then_cash(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 500_00)
    add_gift(rt, uin, 50_00)
    (order_id,) = buy(rt, uin, months=2)
    assert order(rt, uin, order_id)["amount"] == 2 * CVM_MEDIUM_MONTH
    result = pay(rt, uin, [order_id])
    assert (result["gift"], result["cash"], result["credit"]) == (50_00, 2 * CVM_MEDIUM_MONTH - 50_00, 0)
    paid = order(rt, uin, order_id)
    assert paid["state"] == "delivered"
    view = balance(rt, uin)
    assert (view.gift, view.cash, view.frozen) == (0, 550_00 - 2 * CVM_MEDIUM_MONTH - 0, 0)
    kinds = [(e["action_type"], e["amount"], e["deduct_mode"]) for e in entries(rt, uin)][2:]
    assert kinds == [("block", -2 * CVM_MEDIUM_MONTH, None),
                     ("deduct", -2 * CVM_MEDIUM_MONTH, "trade")]
    with rt.engine.connect() as conn:
        resource = resources.get_resource(conn, uin, paid["resource_id"])
    assert resource["state"] == "running" and resource["spec_item"] == "S5.MEDIUM4"
    assert resource["period_end"] - resource["period_start"] >= timedelta(days=59)
    assert_reconciled(rt)


@pytest.mark.spec("ORD-3")
def test_merged_payment_of_several_orders(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    first = buy(rt, uin)
    second = buy(rt, uin, spec="S5.LARGE8")
    with rt.engine.connect() as conn:
        plan = orders.preview_payment(conn, rt.clock, SYSTEM, uin, first + second)
    assert plan["totals"]["amount"] == CVM_MEDIUM_MONTH + CVM_LARGE_MONTH
    assert counts(rt)[1] == 1  # the preview wrote nothing
    result = pay(rt, uin, first + second)
    assert result["amount"] == plan["totals"]["amount"] and result["cash"] == plan["totals"]["cash"]
    assert set(result["states"].values()) == {"delivered"}
    blocks = [e for e in entries(rt, uin) if e["action_type"] == "block"]
    assert len(blocks) == 1 and blocks[0]["amount"] == -(CVM_MEDIUM_MONTH + CVM_LARGE_MONTH)
    assert balance(rt, uin).cash == 1_000_00 - CVM_MEDIUM_MONTH - CVM_LARGE_MONTH
    assert_reconciled(rt)


def test_paying_twice_with_one_key_returns_the_first_payment(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    ids = buy(rt, uin)
    first = pay(rt, uin, ids, key="k")
    before = counts(rt)
    again = pay(rt, uin, ids, key="k")
    assert again["payment_id"] == first["payment_id"] and again["created"] is False
    assert counts(rt) == before
    with pytest.raises(Conflict):
        pay(rt, uin, ids, key="another-key")  # already paid


@pytest.mark.spec("FRZ-2", "FRZ-3", "FRZ-4")
def test_manual_delivery_freezes_then_posts_or_releases(shop):
    rt = shop
    uin = new_account(rt)
    with rt.engine.connect() as conn:
        spec = catalog.list_items(conn, "ssl")[0]["code"]
        amount = catalog.quote(conn, uin, "ssl", spec, "mainland", "prepaid", 1_000_000,
                               rt.clock.now(), months=12).amount // 1_000_000
    cash = 2 * amount + 100_00
    add_cash(rt, uin, cash)
    (ok_id,) = buy(rt, uin, product="ssl", spec=spec, months=12, region="mainland")
    (bad_id,) = buy(rt, uin, product="ssl", spec=spec, months=12, region="mainland")
    pay(rt, uin, [ok_id])
    pay(rt, uin, [bad_id])
    assert order(rt, uin, ok_id)["amount"] == amount
    assert order(rt, uin, ok_id)["state"] == "paid"
    view = balance(rt, uin)
    assert (view.cash, view.frozen, view.available) == (cash, 2 * amount, 100_00)
    with pytest.raises(InsufficientBalance):  # frozen money is not spendable (FRZ-2)
        pay(rt, uin, buy(rt, uin, spec="S5.MEDIUM4", months=1))
    with rt.engine.begin() as conn:
        orders.deliver(conn, rt.clock, OPS, ok_id)
        orders.fail_delivery(conn, rt.clock, OPS, bad_id, "证书签发失败 / CA refused")
    view = balance(rt, uin)
    assert (view.frozen, view.cash) == (0, cash - amount)
    assert order(rt, uin, bad_id)["state"] == "delivery_failed"
    kinds = [e["action_type"] for e in entries(rt, uin)]
    assert kinds[-2:] == ["deduct", "unblock"]
    with rt.engine.begin() as conn, pytest.raises(Conflict):
        orders.deliver(conn, rt.clock, OPS, bad_id)
    assert_reconciled(rt)


@pytest.mark.spec("ORD-2")
def test_unpaid_orders_expire(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    (normal,) = buy(rt, uin)
    (promo,) = buy(rt, uin, promo_term_days=1)
    rt.clock.advance(days=2)
    with pytest.raises(Conflict) as err:  # past its term even before the job ran
        pay(rt, uin, [promo])
    assert "expired" in err.value.message_en
    rt.clock.advance(days=13)
    with rt.engine.begin() as conn:
        assert orders.expire_unpaid(conn, rt.clock) == 2
        assert orders.expire_unpaid(conn, rt.clock) == 0
    assert order(rt, uin, normal)["state"] == "expired"
    with pytest.raises(Conflict):
        pay(rt, uin, [normal])
    assert balance(rt, uin).cash == 1_000_00


@pytest.mark.spec("ORD-5")
def test_price_change_mid_term_applies_to_renewals_only(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    (first,) = buy(rt, uin, months=1)
    pay(rt, uin, [first])
    resource_id = order(rt, uin, first)["resource_id"]
    new_prices = catalog.sample_catalog_text().replace(
        '{item: S5.MEDIUM4,   pay_mode: prepaid,  regions: &regions3 [ap-guangzhou, ap-shanghai, ap-beijing], from: 2026-01-01, price: "178.00"}',
        '{item: S5.MEDIUM4,   pay_mode: prepaid,  regions: &regions3 [ap-guangzhou, ap-shanghai, ap-beijing], from: 2026-01-01, until: 2026-03-10, price: "178.00"}\n'
        '      - {item: S5.MEDIUM4,   pay_mode: prepaid,  regions: *regions3, from: 2026-03-10, price: "198.00"}')
    assert new_prices != catalog.sample_catalog_text()
    with rt.engine.begin() as conn:
        catalog.load_catalog(conn, rt.clock, OPS, new_prices, "prices-v2.yaml")
    assert order(rt, uin, first)["amount"] == CVM_MEDIUM_MONTH  # the paid term is untouched
    rt.clock.advance(days=10)
    with rt.engine.begin() as conn:
        renewal = orders.create_renewal(conn, rt.clock, SYSTEM, uin, resource_id, 1)
    assert order(rt, uin, renewal)["amount"] == 198_00
    pay(rt, uin, [renewal])
    renewed = order(rt, uin, renewal)
    assert renewed["service_start"] == order(rt, uin, first)["service_end"]
    assert_reconciled(rt)


@pytest.mark.spec("ORD-4", "BAL-5")
def test_refund_inside_the_no_reason_window_is_full_back_to_cash_and_gift(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 300_00)
    add_gift(rt, uin, 56_00)
    (order_id,) = buy(rt, uin, months=2)  # 356.00: 56.00 gift + 300.00 cash
    pay(rt, uin, [order_id])
    resource_id = order(rt, uin, order_id)["resource_id"]
    rt.clock.advance(days=4)
    with rt.engine.begin() as conn:
        refund_id = orders.refund_resource(conn, rt.clock, SYSTEM, uin, resource_id, key="r1")
    refund = order(rt, uin, refund_id)
    assert refund["amount"] == -356_00 and refund["kind"] == "refund"
    assert (refund["refunded_gift"], refund["refunded_cash"]) == (56_00, 300_00)
    view = balance(rt, uin)
    assert (view.gift, view.cash) == (56_00, 300_00)
    assert entries(rt, uin)[-1]["action_type"] == "return"
    assert entries(rt, uin)[-1]["amount"] == 356_00
    with rt.engine.begin() as conn, pytest.raises(Conflict):
        orders.refund_resource(conn, rt.clock, SYSTEM, uin, resource_id, key="r2")
    with rt.engine.connect() as conn:
        assert resources.get_resource(conn, uin, resource_id)["state"] == "recycled"
    assert_reconciled(rt)


@pytest.mark.spec("ORD-4")
def test_refund_after_the_window_is_prorated_by_unused_time(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 600_00)
    add_gift(rt, uin, 112_00)
    (order_id,) = buy(rt, uin, months=4)  # 712.00: 112 gift + 600 cash
    pay(rt, uin, [order_id])
    placed = order(rt, uin, order_id)
    period = placed["service_end"] - placed["service_start"]
    rt.clock.advance(seconds=period.total_seconds() / 4)  # a quarter used
    with rt.engine.begin() as conn:
        refund_id = orders.refund_resource(conn, rt.clock, SYSTEM, uin, placed["resource_id"],
                                           key="late")
    refund = order(rt, uin, refund_id)
    assert refund["amount"] == -534_00  # three quarters of 712.00
    assert (refund["refunded_gift"], refund["refunded_cash"]) == (84_00, 450_00)
    assert_reconciled(rt)


def _refund(rt, uin, order_id, key):
    """Refund the resource an order bought; the refund order."""
    resource_id = order(rt, uin, order_id)["resource_id"]
    with rt.engine.begin() as conn:
        refund_id = orders.refund_resource(conn, rt.clock, SYSTEM, uin, resource_id, key=key)
    return order(rt, uin, refund_id)


@pytest.mark.spec("ORD-4", "ORD-5")
def test_a_products_own_refund_window_decides_between_full_and_unused_time(shop):
    rt = shop
    sample = catalog.sample_catalog_text()
    ten_days = sample.replace("    class: compute\n", "    class: compute\n    refund_window_days: 10\n")
    assert ten_days.count("refund_window_days: 10") == 1  # cvm only
    with rt.engine.begin() as conn:
        catalog.load_catalog(conn, rt.clock, OPS, ten_days, "ten-days.yaml")
        assert catalog.get_product(conn, "cvm").refund_window_days == 10
        assert catalog.get_product(conn, "cbs").refund_window_days == 5  # the default
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    (inside, outside, last_instant) = (buy(rt, uin)[0] for _ in range(3))
    for order_id in (inside, outside, last_instant):
        pay(rt, uin, [order_id])  # one month: 2 March to 2 April (31 days)
    rt.clock.advance(days=9)  # outside the default 5 days, inside this product's 10
    assert _refund(rt, uin, inside, "day-9")["amount"] == -CVM_MEDIUM_MONTH
    rt.clock.advance(days=1)  # exactly 10 days after the payment: still inside
    assert _refund(rt, uin, last_instant, "day-10")["amount"] == -CVM_MEDIUM_MONTH
    rt.clock.advance(days=1)
    late = _refund(rt, uin, outside, "day-11")  # 20 of 31 days unused: 114.8387… → 114.84
    assert (late["amount"], late["refunded_cash"]) == (-114_84, 114_84)
    assert balance(rt, uin).cash == 1_000_00 - CVM_MEDIUM_MONTH + 114_84
    assert_reconciled(rt)


@pytest.mark.spec("ORD-4")
def test_a_product_without_a_no_reason_window_refunds_only_unused_time(shop):
    rt = shop
    with rt.engine.connect() as conn:
        assert catalog.get_product(conn, "ssl").refund_window_days == 0  # the sample's choice
    uin = new_account(rt)
    add_cash(rt, uin, SSL_OV_YEAR)
    (order_id,) = buy(rt, uin, product="ssl", spec="OV.single", months=12, region="mainland")
    pay(rt, uin, [order_id])
    with rt.engine.begin() as conn:
        orders.deliver(conn, rt.clock, OPS, order_id)
    rt.clock.advance(days=1)
    refund = _refund(rt, uin, order_id, "next-day")
    placed = order(rt, uin, order_id)
    year = placed["service_end"] - placed["service_start"]
    used = round(SSL_OV_YEAR * timedelta(days=1) / year)  # one day of the year
    assert refund["amount"] == -(SSL_OV_YEAR - used) and refund["amount"] != -SSL_OV_YEAR
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1")
def test_upgrade_pays_the_prorated_difference_downgrade_returns_it(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 2_000_00)
    (order_id,) = buy(rt, uin, months=1)
    pay(rt, uin, [order_id])
    resource_id = order(rt, uin, order_id)["resource_id"]
    with rt.engine.begin() as conn, pytest.raises(FeeCenterError) as err:
        orders.create_upgrade(conn, rt.clock, SYSTEM, uin, resource_id, "S5.MEDIUM4")
    assert err.value.field == "spec_item"
    rt.clock.advance(days=15)  # about half of the month left
    with rt.engine.begin() as conn:
        upgrade = orders.create_upgrade(conn, rt.clock, SYSTEM, uin, resource_id, "S5.LARGE8")
    up = order(rt, uin, upgrade)
    remaining = up["service_end"] - up["service_start"]
    expected = round((CVM_LARGE_MONTH - CVM_MEDIUM_MONTH) * remaining.total_seconds()
                     / timedelta(days=30).total_seconds())
    assert abs(up["amount"] - expected) <= 1 and up["kind"] == "upgrade"
    pay(rt, uin, [upgrade])
    with rt.engine.connect() as conn:
        assert resources.get_resource(conn, uin, resource_id)["spec_item"] == "S5.LARGE8"
    cash_before = balance(rt, uin).cash
    with rt.engine.begin() as conn:
        down = orders.downgrade(conn, rt.clock, SYSTEM, uin, resource_id, "S5.MEDIUM4", key="d")
    assert order(rt, uin, down)["amount"] == -up["amount"]
    assert balance(rt, uin).cash == cash_before + up["amount"]
    assert_reconciled(rt)


@pytest.mark.spec("ARR-1", "ARR-2", "ARR-5")
def test_arrears_gate_says_how_much_is_needed(shop):
    rt = shop
    uin = new_account(rt)
    (order_id,) = buy(rt, uin)  # created before the arrears
    with rt.engine.begin() as conn:
        funds.spend(conn, rt.clock, uin, 30_00, key="usage", postpaid=True,
                    revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))
    with pytest.raises(AccountInArrears) as err:
        buy(rt, uin)
    assert err.value.details["arrears"] == "30.00"
    assert err.value.details["needed"] == "130.00"  # arrears + compute's operable balance 100.00
    with pytest.raises(AccountInArrears):
        pay(rt, uin, [order_id])
    add_cash(rt, uin, 80_00, key="repay")  # pays the arrears first (ARR-4), 50.00 left
    assert balance(rt, uin).arrears == 0
    with pytest.raises(AccountInArrears) as err:  # below the operable balance (ARR-2)
        buy(rt, uin)
    assert err.value.details["needed"] == "50.00"
    add_cash(rt, uin, 200_00, key="more")
    pay(rt, uin, [order_id])
    assert order(rt, uin, order_id)["state"] == "delivered"
    assert_reconciled(rt)


@pytest.mark.spec("BAL-7", "BAL-4", "BAL-5")
def test_credit_pays_what_the_balance_cannot(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 100_00)
    (order_id,) = buy(rt, uin)
    with pytest.raises(InsufficientBalance) as err:
        pay(rt, uin, [order_id], key="no-credit")
    assert "78.00" in err.value.message_zh
    with rt.engine.begin() as conn:
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=1_000_00)
    result = pay(rt, uin, [order_id])
    assert (result["cash"], result["credit"]) == (100_00, 78_00)
    view = balance(rt, uin)
    assert (view.cash, view.advances, view.real_credit_balance) == (0, 78_00, 1_000_00 - 78_00)
    assert [e["action_type"] for e in entries(rt, uin)][1:] == ["advanced", "block", "deduct"]
    add_cash(rt, uin, 100_00, key="incoming")  # repays the advance first (ARR-4)
    assert (balance(rt, uin).cash, balance(rt, uin).advances) == (22_00, 0)
    assert_reconciled(rt)


@pytest.mark.spec("SET-7")
def test_orders_carry_the_project_and_its_name_at_the_time(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 2_000_00)
    with rt.engine.begin() as conn:
        web = resources.create_project(conn, rt.clock, SYSTEM, uin, "web")
        data = resources.create_project(conn, rt.clock, SYSTEM, uin, "data")
    (first,) = buy(rt, uin, project_id=web)
    pay(rt, uin, [first])
    resource_id = order(rt, uin, first)["resource_id"]
    with rt.engine.begin() as conn:
        resources.rename_project(conn, rt.clock, SYSTEM, uin, web, "website")
        renewal = orders.create_renewal(conn, rt.clock, SYSTEM, uin, resource_id, 1)
    assert order(rt, uin, first)["project_name"] == "web"
    assert order(rt, uin, renewal)["project_name"] == "website"
    with rt.engine.begin() as conn:
        resources.move_resources(conn, rt.clock, SYSTEM, uin, [resource_id], data)
        moved = orders.create_renewal(conn, rt.clock, SYSTEM, uin, resource_id, 1)
    assert (order(rt, uin, moved)["project_id"], order(rt, uin, moved)["project_name"]) == (data, "data")


@pytest.mark.spec("ACC-1", "ACC-4")
def test_abnormal_real_name_or_restricted_account_cannot_buy(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    (order_id,) = buy(rt, uin)
    with rt.engine.begin() as conn:
        accounts.set_realname(conn, rt.clock, OPS, uin, "abnormal")
    with pytest.raises(FeeCenterError) as err:
        pay(rt, uin, [order_id])
    assert err.value.field == "realname_state"
    with rt.engine.begin() as conn:
        accounts.set_realname(conn, rt.clock, OPS, uin, "personal")
        accounts.set_status(conn, rt.clock, OPS, uin, "restricted")
    with pytest.raises(FeeCenterError) as err:
        buy(rt, uin)
    assert "restricted" in err.value.message_en


@pytest.mark.parametrize("change, field", [
    ({"product": "nope"}, "product"),
    ({"region": "mars-1"}, "region"),
    ({"spec": "S9.HUGE"}, "item"),
    ({"months": 0}, "months"),
    ({"months": -1}, "months"),
    ({"count": 0}, "count"),
])
def test_bad_orders_are_refused_naming_the_field(shop, change, field):
    rt = shop
    uin = new_account(rt)
    before = counts(rt)
    with pytest.raises(FeeCenterError) as err:
        buy(rt, uin, **change)
    assert err.value.field == field and err.value.message_zh and err.value.message_en
    assert counts(rt) == before


def test_cannot_pay_someone_elses_voided_or_unknown_order(shop):
    rt = shop
    owner, stranger = new_account(rt, "owner"), new_account(rt, "stranger")
    add_cash(rt, stranger, 1_000_00)
    (theirs,) = buy(rt, owner)
    before = counts(rt)
    with pytest.raises(FeeCenterError) as err:
        pay(rt, stranger, [theirs])
    assert err.value.field == "order_ids" and err.value.http_status == 404
    (mine,) = buy(rt, stranger)
    with rt.engine.begin() as conn:
        orders.void_order(conn, rt.clock, SYSTEM, stranger, mine)
    with pytest.raises(Conflict):
        pay(rt, stranger, [mine])
    with pytest.raises(FeeCenterError):
        pay(rt, stranger, [987654])
    assert counts(rt)[0] == before[0]  # no ledger transaction written
    assert balance(rt, stranger).cash == 1_000_00


@pytest.mark.spec("ORD-1", "ORD-4")
def test_prorated_and_unused_amounts_are_rounded_once_from_the_exact_value():
    """A downgrade of 107.0323 a month with 1,961,455 s left is -80.994999998… yuan:
    -80.99, as an upgrade by as much is 80.99 (flooring to 1e-8 yuan first pushed the
    negative one past the half fen, to -81.00); a refund's unused share of a negative
    part (an earlier downgrade) is rounded the same way."""
    from datetime import UTC, datetime

    from feecenter.orders import rules

    left = timedelta(seconds=1_961_455)
    assert rules.prorated_change(10_703_230_000, 0, left) == -8_099
    assert rules.prorated_change(0, 10_703_230_000, left) == 8_099
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=31)
    part = rules.PaidPart(-35_794, 0, 0, start, end)
    assert rules.unused_value(part, end - timedelta(seconds=1_848_967)) == -24_709
