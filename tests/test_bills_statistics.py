"""Bills through both APIs: one statistic period (BIL-3) and lines at contract or
fixed prices (BIL-6), the native REST API and the Tencent-compatible endpoint
side by side on the same signed app and the test's clock."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.auth import tc3
from feecenter.catalog import service as catalog
from feecenter.clock import BUSINESS_TZ
from feecenter.compat.endpoint import VERSION
from feecenter.periods import HOURLY, period_containing
from feecenter.settlement import service as settlement
from tests.helpers import OPS, add_cash, api_key, assert_reconciled, new_account
from tests.rest_harness import Signed
from tests.test_settlement import ingest, load, open_

LAST_HOUR = datetime(2026, 1, 31, 23, tzinfo=BUSINESS_TZ)  # January's last hour


@dataclass
class Both:
    rt: object
    uin: int
    vm: str
    rest: Signed
    key: object

    def lines(self, month: str) -> dict:
        answer = self.rest.send("GET", f"/api/v1/accounts/{self.uin}/bill-lines?month={month}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def detail(self, **params) -> dict:
        """DescribeBillDetail, signed as the official SDK signs (TC3, service billing)."""
        data = json.dumps({"Offset": 0, "Limit": 100, **params}).encode()
        headers = tc3.sign(self.key.secret_id, self.key.secret_key, method="POST",
                           host="testserver", path="/", query="", body=data,
                           content_type="application/json",
                           timestamp=int(self.rt.clock.advance(seconds=1).timestamp()),
                           service="billing")
        headers.update({"X-TC-Action": "DescribeBillDetail", "X-TC-Version": VERSION})
        answer = self.rest.http.post("/", content=data, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.json()["Response"]


def both(rt, start: datetime) -> Both:
    """A customer with cash and an hourly postpaid CVM, created at ``start``."""
    rt.clock.set(start)
    load(rt)
    uin = new_account(rt, "bills-co")
    add_cash(rt, uin, 100_00)
    vm = open_(rt, uin, name="bill-vm")
    key = api_key(rt, uin)
    return Both(rt, uin, vm, Signed(rt, TestClient(create_app(rt)), key), key)


def settle_hour(shop: Both, start: datetime, rows: list[tuple[str, str, str]]) -> None:
    """Ingest (event, item, quantity) usage of the hour from ``start`` and settle it
    five minutes after the hour (SET-4)."""
    hour = period_containing(HOURLY, start)
    shop.rt.clock.set(hour.end + timedelta(minutes=5))
    ingest(shop.rt, [(event, shop.uin, shop.vm, item, quantity, hour.start, hour.end)
                     for event, item, quantity in rows])
    settlement.settle_period(shop.rt.engine, shop.rt.clock, "hour", hour)


@pytest.mark.spec("BIL-3", "SET-4")
def test_both_apis_put_januarys_last_hour_in_february_by_deduction_time(rt):
    shop = both(rt, LAST_HOUR - timedelta(hours=1))
    settle_hour(shop, LAST_HOUR - timedelta(hours=1), [("jan-22", "S5.MEDIUM4", "1")])
    settle_hour(shop, LAST_HOUR, [("jan-23", "S5.MEDIUM4", "1")])  # deducted 1 Feb 00:05

    february, january = shop.lines("2026-02"), shop.lines("2026-01")
    assert [line["period_key"] for line in february["items"]] == ["2026-01-31T23"]
    assert [line["period_key"] for line in january["items"]] == ["2026-01-31T22"]
    assert february["statistic_period"] == january["statistic_period"] == "deduction_time"
    assert february["items"][0]["deducted_at"] == "2026-02-01 00:05:00"

    feb, jan = shop.detail(Month="2026-02"), shop.detail(Month="2026-01")
    assert [(d["FeeBeginTime"], d["BillMonth"], d["BillDay"]) for d in feb["DetailSet"]] == [
        ("2026-01-31 23:00:00", "2026-02", "01")]
    assert [d["FeeBeginTime"] for d in jan["DetailSet"]] == ["2026-01-31 22:00:00"]
    assert (feb["Total"], jan["Total"]) == (1, 1)
    assert shop.detail(Month="2026-02", PeriodType="byPayTime")["Total"] == 1
    # the account is on deduction time: asking for usage time is refused, naming it
    refused = shop.detail(Month="2026-01", PeriodType="byUsedTime")
    assert refused["Error"]["Code"] == "InvalidParameterValue"
    assert refused["Error"]["Message"].startswith("PeriodType")

    with rt.engine.connect() as conn:  # the month's precision difference, on the same period
        diff = settlement.monthly_precision_difference(conn, OPS, shop.uin, "2026-02")
    assert (diff["statistic_period"], diff["lines"], diff["deducted_total"]) == (
        "deduction_time", 1, 50)
    assert_reconciled(rt, shop.uin)


@pytest.mark.spec("BIL-6")
def test_contract_and_fixed_price_lines_hide_list_price_discount_and_cost(rt):
    shop = both(rt, datetime(2026, 3, 2, 9, tzinfo=BUSINESS_TZ))
    with rt.engine.begin() as conn:
        catalog.set_discount(conn, rt.clock, OPS, shop.uin, 8000)
        catalog.set_contract_price(conn, rt.clock, OPS, shop.uin, product="cvm", item="traffic",
                                   pay_mode="postpaid", unit_price=33_000_000)  # 0.33 / GB
        catalog.set_fixed_price(conn, rt.clock, OPS, shop.uin, product="cvm", item="S5.MEDIUM4",
                                pay_mode="postpaid", amount_per_month=30_00_000_000)  # 30.00
    disk = open_(rt, shop.uin, product="cbs", spec="premium")  # list price x discount
    hour = period_containing(HOURLY, datetime(2026, 3, 2, 10, tzinfo=BUSINESS_TZ))
    rt.clock.set(hour.end + timedelta(minutes=5))
    ingest(rt, [("c1", shop.uin, shop.vm, "traffic", "2", hour.start, hour.end),
                ("f1", shop.uin, shop.vm, "S5.MEDIUM4", "1", hour.start, hour.end),
                ("l1", shop.uin, disk, "premium", "100", hour.start, hour.end)])
    settlement.settle_period(rt.engine, rt.clock, "hour", hour)

    native = {line["price_kind"]: line for line in shop.lines("2026-03")["items"]}
    assert set(native) == {"list", "contract", "fixed"}
    for kind in ("contract", "fixed"):
        line = native[kind]
        assert (line["unit_price"], line["list_amount"], line["discount_bp"]) == (
            None, None, None), kind
    assert (native["contract"]["discounted_amount"], native["fixed"]["deducted"]) == (
        "0.66000000", "30.00")
    listed = native["list"]
    assert (listed["unit_price"], listed["list_amount"], listed["discount_bp"]) == (
        "0.00049000", "0.04900000", 8000)

    shown = {d["ComponentSet"][0]["ItemCode"]: d["ComponentSet"][0]
             for d in shop.detail(Month="2026-03")["DetailSet"]}
    for item in ("traffic", "S5.MEDIUM4"):  # contract, fixed
        c = shown[item]
        assert (c["SinglePrice"], c["Cost"], c["Discount"]) == ("-", "-", "-"), item
        assert (c["ContractPrice"], c["BlendedDiscount"]) == ("-", "-"), item
    assert (shown["traffic"]["RealCost"], shown["S5.MEDIUM4"]["RealCost"]) == (
        "0.66000000", "30.00000000")
    disk_line = shown["premium"]
    assert (disk_line["SinglePrice"], disk_line["Cost"], disk_line["Discount"]) == (
        "0.00049000", "0.04900000", "0.8")
    assert_reconciled(rt, shop.uin)
