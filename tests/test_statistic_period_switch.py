"""BIL-3: the one-way switch to the usage-time statistic period, end to end.

SPEC's July example on a monthly-settled CDN: May's usage deducted 1 June,
June's usage deducted 1 July, July's deducted 1 August, August's 1 September;
the customer switches on 15 July. June stays as it was, July holds June's and
July's usage (to the fen, in the list, the precision difference, the daily
chart and DescribeBillDetail), August is by usage time. The switch needs the
acknowledgement, happens once and is never undone; an operator may switch on
request; eight concurrent switches on PostgreSQL leave one.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from feecenter.accounts.permissions import Actor
from feecenter.api.app import create_app
from feecenter.auth import service as auth
from feecenter.auth import tc3
from feecenter.bills import rollups
from feecenter.bills import service as bills
from feecenter.catalog import service as catalog
from feecenter.clock import BUSINESS_TZ
from feecenter.compat.endpoint import VERSION
from feecenter.console import i18n
from feecenter.db.engine import transaction
from feecenter.errors import Conflict, InvalidInput, PermissionDenied
from feecenter.periods import MONTHLY, period_containing
from feecenter.settlement import service as settlement
from feecenter.settlement.tables import statistic_period_switches
from tests.helpers import OPS, add_cash, api_key, assert_reconciled, new_account, run_threads
from tests.rest_harness import Signed
from tests.test_console import csrf_of, logged_in, shop  # noqa: F401 - shop is a fixture
from tests.test_settlement import ingest, load, open_

VERSION_SHOWN = settlement.ACKNOWLEDGEMENT_VERSION


def at(month: int, day: int = 1, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BUSINESS_TZ)


def owner(uin: int) -> Actor:
    return Actor(kind="user", name="owner", uin=uin, user_id=1, role="owner")


def monthly_cdn_shop(rt):
    """A customer from May with a CDN settled monthly (SET-4: after the month)."""
    rt.clock.set(datetime(2026, 4, 30, 12, tzinfo=BUSINESS_TZ))
    load(rt, catalog.sample_catalog_text().replace(
        "class: network\n    postpaid_cycle: day", "class: network\n    postpaid_cycle: month"))
    uin = new_account(rt, "period-co")
    add_cash(rt, uin, 1_000_00)
    cdn = open_(rt, uin, product="cdn", spec="traffic", region="mainland")
    return uin, cdn


def settle_month(rt, uin: int, cdn: str, month: int, gigabytes: str) -> None:
    """The month's traffic, settled on the 1st of the next month at 02:00."""
    period = period_containing(MONTHLY, at(month, 10))
    rt.clock.set(period.end + timedelta(hours=2))
    ingest(rt, [(f"m{month}", uin, cdn, "traffic", gigabytes, period.start, period.end)])
    settlement.settle_period(rt.engine, rt.clock, "month", period)


def lines(rt, uin: int, month: str) -> dict:
    with rt.engine.connect() as conn:
        return settlement.list_bill_lines(conn, OPS, uin, {"month": month})


def summary(rt, uin: int, month: str) -> tuple[str, list[str], int]:
    page = lines(rt, uin, month)
    return (page["statistic_period"], [line["period_key"] for line in page["items"]],
            sum(line["deducted"] for line in page["items"]))


def switch(rt, uin: int, actor: Actor | None = None, **body):
    fields = {"period": "usage_time", "acknowledged": True,
              "acknowledgement_version": VERSION_SHOWN, **body}
    with transaction(rt.engine) as conn:
        return settlement.switch_statistic_period(conn, rt.clock, actor or owner(uin), uin,
                                                  **fields)


def switches(rt, uin: int) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(statistic_period_switches).where(
            statistic_period_switches.c.uin == uin)).scalar_one()


def detail(rt, http: TestClient, key, **params) -> dict:
    data = json.dumps({"Offset": 0, "Limit": 100, **params}).encode()
    headers = tc3.sign(key.secret_id, key.secret_key, method="POST", host="testserver",
                       path="/", query="", body=data, content_type="application/json",
                       timestamp=int(rt.clock.now().timestamp()), service="billing")
    headers.update({"X-TC-Action": "DescribeBillDetail", "X-TC-Version": VERSION})
    answer = http.post("/", content=data, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["Response"]


@pytest.mark.spec("BIL-3")
def test_julys_switch_puts_junes_and_julys_usage_in_july_to_the_fen(rt):
    uin, cdn = monthly_cdn_shop(rt)
    settle_month(rt, uin, cdn, 5, "50")    # deducted 1 June: 50 GB x 0.21 = 10.50
    settle_month(rt, uin, cdn, 6, "100")   # deducted 1 July: 100 GB x 0.21 = 21.00
    june_before = lines(rt, uin, "2026-06")
    assert summary(rt, uin, "2026-06") == ("deduction_time", ["2026-05"], 10_50)
    assert summary(rt, uin, "2026-07") == ("deduction_time", ["2026-06"], 21_00)

    rt.clock.set(at(7, 15, 10))
    key = api_key(rt, uin)
    rest = Signed(rt, TestClient(create_app(rt)), key)
    shown = rest.send("GET", f"/api/v1/accounts/{uin}/bills/statistic-period").json()
    assert (shown["statistic_period"], shown["switched_in"]) == ("deduction_time", None)
    assert shown["acknowledgement"]["version"] == VERSION_SHOWN
    assert "不可撤销" in shown["acknowledgement"]["text_zh"]
    made = rest.send("POST", f"/api/v1/accounts/{uin}/bills/statistic-period",
                     {"period": "usage_time", "acknowledged": True,
                      "acknowledgement_version": shown["acknowledgement"]["version"]})
    assert made.status_code == 200, made.text
    assert (made.json()["switched_in"], made.json()["requested_by"]) == ("2026-07", "customer")

    settle_month(rt, uin, cdn, 7, "200")   # deducted 1 August: 200 GB x 0.19 = 38.00
    settle_month(rt, uin, cdn, 8, "300")   # deducted 1 September: 300 GB x 0.19 = 57.00

    assert lines(rt, uin, "2026-06")["items"] == june_before["items"]  # earlier: unchanged
    assert summary(rt, uin, "2026-06") == ("deduction_time", ["2026-05"], 10_50)
    assert summary(rt, uin, "2026-07") == ("usage_time", ["2026-06", "2026-07"], 21_00 + 38_00)
    assert summary(rt, uin, "2026-08") == ("usage_time", ["2026-08"], 57_00)
    assert summary(rt, uin, "2026-09") == ("usage_time", [], 0)
    with rt.engine.connect() as conn:
        assert settlement.statistic_switch_month(conn, uin) == "2026-07"
        july = settlement.monthly_precision_difference(conn, OPS, uin, "2026-07")
        chart = settlement.month_cost(conn, OPS, uin, "2026-07")
    assert (july["statistic_period"], july["switched_in"], july["lines"],
            july["deducted_total"]) == ("usage_time", "2026-07", 2, 59_00)
    # the daily chart: June's usage on 1 July (its deduction), July's on 1 July (its start)
    assert sum(day["deducted"] for day in chart["by_day"]) == 59_00
    assert chart["by_day"][0] == {"day": "2026-07-01", "deducted": 59_00}

    answer = rest.send("GET", f"/api/v1/accounts/{uin}/bill-lines?month=2026-07").json()
    assert (answer["statistic_period"], answer["switched_in"], answer["total"]) == (
        "usage_time", "2026-07", 2)
    tencent = detail(rt, rest.http, key, Month="2026-07", PeriodType="byUsedTime")
    assert tencent["Total"] == 2
    assert sorted((d["FeeBeginTime"][:7], d["BillMonth"]) for d in tencent["DetailSet"]) == [
        ("2026-06", "2026-07"), ("2026-07", "2026-07")]
    june = detail(rt, rest.http, key, Month="2026-06", PeriodType="byPayTime")
    assert [d["BillMonth"] for d in june["DetailSet"]] == ["2026-06"]
    refused = detail(rt, rest.http, key, Month="2026-07", PeriodType="byPayTime")
    assert refused["Error"]["Message"].startswith("PeriodType")
    day = date(2026, 6, 1)  # the cost bills' roll-ups follow the same switch (BIL-1, BIL-2)
    while day <= date(2026, 9, 2):
        rollups.refresh_day(rt.engine, rt.clock, day)
        day += timedelta(days=1)
    with rt.engine.connect() as conn:
        for month, fen in (("2026-06", 10_50), ("2026-07", 59_00), ("2026-08", 57_00)):
            assert bills.overview(conn, OPS, uin, month)["total"]["deducted"] == fen, month
            assert sum(line["deducted"] for line in bills.month_lines(conn, OPS, uin, month)) == fen
    assert_reconciled(rt, uin)


@pytest.mark.spec("BIL-3")
def test_late_usage_from_before_the_switch_goes_to_the_switch_month(rt):
    uin, cdn = monthly_cdn_shop(rt)
    settle_month(rt, uin, cdn, 5, "50")
    settle_month(rt, uin, cdn, 6, "100")
    rt.clock.set(at(7, 3))
    switch(rt, uin)
    settle_month(rt, uin, cdn, 7, "200")
    settle_month(rt, uin, cdn, 8, "300")
    # 10 GB of June arrive in September: billed on 1 October as a late adjustment
    june = period_containing(MONTHLY, at(6, 10))
    rt.clock.set(at(9, 20))
    ingest(rt, [("late-june", uin, cdn, "traffic", "10", june.start, june.end)])
    settle_month(rt, uin, cdn, 9, "1")
    july = lines(rt, uin, "2026-07")
    assert [(line["period_key"], line["kind"]) for line in july["items"]] == [
        ("2026-06", "charge"), ("2026-06", "adjustment"), ("2026-07", "charge")]
    assert summary(rt, uin, "2026-09") == ("usage_time", ["2026-09"], 19)  # 1 GB x 0.19
    assert summary(rt, uin, "2026-06") == ("deduction_time", ["2026-05"], 10_50)
    assert_reconciled(rt, uin)


@pytest.mark.spec("BIL-3")
def test_a_switch_needs_the_acknowledgement_and_is_never_undone(rt):
    uin, _ = monthly_cdn_shop(rt)
    rt.clock.set(at(7, 15))
    with pytest.raises(InvalidInput) as no_ack:
        switch(rt, uin, acknowledged=False)
    assert no_ack.value.field == "acknowledged"
    with pytest.raises(InvalidInput) as old_rules:
        switch(rt, uin, acknowledgement_version="BIL-3.0")
    assert old_rules.value.field == "acknowledgement_version"
    with pytest.raises(InvalidInput) as wrong_way:
        switch(rt, uin, period="deduction_time")
    assert wrong_way.value.field == "period" and "不可撤销" in wrong_way.value.message_zh
    with pytest.raises(PermissionDenied):
        switch(rt, uin, Actor(kind="user", name="ro", uin=uin, user_id=2, role="readonly"))
    assert switches(rt, uin) == 0

    switch(rt, uin, Actor(kind="user", name="fin", uin=uin, user_id=3, role="finance"))
    rt.clock.set(at(8, 2))
    with pytest.raises(Conflict) as twice:
        switch(rt, uin)
    assert (twice.value.field, twice.value.details["switched_in"]) == ("period", "2026-07")
    assert "不可再次切换或撤销" in twice.value.message_zh
    with pytest.raises(InvalidInput):
        switch(rt, uin, period="deduction_time")  # back: refused
    with pytest.raises(Conflict):
        with transaction(rt.engine) as conn:
            settlement.switch_statistic_period_for(conn, rt.clock, OPS, uin,
                                                   period="usage_time", request_note="T-1")
    assert switches(rt, uin) == 1
    with rt.engine.connect() as conn:
        assert settlement.statistic_switch_month(conn, uin) == "2026-07"


@pytest.mark.spec("BIL-3")
def test_an_operator_switches_on_request_in_the_current_month_audited(rt):
    uin, _ = monthly_cdn_shop(rt)
    with rt.engine.begin() as conn:
        _, ops_key = auth.create_operator(conn, rt.clock, OPS, "period-ops")
    rt.clock.set(at(7, 31, 23, 50))  # the month's last minutes: still July
    ops = Signed(rt, TestClient(create_app(rt)), ops_key)
    path = f"/api/v1/ops/accounts/{uin}/bills/statistic-period"
    missing = ops.send("POST", path, {"period": "usage_time"})
    assert missing.status_code == 400, missing.text
    assert missing.json()["error"]["field"] == "request_note"
    customer = Signed(rt, ops.http, api_key(rt, uin))
    assert customer.send("POST", path, {"request_note": "T-7"}).status_code == 403
    done = ops.send("POST", path, {"period": "usage_time", "request_note": "ticket T-7"})
    assert done.status_code == 200, done.text
    assert (done.json()["switched_in"], done.json()["requested_by"]) == ("2026-07", "operator")
    again = ops.send("POST", path, {"period": "usage_time", "request_note": "ticket T-8"})
    assert again.status_code == 409 and again.json()["error"]["field"] == "period"
    unknown = ops.send("POST", "/api/v1/ops/accounts/999999/bills/statistic-period",
                       {"request_note": "T-9"})
    assert unknown.status_code == 404
    audit = ops.send("GET", f"/api/v1/ops/audit?uin={uin}").json()
    entries = [e for e in audit if e["action"] == "switch_statistic_period"]
    assert len(entries) == 1 and "T-7" in entries[0]["detail"]


@pytest.mark.spec("BIL-3")
@pytest.mark.postgres_only
def test_eight_concurrent_switches_make_one(rt):
    uin, _ = monthly_cdn_shop(rt)
    rt.clock.set(at(7, 15))

    def attempt(i: int) -> None:
        if i % 2:
            switch(rt, uin)
        else:
            with transaction(rt.engine) as conn:
                settlement.switch_statistic_period_for(conn, rt.clock, OPS, uin,
                                                       period="usage_time",
                                                       request_note=f"T-{i}")

    raised = run_threads(8, attempt)
    assert len(raised) == 7 and all(isinstance(e, Conflict) for e in raised), raised
    assert switches(rt, uin) == 1


@pytest.mark.spec("BIL-3")
def test_the_console_bills_page_switches_only_with_the_box_ticked(rt, shop):  # noqa: F811
    http = logged_in(rt)
    shown = http.get("/console/bills")
    assert shown.status_code == 200
    assert 'data-period-setting="deduction_time"' in shown.text
    assert f'data-rules="{VERSION_SHOWN}"' in shown.text and "不可撤销" in shown.text
    token = csrf_of(shown.text)
    form = {"csrf_token": token, "acknowledgement_version": VERSION_SHOWN}
    assert http.post("/console/bills/statistic-period", data=form).status_code == 400
    assert switches(rt, shop) == 0
    assert http.post("/console/bills/statistic-period",
                     data={**form, "acknowledged": "on", "csrf_token": "forged"}
                     ).status_code == 403
    made = http.post("/console/bills/statistic-period", data={**form, "acknowledged": "on"})
    assert made.status_code == 303 and made.headers["location"] == "/console/bills?switched=1"
    after = http.get("/console/bills?switched=1")
    month = rt.clock.now().astimezone(BUSINESS_TZ).strftime("%Y-%m")
    assert f'data-switched-in="{month}"' in after.text and "data-switched" in after.text
    again = http.post("/console/bills/statistic-period", data={**form, "acknowledged": "on"})
    assert again.status_code == 409 and 'data-error-field="period"' in again.text
    assert switches(rt, shop) == 1
    readonly = logged_in(rt, "acme-readonly")
    assert "data-period-setting" not in readonly.get("/console/bills").text
    assert "自 " + month + " 起按使用时间统计" in after.text
    http.cookies.set(i18n.COOKIE, "en")
    english = http.get("/console/bills").text
    assert f"By usage time since {month}" in english and "不可撤销" not in english


@pytest.mark.spec("BIL-3")
def test_every_months_sql_is_the_rule_at_the_months_edges(rt):
    """Lines of every usage month U deducted in every month D >= U (at D's first and
    last second, Beijing time): each month's query holds exactly the lines
    rules.statistic_month puts in it, before and after a July switch."""
    from feecenter.clock import db_time
    from feecenter.settlement.rules import statistic_month
    from feecenter.settlement.tables import bill_lines

    uin, _ = monthly_cdn_shop(rt)
    months = [f"2026-{m:02d}" for m in range(4, 11)]
    expected: dict[str, set] = {}
    with transaction(rt.engine) as conn:
        for u, usage in enumerate(months):
            for deducted in months[u:]:
                first = at(int(deducted[5:]))
                last = at(int(deducted[5:]) + 1) - timedelta(seconds=1)
                for edge, when in (("first", first), ("last", last)):
                    line_id = conn.execute(bill_lines.insert().values(
                        uin=uin, resource_id=f"r-{usage}-{deducted}-{edge}", resource_name=None,
                        product_code="cdn", region="mainland", billing_item="traffic",
                        project_id=0, project_name="默认项目", cycle="month", period_key=usage,
                        period_start=db_time(at(int(usage[5:]))),
                        period_end=db_time(at(int(usage[5:]) + 1)), quantity=1,
                        package_quantity=0, price_kind="list", unit_price=1, list_amount=1,
                        discount_bp=10_000, discounted_amount=1_000_000, deducted=1,
                        rounding_diff=0, voucher_paid=0, cash_paid=1, gift_paid=0,
                        credit_paid=0, arrears=0, txn_id=None, deducted_at=db_time(when),
                        kind="charge", sequence=0, adjusts_line_id=None, reason=None,
                        stopped_quantity=0).returning(bill_lines.c.id)).scalar_one()
                    expected.setdefault(usage + deducted, set()).add(line_id)

    def listed(month: str) -> set:
        return {line["id"] for line in lines(rt, uin, month)["items"]}

    def wanted(month: str, switched_in: str | None) -> set:
        return {i for key, ids in expected.items() for i in ids
                if statistic_month(key[7:], key[:7], switched_in) == month}

    for month in months:
        assert listed(month) == wanted(month, None), month
    rt.clock.set(at(7, 20))
    switch(rt, uin)
    for month in months:
        assert listed(month) == wanted(month, "2026-07"), month
        with rt.engine.connect() as conn:
            chart = settlement.month_cost(conn, OPS, uin, month)
            diff = settlement.monthly_precision_difference(conn, OPS, uin, month)
        assert sum(d["deducted"] for d in chart["by_day"]) == len(wanted(month, "2026-07"))
        assert diff["lines"] == len(wanted(month, "2026-07"))
    assert wanted("2026-07", "2026-07") > wanted("2026-07", None)  # July absorbs
