"""收支明细 entries show their split (BAL-5, FRZ-4) and bill lines their quantities in the
item's unit (SET-10), the same on the native REST API, the CLI and the compat actions."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from feecenter.accounts.permissions import SYSTEM
from feecenter.api.app import create_app
from feecenter.coupons import rules
from feecenter.funds import service as funds
from feecenter.ledger.tables import ledger_transactions
from feecenter.money import format_yuan
from feecenter.orders import service as orders
from feecenter.orders.rules import order_no
from feecenter.resources import postpaid
from tests.compat_harness import Shop
from tests.helpers import (OPS, add_cash, add_gift, api_key, assert_reconciled,
                           load_sample_catalog, new_account)
from tests.rest_harness import HOST, Signed
from tests.test_orders_coupons import CVM_MEDIUM_MONTH, buy, grant, order, pay, ssl_year
from tests.test_settlement import open_, settle
from tests.test_settlement_packages import DAY1, DAY2, buy_package, grant_voucher, use

SPLIT = ("amount", "cash_amount", "gift_amount", "credit_amount", "coupon_amount")


@pytest.fixture
def story(rt):
    """A cos bucket settled two days: DAY1 0.59 paid by a 0.50 voucher, 0.05 of gift and
    0.04 of cash; DAY2 0.59 paid wholly by a 1.00 voucher. Then 5.00 of gift, and a cdb
    opened (20.00 frozen: the gift, then 15.00 of cash) and released at once."""
    load_sample_catalog(rt)
    uin = new_account(rt)
    add_cash(rt, uin, 100_00)
    add_gift(rt, uin, 5)
    bucket = open_(rt, uin, product="cos", spec="storage_std")
    grant_voucher(rt, uin, 50)
    use(rt, uin, bucket, "storage_std", 150, DAY1)
    settle(rt, "day", DAY1)
    grant_voucher(rt, uin, 100)
    use(rt, uin, bucket, "storage_std", 150, DAY2)
    settle(rt, "day", DAY2)
    add_gift(rt, uin, 5_00)
    with rt.engine.begin() as conn:
        database = postpaid.open_postpaid(conn, rt.clock, SYSTEM, uin, product="cdb",
                                          region="ap-guangzhou", spec_item="MYSQL.2C4G")
        postpaid.release_postpaid(conn, rt.clock, SYSTEM, uin, database)
    return rt, uin


def entries(rt, uin, *types) -> list[dict]:
    """The account's entries of these types, oldest first."""
    with rt.engine.connect() as conn:
        page = funds.list_transactions(conn, SYSTEM, uin, funds.StatementQuery(
            action_types=types, limit=100))
    return page["items"][::-1]


def split(entry: dict) -> tuple[int, ...]:
    return tuple(entry[name] for name in SPLIT)


@pytest.mark.spec("BAL-5", "SET-6")
def test_a_settlement_deduction_shows_what_the_coupon_the_gift_and_the_cash_paid(story):
    rt, uin = story
    first = entries(rt, uin, "deduct")[0]
    assert split(first) == (-59, -4, -5, 0, -50)
    assert (first["product_code"], first["billing_item"], first["deduct_mode"]) == (
        "cos", "storage_std", "hour_d")
    assert_reconciled(rt, uin)


@pytest.mark.spec("BAL-5", "SET-6")
def test_a_charge_coupons_pay_in_full_has_its_entry_on_the_coupon_payment(story):
    rt, uin = story
    first, second = entries(rt, uin, "deduct")
    assert split(second) == (-59, 0, 0, 0, -59)
    assert second["product_code"] == "cos"
    assert second["balance_after"] == first["balance_after"]  # no money of the account moved
    with rt.engine.connect() as conn:
        kind = conn.execute(select(ledger_transactions.c.kind).where(
            ledger_transactions.c.id == second["txn_id"])).scalar_one()
    assert kind == "coupon_pay"
    settle(rt, "day", DAY2)  # a rerun writes no second entry
    assert len(entries(rt, uin, "deduct")) == 2
    assert_reconciled(rt, uin)


@pytest.mark.spec("BAL-5", "FRZ-4")
def test_releasing_a_freeze_shows_the_cash_and_gift_it_returns(story):
    rt, uin = story
    [block] = entries(rt, uin, "block")
    [unblock] = entries(rt, uin, "unblock")
    assert split(block) == (-20_00, -15_00, -5_00, 0, 0)
    assert split(unblock) == (20_00, 15_00, 5_00, 0, 0)
    assert (unblock["frozen_after"], unblock["balance_after"]) == (0, block["balance_after"]
                                                                     + 20_00)
    assert_reconciled(rt, uin)


@pytest.mark.spec("BAL-5", "FRZ-3", "FRZ-4")
def test_posting_a_freeze_shows_the_cash_and_gift_it_takes(rt):
    load_sample_catalog(rt)
    uin = new_account(rt)
    add_cash(rt, uin, 100_00)
    add_gift(rt, uin, 10_00)
    with rt.engine.begin() as conn:
        hold = funds.freeze(conn, rt.clock, uin, 40_00, key="manual")
        funds.deduct_frozen(conn, rt.clock, uin, hold,
                            revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))
    buy_package(rt, uin, "std-100GB")  # paid and delivered at once (the payment fast path)
    manual, package = entries(rt, uin, "deduct")
    assert split(manual) == (-40_00, -30_00, -10_00, 0, 0)
    [_, package_block] = entries(rt, uin, "block")
    assert package["amount"] == package_block["amount"] < 0
    assert split(package) == (package["amount"], package["amount"], 0, 0, 0)
    assert_reconciled(rt, uin)


def compat(rt, uin) -> Shop:
    return Shop(rt=rt, uin=uin, key=api_key(rt, uin), client=TestClient(create_app(rt)),
                now=rt.clock.now(), orders=[], vouchers=[], resources=[])


def rest(rt, uin) -> Signed:
    return Signed(rt, TestClient(create_app(rt), base_url=f"http://{HOST}"), api_key(rt, uin))


@pytest.mark.spec("BAL-5", "FRZ-4")
def test_rest_cli_and_describe_bill_list_show_the_same_split(story, cli):
    rt, uin = story
    answer = rest(rt, uin).send("GET", f"/api/v1/accounts/{uin}/transactions",
                                query={"limit": 100})
    assert answer.status_code == 200, answer.text
    native = answer.json()["items"]
    _, listed = cli.json("transactions", "--uin", uin, "--limit", 100)
    assert listed["items"] == native
    by_type = {e["action_type"]: e for e in native}  # newest first: the oldest stays
    assert [by_type["deduct"][n] for n in SPLIT] == ["-0.59", "-0.04", "-0.05", "0.00", "-0.50"]
    assert [by_type["unblock"][n] for n in SPLIT] == ["20.00", "15.00", "5.00", "0.00", "0.00"]
    shown = compat(rt, uin).call("DescribeBillList", {
        "StartTime": "2026-01-01 00:00:00", "EndTime": "2026-06-30 00:00:00", "Limit": 100})
    assert shown["Total"] == len(native)
    fields = ("Amount", "CashAmount", "IncentiveAmount", "CreditAmount", "VoucherAmount")
    assert [[format_yuan(t[f]) for f in fields] for t in shown["TransactionList"]] == [
        [e[n] for n in SPLIT] for e in native]
    assert shown["DeductAmount"] == -118 and shown["UnblockAmount"] == 20_00


@pytest.mark.spec("SET-10", "BIL-1")
def test_package_quantities_are_in_the_items_unit_on_rest_cli_and_compat(rt, cli):
    load_sample_catalog(rt)
    uin = new_account(rt)
    add_cash(rt, uin, 100_00)
    bucket = open_(rt, uin, product="cos", spec="storage_std")
    buy_package(rt, uin, "std-100GB")
    use(rt, uin, bucket, "storage_std", 150, DAY1)
    settle(rt, "day", DAY1)
    answer = rest(rt, uin).send("GET", f"/api/v1/accounts/{uin}/bill-lines")
    assert answer.status_code == 200, answer.text
    [line] = answer.json()["items"]
    assert (line["quantity"], line["package_quantity"]) == ("150.000000", "100.000000")
    _, listed = cli.json("bills", "lines", "--uin", uin)
    assert listed["items"] == [line]
    rt.clock.advance(minutes=1)
    detail = compat(rt, uin).call("DescribeBillDetail", {"Month": "2026-03", "Limit": 100})
    [component] = [c for d in detail["DetailSet"] for c in d["ComponentSet"]]
    assert (component["RealTotalMeasure"], component["DeductedMeasure"],
            component["UsedAmount"], component["UsedAmountUnit"]) == ("150", "100", "50", "GB")
    assert_reconciled(rt, uin)



@pytest.mark.spec("BAL-5", "SET-6", "BIL-1")
def test_a_coupon_paid_lines_bill_id_names_the_coupon_payments_entry(story):
    rt, uin = story
    first, second = entries(rt, uin, "deduct")
    rt.clock.advance(minutes=1)
    shop = compat(rt, uin)
    detail = shop.call("DescribeBillDetail", {"Month": "2026-03", "Limit": 100})["DetailSet"]
    listed = shop.call("DescribeBillList", {
        "StartTime": "2026-01-01 00:00:00", "EndTime": "2026-06-30 00:00:00", "Limit": 100,
        "PayType": ["deduct"]})["TransactionList"]
    bill_id = {t["BillId"][14:]: t["BillId"] for t in listed}  # by transaction id
    assert len(detail) == 2 and all(d["BillId"] for d in detail)
    assert [d["BillId"] for d in detail] == [bill_id[f"{first['txn_id']:018d}"],
                                             bill_id[f"{second['txn_id']:018d}"]]
    [component] = detail[1]["ComponentSet"]
    assert (component["VoucherPayAmount"], component["CashPayAmount"]) == ("0.59", "0.00")


# ---------------------------------------------------------------- prepaid orders and coupons

def same_on_rest_cli_and_compat(rt, cli, uin) -> list[dict]:
    """The account's entries (newest first) as REST gives them, after checking that the
    CLI's --json gives the same and DescribeBillList the same split and BillIds."""
    answer = rest(rt, uin).send("GET", f"/api/v1/accounts/{uin}/transactions",
                                query={"limit": 100})
    assert answer.status_code == 200, answer.text
    native = answer.json()["items"]
    _, listed = cli.json("transactions", "--uin", uin, "--limit", 100)
    assert listed["items"] == native
    shown = compat(rt, uin).call("DescribeBillList", {
        "StartTime": "2026-01-01 00:00:00", "EndTime": "2026-06-30 00:00:00", "Limit": 100})
    fields = ("ActionType", "Amount", "CashAmount", "IncentiveAmount", "CreditAmount",
              "VoucherAmount")
    assert [[t[fields[0]], *(format_yuan(t[f]) for f in fields[1:])]
            for t in shown["TransactionList"]] == [
        [e["action_type"], *(e[n] for n in SPLIT)] for e in native]
    assert [int(t["BillId"][14:]) for t in shown["TransactionList"]] == [
        e["txn_id"] for e in native]
    return native


def txn_kind(rt, txn_id) -> str:
    with rt.engine.connect() as conn:
        return conn.execute(select(ledger_transactions.c.kind).where(
            ledger_transactions.c.id == txn_id)).scalar_one()


@pytest.mark.spec("BAL-5", "ORD-3")
def test_an_order_a_coupon_pays_in_full_has_one_entry_on_rest_cli_and_compat(rt, cli):
    load_sample_catalog(rt)
    uin = new_account(rt)
    add_cash(rt, uin, 10_00)
    grant(rt, uin, face=CVM_MEDIUM_MONTH)
    (order_id,) = buy(rt, uin)
    before = entries(rt, uin)
    assert pay(rt, uin, [order_id])["coupon"] == CVM_MEDIUM_MONTH
    [entry] = entries(rt, uin)[len(before):]
    assert split(entry) == (-CVM_MEDIUM_MONTH, 0, 0, 0, -CVM_MEDIUM_MONTH)
    placed = order(rt, uin, order_id)
    assert (entry["action_type"], entry["deduct_mode"], entry["product_code"],
            entry["order_id"]) == ("deduct", "trade", "cvm",
                                   order_no(order_id, placed["created_at"]))
    assert txn_kind(rt, entry["txn_id"]) == "coupon_pay"
    assert (entry["balance_after"], entry["cash_after"]) == (10_00, 10_00)  # no money moved
    [shown, _] = same_on_rest_cli_and_compat(rt, cli, uin)
    assert [shown[n] for n in SPLIT] == [format_yuan(-CVM_MEDIUM_MONTH), "0.00", "0.00", "0.00",
                                         format_yuan(-CVM_MEDIUM_MONTH)]
    assert_reconciled(rt, uin)


@pytest.mark.spec("BAL-5", "ORD-3", "CPN-6")
def test_a_merged_payment_shows_every_coupon_fen_once(rt, cli):
    """One order a cash coupon pays whole, one it pays in part: the block entry shows the
    partly paid order's coupon share, the other order has its own entry."""
    load_sample_catalog(rt)
    uin = new_account(rt)
    add_cash(rt, uin, 400_00)
    grant(rt, uin, kind=rules.CASH, face=200_00, products=("cvm",), product_scope=rules.ONLY,
          threshold=500_00)
    small, large = buy(rt, uin)[0], buy(rt, uin, spec="S5.LARGE8")[0]
    result = pay(rt, uin, [small, large])
    by_id = {i: order(rt, uin, i) for i in (small, large)}
    [whole] = [o for o in by_id.values() if o["paid_coupon"] == o["amount"]]
    [part] = [o for o in by_id.values() if o is not whole]
    assert 0 < part["paid_coupon"] < part["amount"]
    [block] = entries(rt, uin, "block")
    assert split(block) == (-part["amount"], -part["paid_cash"], 0, 0, -part["paid_coupon"])
    deducts = {e["order_id"]: e for e in entries(rt, uin, "deduct")}
    coupon_only = deducts[order_no(whole["id"], whole["created_at"])]
    assert split(coupon_only) == (-whole["amount"], 0, 0, 0, -whole["amount"])
    posted = deducts[order_no(part["id"], part["created_at"])]
    assert split(posted) == (-part["paid_cash"], -part["paid_cash"], 0, 0, 0)
    assert sum(e["coupon_amount"] for e in entries(rt, uin)) == -result["coupon"]
    same_on_rest_cli_and_compat(rt, cli, uin)
    assert_reconciled(rt, uin)


@pytest.mark.spec("BAL-5", "FRZ-3")
def test_a_coupon_paid_order_delivered_by_hand_has_its_entry_at_delivery(rt):
    load_sample_catalog(rt)
    uin = new_account(rt)
    spec, amount = ssl_year(rt, uin)
    grant(rt, uin, face=amount)
    grant(rt, uin, face=amount)
    (ok_id,) = buy(rt, uin, spec=spec, months=12, product="ssl", region="mainland")
    (bad_id,) = buy(rt, uin, spec=spec, months=12, product="ssl", region="mainland")
    before = len(entries(rt, uin))
    pay(rt, uin, [ok_id])
    pay(rt, uin, [bad_id], key="pay-2")
    assert len(entries(rt, uin)) == before  # nothing moved yet: the coupons are pending
    with rt.engine.begin() as conn:
        orders.deliver(conn, rt.clock, OPS, ok_id)
        orders.fail_delivery(conn, rt.clock, OPS, bad_id, "CA refused")
    [entry] = entries(rt, uin)[before:]  # the failed one released its coupon: no entry
    assert split(entry) == (-amount, 0, 0, 0, -amount)
    assert (entry["action_type"], entry["product_code"]) == ("deduct", "ssl")
    assert txn_kind(rt, entry["txn_id"]) == "coupon_pay"
    assert_reconciled(rt, uin)


@pytest.mark.spec("BAL-5", "ORD-4")
def test_a_refund_shows_what_went_back_to_gift_cash_and_cash_coupons(rt, cli):
    load_sample_catalog(rt)
    uin = new_account(rt)
    add_cash(rt, uin, 200_00)
    add_gift(rt, uin, 56_00)
    grant(rt, uin, kind=rules.CASH, face=60_00)
    grant(rt, uin, face=40_00)
    (mixed,) = buy(rt, uin, months=2)  # 356.00: 100 coupons (60 cash), 56 gift, 200 cash
    pay(rt, uin, [mixed])
    grant(rt, uin, kind=rules.CASH, face=CVM_MEDIUM_MONTH)
    (coupon_only,) = buy(rt, uin)
    pay(rt, uin, [coupon_only], key="pay-2")
    rt.clock.advance(days=2)  # inside the no-reason window: everything back
    before = len(entries(rt, uin))
    refunds = []
    for n, order_id in enumerate((mixed, coupon_only)):
        resource_id = order(rt, uin, order_id)["resource_id"]
        with rt.engine.begin() as conn:
            refunds.append(orders.refund_resource(conn, rt.clock, SYSTEM, uin, resource_id,
                                                  key=f"r{n}"))
    back, alone = entries(rt, uin)[before:]
    assert back["action_type"] == alone["action_type"] == "return"
    assert split(back) == (56_00 + 200_00 + 60_00, 200_00, 56_00, 0, 60_00)  # not the voucher
    assert txn_kind(rt, back["txn_id"]) == "return"
    assert split(alone) == (CVM_MEDIUM_MONTH, 0, 0, 0, CVM_MEDIUM_MONTH)
    assert txn_kind(rt, alone["txn_id"]) == "coupon_return"
    assert alone["balance_after"] == back["balance_after"]  # no money of the customer moved
    refund = order(rt, uin, refunds[1])
    assert alone["order_id"] == order_no(refund["id"], refund["created_at"])
    same_on_rest_cli_and_compat(rt, cli, uin)
    assert_reconciled(rt, uin)
