"""The console's 概览 beyond the balances: the month-to-date cost charts (by day and
by product, from the account's L3 bill lines on its statistic period, BIL-1 and
BIL-3) and the arrears banner's next step (ARR-3).

Every test runs on SQLite and PostgreSQL (the ``rt`` fixture), in-process.
"""

from __future__ import annotations

import html
import json
import re

import pytest

from feecenter.accounts.permissions import SYSTEM
from feecenter.clock import business_time_text
from feecenter.settlement import service as settlement
from tests.helpers import add_cash, new_account
from tests.test_arrears_isolation import ITEM, tick
from tests.test_console import logged_in, set_password, shop  # noqa: F401 - shop is a fixture
from tests.test_settlement import hour, load, open_

CHART = re.compile(r"data-chart='([^']*)'")


def charts(page: str) -> list[dict]:
    return [json.loads(html.unescape(found)) for found in CHART.findall(page)]


def vm_account(rt, name: str, cash: int):
    """An account ``name`` with ``cash`` fen and a VM at 1.00 yuan an hour; its owner
    has a console password."""
    load(rt)
    uin = new_account(rt, name)
    add_cash(rt, uin, cash)
    set_password(rt, uin, None)
    return uin, open_(rt, uin, spec=ITEM)


@pytest.mark.spec("BIL-1", "BIL-3")
def test_the_overview_charts_the_month_cost_by_day_and_by_product(rt):
    uin, rid = vm_account(rt, "vm-shop", 100_00)
    for n in (0, 1, 2, 24):  # three hours on 2 March, one on 3 March (business time)
        tick(rt, uin, rid, n)
    page = logged_in(rt, "vm-shop", "vm-shop").get("/console/").text
    by_day, by_product = charts(page)
    assert by_day["kind"] == "bar" and len(by_day["labels"]) == len(by_day["values"]) == 31
    assert by_day["values"][:3] == [0, 300, 100] and sum(by_day["values"]) == 400
    assert by_product == {"kind": "pie", "series": "费用", "labels": ["云服务器"],
                          "values": [400]}
    with rt.engine.connect() as conn:
        lines = settlement.list_bill_lines(conn, SYSTEM, uin, {"month": "2026-03"}, 0, 100)
    assert sum(line["deducted"] for line in lines["items"]) == 400
    assert re.search(r'data-product="cvm"><td>云服务器</td><td class="num" data-cost>¥4.00<', page)
    assert "data-cost-total>¥4.00<" in page and 'data-statistic-period="deduction_time"' in page
    assert '<script src="/console/static/charts.js" defer></script>' in page


@pytest.mark.spec("BIL-3")
def test_month_cost_counts_lines_in_the_business_day_of_their_deduction(rt):
    uin, rid = vm_account(rt, "late-shop", 100_00)
    tick(rt, uin, rid, 13)  # 2 March 23:00-24:00, deducted at 3 March 00:00 Beijing time
    with rt.engine.connect() as conn:
        cost = settlement.month_cost(conn, SYSTEM, uin, "2026-03")
        february = settlement.month_cost(conn, SYSTEM, uin, "2026-02")
    assert [day["deducted"] for day in cost["by_day"][:4]] == [0, 0, 100, 0]
    assert cost["by_day"][2]["day"] == "2026-03-03" and len(february["by_day"]) == 28
    assert february["by_product"] == [] and sum(d["deducted"] for d in february["by_day"]) == 0


@pytest.mark.spec("ARR-3")
def test_the_arrears_banner_says_what_happens_next_and_when(rt):
    uin, rid = vm_account(rt, "debtor-vm", 2_00)
    for n in range(4):  # hours 2-3 go into arrears; the 2-hour protection ends at hour 5
        tick(rt, uin, rid, n)
    page = logged_in(rt, "debtor-vm", "debtor-vm").get("/console/").text
    protection = re.search(r'data-arrears-next="stopped">([^<]*)<', page).group(1)
    assert "保护期" in protection and business_time_text(hour(5)[0]) in protection
    assert "1 个资源" in protection
    tick(rt, uin, rid, 4)  # the VM is stopped: isolation, destruction 7 days after the stop
    http = logged_in(rt, "debtor-vm", "debtor-vm")  # hours later: a new session
    partial = http.get("/console/overview/balances", headers={"HX-Request": "true"}).text
    isolation = re.search(r'data-arrears-next="destroyed">([^<]*)<', partial).group(1)
    assert "隔离期" in isolation
    assert business_time_text(hour(5)[0] + (hour(7 * 24)[0] - hour(0)[0])) in isolation
    assert "data-chart" not in partial  # the charts are the whole page's only
    http.cookies.set("fc_lang", "en", path="/console")
    english = http.get("/console/").text
    assert "Isolation period: 1 resources are stopped" in english


@pytest.mark.spec("ACC-2")
def test_users_who_may_not_see_balances_get_no_charts(rt, shop):  # noqa: F811 - the fixture
    page = logged_in(rt, "acme-readonly").get("/console/").text
    assert "data-denied" in page and "data-chart" not in page and "charts.js" not in page
