"""L3 lines paged in SQL and streamed (BIL-1, issue #24): ``month_lines_page`` and
``iter_month_lines`` give exactly the lines of ``month_lines`` (the month read whole
and filtered by ``statistic_month`` in Python), in its order — for several offsets,
for every month around a statistic-period switch (BIL-3), with prepaid refunds
negative (BIL-5) and contract lines without list price (BIL-6) — and REST
``by=lines`` pages the same way."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.bills import service
from feecenter.clock import BUSINESS_TZ, db_time
from feecenter.db.engine import transaction
from feecenter.errors import InvalidInput
from feecenter.orders.tables import orders
from feecenter.settlement.tables import bill_lines
from tests.helpers import OPS, api_key, new_account
from tests.rest_harness import Signed

MONTHS = ("2026-02", "2026-03", "2026-04")
SWITCHES = (None, "2026-02", "2026-03", "2026-04")


def _shanghai(month: int, day: int, hour: int) -> datetime:
    return db_time(datetime(2026, month, day, hour, tzinfo=BUSINESS_TZ))


def _postpaid(uin: int, n: int, start: datetime, deducted_at: datetime, listed: bool) -> dict:
    return {"uin": uin, "resource_id": f"ins-{uin}-{n % 3}", "resource_name": None,
            "product_code": "cvm", "region": "ap-guangzhou",
            "billing_item": "S5.MEDIUM4" if listed else "traffic", "project_id": 0,
            "project_name": "默认项目", "cycle": "hour", "period_key": f"k{n}",
            "period_start": start, "period_end": start + timedelta(hours=1),
            "quantity": 1_000_000, "package_quantity": 0, "stopped_quantity": 0,
            "price_kind": "list" if listed else "contract", "unit_price": 50_000_000,
            "list_amount": 50_000_000, "discount_bp": 10_000,
            "discounted_amount": 49_999_999, "deducted": 50, "rounding_diff": 1,
            "voucher_paid": 0, "cash_paid": 40, "gift_paid": 5, "credit_paid": 5, "arrears": 0,
            "txn_id": None, "deducted_at": deducted_at, "kind": "charge", "sequence": 0,
            "adjusts_line_id": None, "reason": None}


def _order(uin: int, n: int, closed_at: datetime, kind: str, state: str) -> dict:
    amount = -300 if kind == "refund" else 1_000
    return {"uin": uin, "kind": kind, "state": state, "product_code": "cvm",
            "region": "ap-guangzhou", "spec_item": "S5.MEDIUM4", "quantity": 1_000_000,
            "months": 1, "resource_id": f"ins-{uin}-p{n}", "project_id": 0,
            "project_name": "默认项目", "price_kind": "list", "unit_price": 100_000_000_000,
            "list_amount": 1_200, "discount_bp": 8_333, "amount": amount, "paid_coupon": 0,
            "paid_gift": 0 if amount < 0 else 100, "paid_cash": 0 if amount < 0 else 900,
            "paid_credit": 0, "refunded_gift": 0, "refunded_cash": 300 if amount < 0 else 0,
            "promo": False, "creator": "test", "created_at": closed_at, "closed_at": closed_at}


@pytest.fixture
def seeded(rt):
    """Lines of one account from mid-February to mid-May: hourly usage deducted five
    minutes after its hour, some deducted late (a month later: late usage), several
    lines sharing a deduction time (ties broken by id), contract lines, and prepaid
    orders (new, refunds negative, one still paid and one failed: no lines); and
    another account's lines, which never show."""
    rt.clock.set(datetime(2026, 5, 20, tzinfo=BUSINESS_TZ))
    uin, other = new_account(rt, "pages"), new_account(rt, "other")
    lines, made = [], []
    for n in range(240):
        start = _shanghai(2, 20, 0) + timedelta(hours=7 * n)
        late = timedelta(days=31) if n % 17 == 0 else timedelta()
        deducted = start + timedelta(hours=1, minutes=5) + late
        for copy in range(1 + (n % 5 == 0)):  # ties: two lines, one deduction time
            lines.append(_postpaid(uin, 2 * n + copy, start, deducted, listed=n % 4 != 0))
        lines.append(_postpaid(other, n, start, deducted, listed=True))
    for n in range(30):
        closed = _shanghai(2, 25, 12) + timedelta(days=3 * n)
        kind, state = ("refund", "refunded") if n % 4 == 0 else ("new", "delivered")
        made.append(_order(uin, n, closed, kind, state))
    made.append(_order(uin, 98, _shanghai(3, 9, 3), "new", "paid"))
    made.append(_order(uin, 99, _shanghai(3, 9, 3), "new", "failed"))
    with transaction(rt.engine) as conn:
        conn.execute(bill_lines.insert(), lines)
        conn.execute(orders.insert(), made)
    return uin


def _switched(monkeypatch, switched):
    monkeypatch.setattr(service, "usage_time_switch_month", lambda conn, uin: switched)


@pytest.mark.spec("BIL-1", "BIL-3")
@pytest.mark.parametrize("switched", SWITCHES)
def test_pages_are_slices_of_the_whole_month_around_a_switch(rt, seeded, monkeypatch, switched):
    _switched(monkeypatch, switched)
    with rt.engine.connect() as conn:
        for month in MONTHS:
            whole = service.month_lines(conn, OPS, seeded, month)
            assert len(whole) > 20, month
            assert {line["pay_mode"] for line in whole} == {"postpaid", "prepaid"}
            for offset, limit in ((0, 20), (1, 7), (13, 50), (len(whole) - 3, 20),
                                  (len(whole), 20), (len(whole) + 5, 1), (0, 1000)):
                total, items = service.month_lines_page(conn, OPS, seeded, month, offset, limit)
                assert total == len(whole), (switched, month)
                assert items == whole[offset:offset + limit], (switched, month, offset)


@pytest.mark.spec("BIL-1", "BIL-3")
@pytest.mark.parametrize("switched", SWITCHES)
def test_streamed_lines_are_the_whole_month_in_order(rt, seeded, monkeypatch, switched):
    _switched(monkeypatch, switched)
    monkeypatch.setattr(service, "STREAM_CHUNK", 7)
    with rt.engine.connect() as conn:
        for month in MONTHS:
            streamed = list(service.iter_month_lines(conn, OPS, seeded, month))
            assert streamed == service.month_lines(conn, OPS, seeded, month), (switched, month)
            order = [(line["deducted_at"], line["line_id"].split(":")[0],
                      int(line["line_id"].split(":")[1])) for line in streamed]
            assert order == sorted(order) and len(set(order)) == len(order)


@pytest.mark.spec("BIL-3")
def test_no_line_is_lost_or_counted_twice_over_the_months_of_a_switch(rt, seeded, monkeypatch):
    """Each line is in exactly one month whatever the switch (a line deducted late
    for usage before the switch month goes to the switch month)."""
    with rt.engine.connect() as conn:
        for switched in SWITCHES:
            _switched(monkeypatch, switched)
            ids = [line["line_id"] for month in ("2026-01", *MONTHS, "2026-05", "2026-06")
                   for line in service.iter_month_lines(conn, OPS, seeded, month)]
            assert len(ids) == len(set(ids)) == 288 + 30, switched  # 48 ties; 2 orders no line


@pytest.mark.spec("BIL-1", "BIL-5", "BIL-6")
def test_rest_lines_are_paged_in_sql_with_the_total(rt, seeded):
    rest = Signed(rt, TestClient(create_app(rt)), api_key(rt, seeded))
    with rt.engine.connect() as conn:
        whole = service.month_lines(conn, OPS, seeded, "2026-03")
    answer = rest.send("GET", f"/api/v1/accounts/{seeded}/bills/2026-03/summary"
                              "?by=lines&offset=10&limit=5")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["total"] == len(whole)
    assert [item["line_id"] for item in body["items"]] == [
        line["line_id"] for line in whole[10:15]]
    items = {item["line_id"]: item for item in rest.send(
        "GET", f"/api/v1/accounts/{seeded}/bills/2026-03/summary?by=lines&limit=100"
    ).json()["items"]}
    refunds = [item for item in items.values() if item["kind"] == "refund"]
    assert refunds and all(item["deducted"].startswith("-") for item in refunds)
    contract = [item for item in items.values() if item["price_kind"] == "contract"]
    assert contract and all(item["original_cost"] is None for item in contract)


def test_another_accounts_lines_are_refused(rt, seeded):
    other = new_account(rt, "stranger")
    rest = Signed(rt, TestClient(create_app(rt)), api_key(rt, other))
    answer = rest.send("GET", f"/api/v1/accounts/{seeded}/bills/2026-03/summary?by=lines")
    assert answer.status_code == 403, answer.text


@pytest.mark.parametrize("offset, limit, field", [(-1, 20, "offset"), (0, 0, "limit"),
                                                  (0, 1001, "limit"), ("3", 20, "offset")])
def test_a_bad_page_is_refused_naming_the_field(rt, seeded, offset, limit, field):
    with rt.engine.connect() as conn, pytest.raises(InvalidInput) as refused:
        service.month_lines_page(conn, OPS, seeded, "2026-03", offset, limit)
    assert refused.value.field == field
