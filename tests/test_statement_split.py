"""收支明细 entries show their split (BAL-5, FRZ-4) and bill lines their quantities in the
item's unit (SET-10), the same on the native REST API, the CLI and the compat actions."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from feecenter.accounts.permissions import SYSTEM
from feecenter.api.app import create_app
from feecenter.funds import service as funds
from feecenter.ledger.tables import ledger_transactions
from feecenter.money import format_yuan
from feecenter.resources import postpaid
from tests.compat_harness import Shop
from tests.helpers import (add_cash, add_gift, api_key, assert_reconciled, load_sample_catalog,
                           new_account)
from tests.rest_harness import HOST, Signed
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
