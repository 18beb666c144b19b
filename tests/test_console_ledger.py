"""The console's 收支明细 (transactions, BAL-5) and 账单 (L3 bill lines, BIL-1) pages:
filters, paging, the figures against the REST API's for the same filters, the CSV
download, ACC-2 refusals, escaping and field-level errors for malformed filters.

Every test runs on SQLite and PostgreSQL (the ``rt`` fixture), in-process.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.clock import business_time_text
from feecenter.db.engine import transaction
from feecenter.funds import service as funds
from feecenter.settlement.tables import bill_lines
from tests.helpers import api_key, revenue
from tests.rest_harness import HOST, Signed
from tests.test_console import XSS, logged_in, shop  # noqa: F401 - shop is a fixture

ROW = re.compile(r'<tr data-entry="\d+">(.*?)</tr>', re.S)
LINE = re.compile(r'<tr data-line="\d+">(.*?)</tr>', re.S)
CELL = re.compile(r'data-col="(\w+)"[^>]*>(.*?)</td>', re.S)
FEN = ("amount", "cash_amount", "gift_amount", "coupon_amount", "balance_after")


def rows(html: str, pattern=ROW) -> list[dict[str, str]]:
    return [{name: value for name, value in CELL.findall(row)} for row in pattern.findall(html)]


def plain(shown: str) -> str:
    """"-¥1,234.56" -> "-1234.56", as the API writes amounts."""
    return shown.replace("¥", "").replace(",", "")


def api(rt, uin: int, path: str, **query):
    key = api_key(rt, uin)
    client = Signed(rt, TestClient(create_app(rt), base_url=f"http://{HOST}"), key)
    response = client.send("GET", f"/api/v1/accounts/{uin}/{path}",
                           query={k: v for k, v in query.items() if v})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def ledger(rt, shop):  # noqa: F811
    """acme-cloud (the ``shop``) with deductions for cvm and cbs an hour apart, the
    last with a hostile product code and memo; returns (uin, the time between)."""
    account = revenue(rt)
    with transaction(rt.engine) as conn:
        for n in range(22):
            funds.spend(conn, rt.clock, shop, 1_00 + n, key=f"ledger:cvm:{n}", postpaid=False,
                        revenue_account_id=account, product_code="cvm", memo=f"cvm #{n}")
    rt.clock.advance(hours=1)
    middle = business_time_text(rt.clock.now() - timedelta(minutes=30))
    with transaction(rt.engine) as conn:
        funds.spend(conn, rt.clock, shop, 250_000_00, key="ledger:cbs", postpaid=False,
                    revenue_account_id=account, product_code="cbs", memo="=cmd|' /C calc'!A0")
        funds.spend(conn, rt.clock, shop, 3_45, key="ledger:xss", postpaid=False,
                    revenue_account_id=account, product_code=XSS, memo=XSS)
    return shop, middle


# ---------------------------------------------------------------- 收支明细

@pytest.mark.spec("BAL-5")
@pytest.mark.parametrize("filters", [
    {}, {"type": "deduct", "product": "cvm"}, {"type": "recharge"}, {"start": "MIDDLE"},
    {"end": "MIDDLE", "product": "cvm"}, {"product": "no-such-product"},
])
def test_the_transactions_page_shows_what_the_api_shows(rt, ledger, filters):
    uin, middle = ledger
    filters = {k: middle if v == "MIDDLE" else v for k, v in filters.items()}
    http = logged_in(rt, "acme-finance")
    page = http.get(f"/console/transactions?{urlencode(filters)}")
    assert page.status_code == 200, page.text
    expected = api(rt, uin, "transactions", **filters)
    total = int(re.search(r"data-total>共 (\d+) 条<", page.text).group(1))
    assert total == expected["total"]
    shown = rows(page.text)
    assert len(shown) == min(20, expected["total"])
    for row, item in zip(shown, expected["items"], strict=False):
        assert {f: plain(row[f]) for f in FEN} == {f: item[f] for f in FEN}
        assert row["created_at"] == item["created_at"]  # business time, as the API gives it
        assert re.search(rf'data-type="{item["action_type"]}"', page.text)
    if not expected["items"]:
        assert "没有符合条件的收支记录" in page.text


NEXT = re.compile(r'<a rel="next" href="/console/transactions\?([^"]*)"')
PREV = re.compile(r'<a rel="prev" href="/console/transactions\?([^"]*)"')


@pytest.mark.spec("BAL-5")
def test_transactions_are_paged_by_keyset_and_htmx_gets_the_part(rt, ledger):
    uin, _ = ledger
    http = logged_in(rt)
    first = http.get("/console/transactions?product=cvm").text
    assert "第 1 / 2 页" in first and 'rel="next"' in first and 'rel="prev"' not in first
    last_id = re.findall(r'<tr data-entry="(\d+)">', first)[-1]
    assert f'hx-get="/console/transactions/table?product=cvm&amp;page=2&amp;after={last_id}"' \
        in first
    second = http.get(f"/console/transactions/table?product=cvm&page=2&after={last_id}",
                      headers={"HX-Request": "true"})
    assert second.status_code == 200 and "<html" not in second.text
    assert second.headers["hx-push-url"] == \
        f"/console/transactions?product=cvm&page=2&after={last_id}"
    expected = api(rt, uin, "transactions", product="cvm", offset="20", limit="20")["items"]
    assert [plain(r["amount"]) for r in rows(second.text)] == [i["amount"] for i in expected]
    assert len(expected) == 2 and "第 2 / 2 页" in second.text
    assert [r["amount"] for r in rows(second.text)] == ["-¥1.01", "-¥1.00"]  # oldest last
    assert PREV.search(second.text).group(1) == "product=cvm&amp;page=1"
    assert http.get("/console/transactions?product=cvm&page=2").text.count("<tr data-entry") == 2
    big = rows(http.get("/console/transactions?product=cbs").text)[0]
    assert (big["amount"], big["cash_amount"]) == ("-¥250,000.00", "-¥250,000.00")


@pytest.mark.spec("BAL-5")
def test_keyset_pages_walk_both_ways_and_do_not_shift_when_entries_arrive(rt, ledger,
                                                                          monkeypatch):
    """22 cvm entries at one instant (the id breaks the tie), 5 a page: forwards by
    ``after``, back by ``before``, the same rows as the API's list; an entry posted
    meanwhile does not shift the next page (an offset would)."""
    uin, _ = ledger
    monkeypatch.setattr("feecenter.console.ledger.PAGE_SIZE", 5)
    http = logged_in(rt)
    everything = [i["amount"] for i in api(rt, uin, "transactions", product="cvm",
                                           limit="100")["items"]]
    income = revenue(rt)
    page, pages, address = http.get("/console/transactions?product=cvm").text, [], None
    while True:
        pages.append([plain(r["amount"]) for r in rows(page)])
        if len(pages) == 1:  # a newer entry arrives while the customer reads page 1
            with transaction(rt.engine) as conn:
                funds.spend(conn, rt.clock, uin, 9_99, key="ledger:late", postpaid=False,
                            revenue_account_id=income, product_code="cvm")
        found = NEXT.search(page)
        if not found:
            break
        address = found.group(1).replace("&amp;", "&")
        page = http.get(f"/console/transactions?{address}").text
    assert [a for p in pages for a in p] == everything and [len(p) for p in pages] == [5, 5, 5, 5, 2]
    assert "page=5&after=" in address
    back = []
    while (found := PREV.search(page)):
        page = http.get(f"/console/transactions?{found.group(1).replace('&amp;', '&')}").text
        back.append([plain(r["amount"]) for r in rows(page)])
    assert back[:-1] == pages[3:0:-1]  # pages 4, 3, 2 by ``before``
    assert back[-1][0] == "-9.99" and back[-1][1:] == pages[0][:4]  # page 1: the newest
    refused = http.get("/console/transactions?after=1&before=2")
    assert refused.status_code == 400 and 'data-error="page"' in refused.text
    stranger = http.get("/console/transactions?after=999999999")
    assert stranger.status_code == 400 and "翻页位置无效" in stranger.text


@pytest.mark.spec("BAL-5")
def test_the_csv_is_the_filtered_list_with_a_bom_in_the_pages_language(rt, ledger, monkeypatch):
    uin, _ = ledger
    monkeypatch.setattr("feecenter.console.ledger.CSV_BATCH", 5)  # several batches, one 4 short
    http = logged_in(rt, "acme-finance")
    response = http.get("/console/transactions.csv?type=deduct")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == \
        f'attachment; filename="transactions-{uin}.csv"'
    assert response.content.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert table[0] == ["时间", "类型", "产品", "金额（元）", "现金（元）", "赠送金（元）",
                        "代金券（元）", "交易后余额（元）", "订单", "备注"]
    expected = api(rt, uin, "transactions", type="deduct", limit="100")
    assert len(table) - 1 == expected["total"] == 24  # every batch, not only the first
    assert [(r[0], r[3], r[4], r[5], r[6], r[7]) for r in table[1:]] == [
        (i["created_at"], i["amount"], i["cash_amount"], i["gift_amount"], i["coupon_amount"],
         i["balance_after"]) for i in expected["items"]]
    assert {r[1] for r in table[1:]} == {"扣费"}
    assert table[2][9] == "'=cmd|' /C calc'!A0"  # no formula for a spreadsheet
    assert table[1][2] == XSS  # CSV is data, not HTML
    http.cookies.set("fc_lang", "en", path="/console")
    english = http.get("/console/transactions.csv?product=cvm&type=deduct")
    header, *entries = csv.reader(io.StringIO(english.content.decode("utf-8-sig")))
    assert header[:4] == ["Time", "Type", "Product", "Amount (CNY)"] and len(entries) == 22
    assert entries[0][1] == "Deduction"


@pytest.mark.spec("ACC-2")
@pytest.mark.parametrize("path", ["/console/transactions", "/console/transactions.csv",
                                  "/console/bills"])
def test_readonly_users_get_the_services_refusal(rt, ledger, path):
    http = logged_in(rt, "acme-readonly")
    response = http.get(path)
    assert response.status_code == 403 and response.headers["content-type"].startswith("text/html")
    assert re.search(r"data-denied>([^<]*)<", response.text).group(1) == "缺少财务权限，请联系主账号授权"
    assert "data-entry" not in response.text and "data-line" not in response.text


def test_hostile_product_and_memo_are_escaped(rt, ledger):
    page = logged_in(rt).get("/console/transactions").text
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
    # a hostile filter comes back as the field's value and in the links, escaped
    reflected = logged_in(rt).get("/console/transactions", params={"product": XSS}).text
    assert XSS not in reflected
    assert 'name="product" value="&lt;script&gt;alert(1)&lt;/script&gt;"' in reflected
    assert 'href="/console/transactions.csv?product=%3Cscript%3Ealert%281%29%3C%2Fscript%3E"' \
        in reflected


@pytest.mark.parametrize("query, field, zh, en", [
    ("start=2026-13-01", "start", "时间格式错误", "malformed time"),
    ("end=yesterday", "end", "时间格式错误", "malformed time"),
    ("type=bogus", "type", "未知的收支类型", "unknown transaction type"),
    ("page=abc", "page", "页码须为不小于 1 的整数", "The page must be a whole number from 1."),
    ("page=0", "page", "页码须为不小于 1 的整数", "The page must be a whole number from 1."),
    ("product=cvm%00", "product", "不含控制字符", "without control characters"),
    ("product=" + "x" * 101, "product", "不超过 100 个字符", "at most 100 characters"),
])
def test_a_malformed_transaction_filter_is_shown_at_its_field(rt, ledger, query, field, zh, en):
    http = logged_in(rt)
    response = http.get(f"/console/transactions?{query}")
    assert response.status_code == 400
    assert zh in re.search(rf'data-error="{field}">([^<]*)<', response.text).group(1)
    assert "data-entry" not in response.text
    part = http.get(f"/console/transactions/table?{query}", headers={"HX-Request": "true"})
    assert part.status_code == 200 and f'data-error="{field}"' in part.text  # htmx swaps it
    assert http.get(f"/console/transactions.csv?{query}").status_code == 400
    http.cookies.set("fc_lang", "en", path="/console")
    assert en in http.get(f"/console/transactions?{query}").text


# ---------------------------------------------------------------- 账单 (L3 bill lines)

def add_line(rt, uin: int, n: int, **values) -> None:
    start = rt.clock.now().replace(tzinfo=None, minute=0, second=0, microsecond=0) \
        - timedelta(hours=n + 1)
    line = {"uin": uin, "resource_id": f"ins-{n}", "resource_name": None, "product_code": "cvm",
            "region": "ap-guangzhou", "billing_item": "cpu", "project_id": 0,
            "project_name": "默认项目", "cycle": "hour",
            "period_key": start.strftime("%Y-%m-%d %H"), "period_start": start,
            "period_end": start + timedelta(hours=1), "quantity": 2_000_000,
            "package_quantity": 0, "price_kind": "list", "unit_price": 50_000_000,
            "list_amount": 100_000_000, "discount_bp": 8_000, "discounted_amount": 80_000_000,
            "deducted": 80, "rounding_diff": 0, "voucher_paid": 0, "cash_paid": 60,
            "gift_paid": 20, "credit_paid": 0, "arrears": 0, "txn_id": None,
            "deducted_at": start + timedelta(hours=1), "kind": "charge", "sequence": 0,
            "adjusts_line_id": None, "reason": None, "stopped_quantity": 0, **values}
    with transaction(rt.engine) as conn:
        conn.execute(bill_lines.insert().values(**line))


@pytest.fixture
def billed(rt, shop):  # noqa: F811
    """Three lines of this month: one at the list price, one at a contract price
    with a stopped part, one adjustment of a hostile product with a hostile reason."""
    add_line(rt, shop, 0)
    add_line(rt, shop, 1, price_kind="contract", resource_id="ins-stopped",
             stopped_quantity=1_500_000, deducted=25, cash_paid=25, gift_paid=0)
    add_line(rt, shop, 2, product_code=XSS, kind="adjustment", sequence=1, reason=XSS,
             resource_id="ins-x")
    return shop, business_time_text(rt.clock.now() - timedelta(hours=1))[:7]


@pytest.mark.spec("BIL-1", "BIL-3", "BIL-6", "ARR-3")
@pytest.mark.parametrize("filters", [{}, {"month": "THIS"}, {"month": "THIS", "product": "cvm"},
                                     {"resource": "ins-stopped"}, {"month": "2020-01"}])
def test_the_bills_page_shows_what_the_api_shows(rt, billed, filters):
    uin, month = billed
    filters = {k: month if v == "THIS" else v for k, v in filters.items()}
    page = logged_in(rt, "acme-finance").get(f"/console/bills?{urlencode(filters)}")
    assert page.status_code == 200, page.text
    expected = api(rt, uin, "bill-lines", month=filters.get("month"),
                   product=filters.get("product"), resource_id=filters.get("resource"))
    assert 'data-statistic-period="deduction_time">统计周期：按扣费时间 (deduction_time)' in page.text
    assert expected["statistic_period"] == "deduction_time"
    assert re.search(r"data-total>共 (\d+) 条<", page.text).group(1) == str(expected["total"])
    shown = rows(page.text, LINE)
    assert len(shown) == len(expected["items"])
    for row, item in zip(shown, expected["items"], strict=True):
        for name in ("deducted", "voucher_paid", "gift_paid", "cash_paid", "arrears"):
            assert plain(row[name]) == item[name]
        for name in ("quantity", "package_quantity", "discounted_amount", "deducted_at"):
            assert row[name] == item[name]
        assert row["period"] == f'{item["period_start"]} – {item["period_end"]}'
        assert row["unit_price"] == (item["unit_price"] or "-")  # BIL-6
        assert row["list_amount"] == (item["list_amount"] or "-")
        assert row["discount"] == ("-" if item["discount_bp"] is None
                                   else f'{item["discount_bp"] / 10_000:g}')
        assert row["stopped_quantity"].split("<br>")[0] == item["stopped_quantity"]
        if item["not_charged_reason"]:  # ARR-3, in the page's language
            assert "资源因欠费停服，停服期间的用量不计费" in row["stopped_quantity"]


@pytest.mark.spec("BIL-1")
def test_bill_lines_are_paged_by_keyset_both_ways(rt, billed, monkeypatch):
    uin, _ = billed
    for n in range(3, 8):
        add_line(rt, uin, n, resource_id=f"ins-more-{n}")
    monkeypatch.setattr("feecenter.console.ledger.PAGE_SIZE", 3)
    http = logged_in(rt, "acme-finance")
    expected = [i["resource_id"] for i in api(rt, uin, "bill-lines")["items"]]
    page, pages = http.get("/console/bills").text, []
    link = re.compile(r'<a rel="(next|prev)" href="/console/bills\?([^"]*)"')
    while True:
        pages.append([row["resource"] for row in rows(page, LINE)])
        found = dict(link.findall(page))
        if "next" not in found:
            break
        assert "after=" in found["next"]
        page = http.get(f"/console/bills?{found['next'].replace('&amp;', '&')}").text
    assert [r for p in pages for r in p] == expected and [len(p) for p in pages] == [3, 3, 2]
    found = dict(link.findall(page))
    assert "before=" in found["prev"]
    back = http.get(f"/console/bills?{found['prev'].replace('&amp;', '&')}").text
    assert [row["resource"] for row in rows(back, LINE)] == pages[1]


def test_contract_lines_show_a_dash_and_stopped_use_its_reason(rt, billed):
    http = logged_in(rt)
    [line] = rows(http.get("/console/bills?resource=ins-stopped").text, LINE)
    assert (line["unit_price"], line["list_amount"], line["discount"]) == ("-", "-", "-")
    assert line["quantity"] == "2.000000" and line["stopped_quantity"].startswith("1.500000")
    http.cookies.set("fc_lang", "en", path="/console")
    english = http.get("/console/bills?resource=ins-stopped").text
    assert "used while the resource was stopped for arrears: not charged" in english
    assert "Statistic period: by deduction time (deduction_time)" in english


def test_a_hostile_product_and_reason_are_escaped_on_the_bills_page(rt, billed):
    page = logged_in(rt).get("/console/bills").text
    assert XSS not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2  # product and reason


@pytest.mark.parametrize("query, field, zh", [
    ("month=2026-13", "month", "月份格式应为 YYYY-MM"), ("month=２０２６-01", "month", "月份格式应为"),
    ("page=-1", "page", "页码须为不小于 1 的整数"),
    ("resource=ins%01x", "resource", "不含控制字符"), ("product=%7F", "product", "不含控制字符"),
])
def test_a_malformed_bills_filter_is_shown_at_its_field(rt, billed, query, field, zh):
    http = logged_in(rt)
    response = http.get(f"/console/bills?{query}")
    assert response.status_code == 400
    assert zh in re.search(rf'data-error="{field}">([^<]*)<', response.text).group(1)
    part = http.get(f"/console/bills/table?{query}", headers={"HX-Request": "true"})
    assert part.status_code == 200 and f'data-error="{field}"' in part.text
    http.cookies.set("fc_lang", "en", path="/console")
    if field == "month":
        assert "month must be YYYY-MM" in http.get(f"/console/bills?{query}").text


def test_the_csv_ends_where_the_download_started(rt, ledger):
    """Entries later than the download's start stay out, so that entries posted while it
    streams cannot shift its batches (set here by moving the clock back: the last two
    deductions were posted an hour after the 22 of cvm)."""
    http = logged_in(rt)
    rt.clock.advance(minutes=-30)
    response = http.get("/console/transactions.csv?type=deduct")
    entries = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))[1:]
    assert len(entries) == 22 and {e[2] for e in entries} == {"cvm"}
