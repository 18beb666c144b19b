"""Consumption bills (消耗账单, BIL-4) against real orders and settled bill lines, on
SQLite and PostgreSQL: prepaid fees spread over their service days, postpaid fees
by usage time equal to the cost bill on the usage-time statistic period (late
adjustments included), negative refunds and downgrades (BIL-5), the REST route."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from feecenter.accounts.permissions import SYSTEM, Actor
from feecenter.api.app import create_app
from feecenter.bills import consumption
from feecenter.clock import BUSINESS_TZ, business_time_text
from feecenter.errors import FeeCenterError, PermissionDenied
from feecenter.orders import service as orders
from feecenter.settlement import rules as settlement_rules
from feecenter.settlement.tables import bill_lines
from tests.helpers import (OPS, add_cash, api_key, assert_reconciled, buy, load_sample_catalog,
                           new_account, pay)
from tests.rest_harness import Signed
from tests.test_bills_statistics import both, settle_hour
from tests.test_settlement import ingest

CVM_MEDIUM_MONTH = 178_00  # sample catalog: S5.MEDIUM4 prepaid, 178.00 a month
BOUGHT = datetime(2026, 3, 2, 10, tzinfo=BUSINESS_TZ)
MONTHS = ("2026-02", "2026-03", "2026-04", "2026-05", "2026-06", "2026-07")


def bill(rt, uin, month, actor=OPS) -> dict:
    with rt.engine.connect() as conn:
        return consumption.consumption_bill(conn, actor, uin, month)


def prepaid_by_month(rt, uin) -> dict[str, int]:
    return {month: bill(rt, uin, month)["prepaid_total"] for month in MONTHS}


def three_months_of_cvm(rt, spec="S5.MEDIUM4") -> tuple[int, dict]:
    """A customer who bought and paid three months of a CVM at BOUGHT; its order."""
    rt.clock.set(BOUGHT)
    load_sample_catalog(rt)
    uin = new_account(rt, "consumer")
    add_cash(rt, uin, 5_000_00)
    (order_id,) = buy(rt, uin, ("cvm", spec, 3, "ap-guangzhou"))
    pay(rt, uin, [order_id])
    return uin, get_order(rt, uin, order_id)


def get_order(rt, uin, order_id) -> dict:
    with rt.engine.connect() as conn:
        return orders.get_order(conn, SYSTEM, uin, order_id)


@pytest.mark.spec("BIL-4")
def test_a_prepaid_fee_spreads_over_its_service_days_not_its_deduction_month(rt):
    uin, order = three_months_of_cvm(rt)
    assert order["amount"] == 3 * CVM_MEDIUM_MONTH == 534_00
    # served from 10:00 on 2 March to 10:00 on 2 June: 93 business days (the first and
    # the last partly); 53400 = 93 x 574 + 18, so the first 18 days get 575
    assert business_time_text(order["service_end"]) == "2026-06-02 10:00:00"
    expected = {"2026-02": 0, "2026-03": 18 * 575 + 12 * 574, "2026-04": 30 * 574,
                "2026-05": 31 * 574, "2026-06": 2 * 574, "2026-07": 0}
    assert prepaid_by_month(rt, uin) == expected
    # the cost bill puts the fee wholly in its deduction month, March: no line-by-line
    # match month by month, but over the service period both total the fee
    cost_bill = {month: order["amount"] if business_time_text(order["paid_at"])[:7] == month
                 else 0 for month in MONTHS}
    assert cost_bill["2026-03"] == 534_00
    assert all(expected[m] != cost_bill[m] for m in ("2026-03", "2026-04", "2026-05", "2026-06"))
    assert sum(expected.values()) == sum(cost_bill.values()) == order["amount"]
    march = bill(rt, uin, "2026-03")
    assert march["by_product"] == [{
        "product": "cvm", "prepaid": 17238, "postpaid": 0, "total": 17238,
        "resources": [{"resource_id": order["resource_id"], "prepaid": 17238, "postpaid": 0,
                       "total": 17238}]}]
    assert (march["prepaid_total"], march["postpaid_total"], march["total"]) == (17238, 0, 17238)
    assert_reconciled(rt, uin)


def _cost_bill_on_usage_time(rt, uin, switched_in: str) -> dict[str, int]:
    """The cost bill's postpaid total per month for an account on the usage-time period
    since ``switched_in``: each L3 line in the month settlement's BIL-3 rule gives it."""
    totals: dict[str, int] = {}
    with rt.engine.connect() as conn:
        for line in conn.execute(select(bill_lines).where(bill_lines.c.uin == uin)).mappings():
            month = settlement_rules.statistic_month(
                business_time_text(line["deducted_at"])[:7],
                business_time_text(line["period_start"])[:7], switched_in)
            totals[month] = totals.get(month, 0) + line["deducted"]
    return totals


@pytest.mark.spec("BIL-4")
def test_on_the_usage_time_period_a_months_postpaid_total_is_the_cost_bills(rt):
    last_hour = datetime(2026, 1, 31, 23, tzinfo=BUSINESS_TZ)
    shop = both(rt, last_hour - timedelta(hours=1))
    settle_hour(shop, last_hour - timedelta(hours=1), [("h22", "S5.MEDIUM4", "1")])
    # January's last hour is deducted at 00:05 on 1 February; the same run finds late
    # usage of the hour before (metered after its settlement): an adjustment line
    rt.clock.set(last_hour + timedelta(hours=1, minutes=4))
    ingest(rt, [("h22-late", shop.uin, shop.vm, "traffic", "1", last_hour - timedelta(hours=1),
                 last_hour)])
    settle_hour(shop, last_hour, [("h23", "S5.MEDIUM4", "1")])
    settle_hour(shop, last_hour + timedelta(hours=1), [("h00", "S5.MEDIUM4", "1")])
    with rt.engine.connect() as conn:
        lines = [dict(r) for r in conn.execute(select(bill_lines).where(
            bill_lines.c.uin == shop.uin)).mappings()]
    [late] = [line for line in lines if line["kind"] == "adjustment"]
    assert business_time_text(late["period_start"]) == "2026-01-31 22:00:00"
    assert business_time_text(late["deducted_at"])[:7] == "2026-02" and late["deducted"] > 0

    cost = _cost_bill_on_usage_time(rt, shop.uin, switched_in="2026-01")
    january, february = bill(rt, shop.uin, "2026-01"), bill(rt, shop.uin, "2026-02")
    assert january["postpaid_total"] == cost["2026-01"] == sum(
        line["deducted"] for line in lines
        if business_time_text(line["period_start"])[:7] == "2026-01")
    assert february["postpaid_total"] == cost["2026-02"] > 0
    assert january["prepaid_total"] == february["prepaid_total"] == 0
    # January's lines (two hours and the late adjustment) are of one resource
    [cvm] = january["by_product"]
    assert [r["resource_id"] for r in cvm["resources"]] == [shop.vm]
    assert cvm["postpaid"] == cvm["total"] == january["postpaid_total"]
    # on the default deduction-time period the months differ: not a line-by-line match
    by_deduction = _cost_bill_on_usage_time(rt, shop.uin, switched_in=None)
    assert by_deduction["2026-01"] != january["postpaid_total"]
    assert_reconciled(rt, shop.uin)


def _month_sums_equal_the_orders(rt, uin, resource_id) -> None:
    """Over every month the resource's orders serve, their spread shares add up to
    the orders' amounts (the negative ones included)."""
    with rt.engine.connect() as conn:
        page = orders.list_orders(conn, SYSTEM, uin, orders.OrderQuery(resource_id=resource_id))
    amounts = [o["amount"] for o in page["items"]]
    assert len(amounts) == 2 and min(amounts) < 0
    assert sum(prepaid_by_month(rt, uin).values()) == sum(amounts)


@pytest.mark.spec("BIL-4", "BIL-5")
def test_a_refund_takes_back_the_days_it_returns(rt):
    uin, order = three_months_of_cvm(rt)
    rt.clock.set(BOUGHT + timedelta(days=10))  # past the 5-day no-reason window
    with rt.engine.begin() as conn:
        refund_id = orders.refund_resource(conn, rt.clock, SYSTEM, uin, order["resource_id"],
                                           key="refund")
    refund = get_order(rt, uin, refund_id)
    assert refund["amount"] < 0 and refund["state"] == "refunded"
    assert get_order(rt, uin, order["id"])["state"] == "refunded"
    months = prepaid_by_month(rt, uin)
    # March keeps the ten days used (574 or 575 fen a day) and a part-day; the months
    # after give back (about) what they consumed: at most a fen a day is left
    assert 10 * 574 <= months["2026-03"] <= 11 * 575
    assert 0 <= months["2026-04"] <= 30 and 0 <= months["2026-05"] <= 31
    [cvm] = bill(rt, uin, "2026-04")["by_product"]
    assert cvm["resources"][0]["resource_id"] == order["resource_id"]
    assert sum(months.values()) == order["amount"] + refund["amount"]
    _month_sums_equal_the_orders(rt, uin, order["resource_id"])
    assert_reconciled(rt, uin)


@pytest.mark.spec("BIL-4", "BIL-5")
def test_a_full_refund_leaves_the_returned_days_negative(rt):
    uin, order = three_months_of_cvm(rt)
    rt.clock.set(BOUGHT + timedelta(days=2))  # inside the 5-day no-reason window: all back
    with rt.engine.begin() as conn:
        refund_id = orders.refund_resource(conn, rt.clock, SYSTEM, uin, order["resource_id"],
                                           key="full")
    refund = get_order(rt, uin, refund_id)
    assert refund["amount"] == -order["amount"]
    months = prepaid_by_month(rt, uin)
    # 2 and 3 March (used) stay positive; the 91 days from 4 March take back 534.00,
    # 586 or 587 fen a day, against the 574 or 575 the order spreads on them
    assert months["2026-04"] < 0 and months["2026-05"] < 0 and months["2026-06"] < 0
    [cvm] = bill(rt, uin, "2026-04")["by_product"]
    assert cvm["prepaid"] == cvm["resources"][0]["prepaid"] == months["2026-04"]
    assert sum(months.values()) == 0
    assert_reconciled(rt, uin)


@pytest.mark.spec("BIL-4", "BIL-5")
def test_a_downgrade_is_negative_over_the_rest_of_the_term(rt):
    uin, order = three_months_of_cvm(rt, spec="S5.LARGE8")
    before = prepaid_by_month(rt, uin)
    rt.clock.set(BOUGHT + timedelta(days=31))  # in April
    with rt.engine.begin() as conn:
        down_id = orders.downgrade(conn, rt.clock, SYSTEM, uin, order["resource_id"],
                                   "S5.MEDIUM4", key="down")
    down = get_order(rt, uin, down_id)
    assert down["amount"] < 0 and down["kind"] == "downgrade"
    after = prepaid_by_month(rt, uin)
    assert after["2026-03"] == before["2026-03"]  # the days before it are unchanged
    assert after["2026-05"] < before["2026-05"] and after["2026-06"] < before["2026-06"]
    assert sum(after.values()) == order["amount"] + down["amount"]
    _month_sums_equal_the_orders(rt, uin, order["resource_id"])
    assert_reconciled(rt, uin)


@pytest.mark.spec("BIL-4")
def test_a_bad_month_or_another_accounts_bill_is_refused(rt):
    uin, _ = three_months_of_cvm(rt)
    for month in ("2026-13", "2026-1", "26-03", "２０２６-03", "0999-01", ""):
        with pytest.raises(FeeCenterError) as err:
            bill(rt, uin, month)
        assert err.value.field == "month"
    with pytest.raises(FeeCenterError) as err:
        bill(rt, 987_654_321, "2026-03")
    assert err.value.field == "uin"
    other = new_account(rt, "other")
    readonly = Actor(kind="user", name="ro", uin=uin, user_id=None, role="readonly")
    for actor in (Actor(kind="user", name="o", uin=other, role="owner"), readonly):
        with pytest.raises(PermissionDenied):
            bill(rt, uin, "2026-03", actor=actor)


@pytest.mark.spec("BIL-4")
def test_rest_renders_the_bill_in_yuan_and_names_a_bad_month(rt):
    uin, order = three_months_of_cvm(rt)
    http = Signed(rt, TestClient(create_app(rt)), api_key(rt, uin))
    answer = http.send("GET", f"/api/v1/accounts/{uin}/consumption-bills/2026-04")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["month"], body["prepaid_total"], body["postpaid_total"], body["total"]) == (
        "2026-04", "172.20", "0.00", "172.20")  # 30 days x 5.74
    assert body["by_product"][0]["resources"] == [
        {"resource_id": order["resource_id"], "prepaid": "172.20", "postpaid": "0.00",
         "total": "172.20"}]
    note = body["why_not_line_by_line"]  # the console's explanation, Chinese first
    assert "无法逐行对账" in note["zh"] and "do not reconcile line by line" in note["en"]
    bad = http.send("GET", f"/api/v1/accounts/{uin}/consumption-bills/2026-00")
    assert bad.status_code == 400, bad.text
    error = bad.json()["error"]
    assert error["field"] == "month" and error["message_zh"] and error["message_en"]
    other = new_account(rt, "other")
    refused = http.send("GET", f"/api/v1/accounts/{other}/consumption-bills/2026-04")
    assert refused.status_code == 403, refused.text


@pytest.mark.spec("BIL-4")
def test_docs_quote_the_explanation_the_answers_carry():
    text = (Path(__file__).resolve().parent.parent / "docs" / "bills.md").read_text()
    quote = [line[2:] for line in text.splitlines() if line.startswith("> ")]
    zh = "".join(line for line in quote if not line.isascii())
    en = " ".join(line for line in quote if line.isascii())
    assert zh == consumption.WHY_NOT_LINE_BY_LINE["zh"]
    assert en == consumption.WHY_NOT_LINE_BY_LINE["en"]
