"""The console's cost-bill pages (console/bills.py): 账单概览 (L0 totals, by pay mode, the
precision difference, the charts' data), 汇总 (L1), 资源 (L2), 明细 (L3, paged, htmx),
消耗账单 (BIL-4) with why it does not reconcile line by line, the tab bar on every bill
page, bad input at its field in both languages (4xx, never a 500), the readonly
user's refusal, and each page in one language only.

The account is tests/test_bills_rollup.py's March: postpaid lines (a contract-price
one among them), prepaid purchases, an upgrade, a downgrade and a refund.
Every test runs on SQLite and PostgreSQL (the ``rt`` fixture), in-process.
"""

from __future__ import annotations

import html
import json
import re

import pytest

from feecenter.accounts import service as accounts
from feecenter.bills import consumption
from feecenter.bills import service
from feecenter.console import bills as bill_pages
from feecenter.console import i18n
from feecenter.db.engine import transaction
from feecenter.money import format_rated, format_yuan
from tests.helpers import OPS, new_account
from tests.test_bills_rollup import MONTH, _l3, _refresh_all, month  # noqa: F401 - a fixture
from tests.test_console import XSS, logged_in, set_password
from tests.test_console_translations import catalog, shown_texts

ACCOUNT = "bills-rollup"  # the fixture's account
PAGES = ("/console/bills/overview", "/console/bills/summary", "/console/bills/resources",
         "/console/bills/lines", "/console/bills/consumption")
CHART = re.compile(r"data-chart='([^']*)'")
ROW = re.compile(r'<tr data-(?:group|resource|line)="([^"]*)"[^>]*>(.*?)</tr>', re.S)
CELL = re.compile(r'data-col="(\w+)"[^>]*>(.*?)</td>', re.S)


@pytest.fixture
def billed(rt, month):  # noqa: F811 - the fixture imported above
    """The March account rolled up, its owner and a readonly user with passwords."""
    _refresh_all(rt)
    with transaction(rt.engine) as conn:
        accounts.add_user(conn, rt.clock, OPS, month["uin"], "bills-readonly", "readonly")
    set_password(rt, month["uin"], None)
    set_password(rt, month["uin"], "bills-readonly")
    return month


def owner(rt, lang: str = "zh-CN"):
    http = logged_in(rt, ACCOUNT, ACCOUNT)
    http.cookies.set(i18n.COOKIE, lang, path="/console")
    return http


def rows(page: str) -> dict[str, dict[str, str]]:
    return {key: {name: text.strip() for name, text in CELL.findall(body)}
            for key, body in ROW.findall(page)}


def shown_yuan(fen: int) -> str:
    """As the ``yuan`` filter shows fen: "¥1,234.56", "-¥12.30"."""
    text = format_yuan(abs(fen))
    whole, cents = text.split(".")
    return f"{'-' if fen < 0 else ''}¥{int(whole):,}.{cents}"


def charts(page: str) -> list[dict]:
    return [json.loads(html.unescape(found)) for found in CHART.findall(page)]


def figures(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-total="(\w+)">([^<]*)<', page))


# ---------------------------------------------------------------- 概览

@pytest.mark.spec("BIL-1")
def test_the_overview_shows_the_months_totals_by_pay_mode_and_the_charts_data(rt, billed):
    uin = billed["uin"]
    with rt.engine.connect() as conn:
        l0 = service.overview(conn, OPS, uin, MONTH)
        days = service.daily_totals(conn, OPS, uin, MONTH)
        by_product = service.summary(conn, OPS, uin, MONTH, "product")
        by_project = service.summary(conn, OPS, uin, MONTH, "project")
    http = owner(rt)
    page = http.get("/console/bills/overview")  # this business month by default: March
    assert page.status_code == 200, page.text
    chosen = http.get(f"/console/bills/overview?month={MONTH}").text
    assert (figures(chosen), charts(chosen)) == (figures(page.text), charts(page.text))
    total = l0["total"]
    assert total["lines"] == len(_l3(rt, uin)) > 0
    assert figures(page.text) == {
        "original_cost": format_rated(total["original_cost"]),
        "discounted_cost": format_rated(total["discounted_cost"]),
        "deducted": shown_yuan(total["deducted"]), "voucher_paid": shown_yuan(total["voucher_paid"]),
        "cash_paid": shown_yuan(total["cash_paid"]), "gift_paid": shown_yuan(total["gift_paid"]),
        "precision_diff": format_rated(l0["precision_difference"]), "lines": str(total["lines"])}
    assert l0["precision_difference"] != 0  # its own category, not hidden in a total
    modes = {m["pay_mode"]: m for m in l0["by_pay_mode"]}
    for mode, shown in re.findall(r'<tr data-pay-mode="(\w+)">(.*?)</tr>', page.text, re.S):
        cells = dict(CELL.findall(shown))
        assert cells["deducted"] == shown_yuan(modes[mode]["deducted"])
        assert cells["lines"] == str(modes[mode]["lines"])
    assert set(re.findall(r'<tr data-pay-mode="(\w+)">', page.text)) == {"prepaid", "postpaid"}
    assert "包年包月" in page.text and "按量计费" in page.text

    by_day, products, projects = charts(page.text)
    assert by_day["kind"] == "bar" and len(by_day["labels"]) == 31
    assert by_day["labels"][0] == "03-01" and by_day["labels"][-1] == "03-31"
    per_day = dict(zip(by_day["labels"], by_day["values"], strict=True))
    assert {label: fen for label, fen in per_day.items() if fen} == {
        d["day"].strftime("%m-%d"): d["deducted"] for d in days if d["deducted"]}
    assert sum(by_day["values"]) == total["deducted"]
    assert products["kind"] == "pie" and products["values"] == [g["deducted"] for g in by_product]
    assert products["labels"][0] == "云服务器" and "cvm" not in products["labels"]
    assert projects["labels"] == [g["project_name"] for g in by_project]
    assert sum(projects["values"]) == total["deducted"]
    assert '<script src="/console/static/vendor/echarts.common.min.js" defer></script>' in page.text


def test_the_overview_of_a_month_without_costs_says_so(rt, billed):
    page = owner(rt).get("/console/bills/overview?month=2026-04")
    assert page.status_code == 200
    assert figures(page.text)["deducted"] == "¥0.00" and "本月暂无费用" in page.text
    assert 'data-month-link="2026-03"' in page.text and 'data-month-link="2026-05"' in page.text


# ---------------------------------------------------------------- 汇总, 资源

@pytest.mark.spec("BIL-1")
@pytest.mark.parametrize("by", ["product", "project", "region", "pay_mode"])
def test_each_summary_tab_shows_the_l1_groups(rt, billed, by):
    uin = billed["uin"]
    with rt.engine.connect() as conn:
        groups = service.summary(conn, OPS, uin, MONTH, by)
    page = owner(rt).get(f"/console/bills/summary?month={MONTH}&by={by}")
    assert page.status_code == 200, page.text
    shown = rows(page.text)
    assert list(shown) == [str(g[by]) for g in groups]  # largest deduction first
    for group in groups:
        cells = shown[str(group[by])]
        assert cells["deducted"] == shown_yuan(group["deducted"])
        assert cells["discounted_cost"] == format_rated(group["discounted_cost"])
        assert cells["lines"] == str(group["lines"])
    assert re.search(rf'data-by="{by}" class="active" aria-current="page"', page.text)
    if by == "pay_mode":
        assert shown["prepaid"]["group"] == "包年包月" and shown["postpaid"]["group"] == "按量计费"


@pytest.mark.spec("BIL-1")
def test_the_tag_tab_asks_for_a_key_then_groups_by_its_values(rt, billed):
    http = owner(rt)
    opened = http.get(f"/console/bills/summary?month={MONTH}&by=tag")
    assert opened.status_code == 200 and "data-choose-tag-key" in opened.text
    assert '<option value="env">' in opened.text  # the month's resources' keys
    page = http.get(f"/console/bills/summary?month={MONTH}&by=tag&tag_key=env")
    assert page.status_code == 200, page.text
    with rt.engine.connect() as conn:
        groups = service.summary(conn, OPS, billed["uin"], MONTH, "tag", "env")
    shown = rows(page.text)
    assert set(shown) == {"prod", ""}
    for group in groups:
        assert shown[group["tag_value"]]["deducted"] == shown_yuan(group["deducted"])
    assert "未设置该标签" in shown[""]["group"]


@pytest.mark.spec("BIL-1", "BIL-5")
def test_the_resources_tab_shows_l2_and_leads_to_a_resources_lines(rt, billed):
    uin = billed["uin"]
    with rt.engine.connect() as conn:
        found = service.resource_bills(conn, OPS, uin, MONTH)
    http = owner(rt)
    page = http.get(f"/console/bills/resources?month={MONTH}")
    assert page.status_code == 200, page.text
    shown = rows(page.text)
    assert list(shown) == [r["resource_id"] for r in found]
    for resource in found:
        assert shown[resource["resource_id"]]["deducted"] == shown_yuan(resource["deducted"])
    assert "web-1" in shown[billed["vm"]]["resource"] and shown[billed["disk"]]["tags"] == "env=prod"
    refunded = next(r for r in found if r["deducted"] == 0 and r["lines"] == 2)  # bought, refunded
    link = re.search(rf'href="([^"]+)" data-lines-of="{refunded["resource_id"]}"', page.text)
    lines = http.get(html.unescape(link.group(1)))
    assert lines.status_code == 200
    kinds = [cells["kind"] for cells in rows(lines.text).values()]
    assert kinds == ["新购", "退订"]
    refund = re.search(r'<tr data-line="[^"]+" data-kind="refund" class="negative" data-negative>'
                       r'(.*?)</tr>', lines.text, re.S).group(1)
    assert dict(CELL.findall(refund))["deducted"].startswith("-¥")  # BIL-5


# ---------------------------------------------------------------- 明细

@pytest.mark.spec("BIL-1", "BIL-5", "BIL-6")
def test_the_lines_tab_shows_every_line_with_dashes_off_the_list_price(rt, billed):
    uin = billed["uin"]
    l3 = _l3(rt, uin)
    page = owner(rt).get(f"/console/bills/lines?month={MONTH}")
    assert page.status_code == 200, page.text
    shown = rows(page.text)
    assert list(shown) == [line["line_id"] for line in l3]
    assert f"data-total>共 {len(l3)} 条<" in page.text
    for line in l3:
        cells = shown[line["line_id"]]
        assert cells["deducted"] == shown_yuan(line["deducted"])
        assert cells["discounted_cost"] == format_rated(line["discounted_cost"])
        listed = line["price_kind"] == "list"
        assert (cells["original_cost"] == "-") is not listed  # BIL-6
        assert (cells["discount"] == "-") is not listed
        assert (cells["unit_price"] == "-") is (line["unit_price"] is None)  # a refund has none
    contract = next(line for line in l3 if line["item"] == "traffic")
    assert contract["price_kind"] == "contract"
    assert [shown[contract["line_id"]][name] for name in ("unit_price", "original_cost",
                                                          "discount")] == ["-", "-", "-"]
    negative = [line["line_id"] for line in l3 if line["deducted"] < 0]
    assert len(negative) == 2  # the downgrade and the refund (BIL-5)
    for line_id in negative:
        assert re.search(rf'data-line="{line_id}" data-kind="\w+" class="negative" data-negative',
                         page.text)
        assert shown[line_id]["deducted"].startswith("-¥")


@pytest.mark.spec("BIL-1")
def test_the_lines_are_paged_and_htmx_gets_the_part(rt, billed, monkeypatch):
    monkeypatch.setattr(bill_pages, "PAGE_SIZE", 3)
    l3 = [line["line_id"] for line in _l3(rt, billed["uin"])]
    http = owner(rt)
    first = http.get(f"/console/bills/lines?month={MONTH}").text
    assert list(rows(first)) == l3[:3] and "第 1 / 3 页" in first
    assert f'hx-get="/console/bills/lines/table?month={MONTH}&amp;page=2"' in first
    part = http.get(f"/console/bills/lines/table?month={MONTH}&page=2",
                    headers={"HX-Request": "true"})
    assert part.status_code == 200 and "<html" not in part.text
    assert part.headers["hx-push-url"] == f"/console/bills/lines?month={MONTH}&page=2"
    assert list(rows(part.text)) == l3[3:6] and 'rel="prev"' in part.text
    last = http.get(f"/console/bills/lines?month={MONTH}&page=3").text
    assert list(rows(last)) == l3[6:] and 'rel="next"' not in last


def test_month_lines_page_filters_one_resource_and_slices(rt, billed):
    uin, vm = billed["uin"], billed["vm"]
    with rt.engine.connect() as conn:
        everything = service.month_lines(conn, OPS, uin, MONTH)
        page, total = bill_pages.month_lines_page(conn, OPS, uin, MONTH, vm, 1, 1)
    of_vm = [line for line in everything if line["resource_id"] == vm]
    assert total == len(of_vm) == 2 and page == of_vm[1:2]


# ---------------------------------------------------------------- 消耗账单

@pytest.mark.spec("BIL-4")
def test_the_consumption_bill_and_why_it_does_not_match_line_by_line(rt, billed):
    uin = billed["uin"]
    with rt.engine.connect() as conn:
        bill = consumption.consumption_bill(conn, OPS, uin, MONTH)
        cost = service.overview(conn, OPS, uin, MONTH)["total"]
    page = owner(rt).get(f"/console/bills/consumption?month={MONTH}")
    assert page.status_code == 200, page.text
    assert figures(page.text) == {"prepaid": shown_yuan(bill["prepaid_total"]),
                                  "postpaid": shown_yuan(bill["postpaid_total"]),
                                  "total": shown_yuan(bill["total"])}
    assert bill["total"] != cost["deducted"]  # prepaid fees spread over their days
    for product in bill["by_product"]:
        shown = re.search(rf'<tr data-product="{product["product"]}"[^>]*>(.*?)</tr>',
                          page.text, re.S).group(1)
        assert dict(CELL.findall(shown))["total"] == shown_yuan(product["total"])
    why = re.search(r"data-why-not-line-by-line>(.*?)</aside>", page.text, re.S).group(1)
    assert "无法逐行对账" in why and "包年包月的费用平均分摊" in why
    english = owner(rt, "en").get(f"/console/bills/consumption?month={MONTH}").text
    assert "do not reconcile line by line" in english and "无法逐行对账" not in english


# ---------------------------------------------------------------- the tab bar, errors, refusals

TABS = ("overview", "summary", "resources", "lines", "consumption", "downloads", "compare",
        "period")


def test_every_bill_page_has_the_tab_bar_with_its_own_tab_active(rt, billed):
    http = owner(rt)
    for path, active in [*zip(PAGES, TABS, strict=False), ("/console/bills", "period")]:
        page = http.get(f"{path}?month={MONTH}").text
        nav = re.search(r'<nav class="tabs bill-tabs".*?</nav>', page, re.S).group(0)
        assert re.findall(r'data-tab="(\w+)"', nav) == list(TABS)
        assert re.findall(r'data-tab="(\w+)" class="active" aria-current="page"', nav) == [active]
        assert f'href="/console/bills/resources?month={MONTH}"' in nav
        assert 'href="/console/bills/downloads"' in nav and 'href="/console/bills/compare"' in nav
        assert 'href="/console/bills#statistic-period"' in nav
        for label in ("概览", "汇总", "资源", "明细", "消耗账单", "下载中心", "环比分析", "账单统计周期"):
            assert f">{label}</a>" in nav
        assert 'href="/console/bills" aria-current="page"' in page  # the menu's 账单


@pytest.mark.parametrize("path, query, field, zh, en", [
    ("overview", "month=2026-13", "month", "月份格式应为 YYYY-MM", "month must be YYYY-MM"),
    ("overview", "month=0000-01", "month", "月份格式应为", "month must be"),
    ("summary", "month=march&by=product", "month", "月份格式应为", "month must be"),
    ("summary", "by=colour", "by", "汇总维度须为", "by must be product"),
    ("summary", "by=tag&tag_key=", "tag_key", "按标签汇总须给出标签键", "by=tag needs a tag_key"),
    ("summary", "by=tag&tag_key=a%00b", "tag_key", "不含控制字符", "without control characters"),
    ("resources", "month=2026-00", "month", "月份格式应为", "month must be"),
    ("lines", "month=２０２６-03", "month", "月份格式应为", "month must be"),
    ("lines", "page=0", "page", "页码须为", "the page must be a whole number"),
    ("lines", "page=" + "9" * 5000, "page", "页码须为", "the page must be a whole number"),
    ("lines", "resource=a%01b", "resource", "不含控制字符", "without control characters"),
    ("consumption", "month=2026-3", "month", "月", "month"),
])
def test_bad_input_is_shown_at_its_field_in_the_pages_language(rt, path, query, field, zh, en):
    uin = new_account(rt, ACCOUNT)
    set_password(rt, uin, None)
    for lang, text in (("zh-CN", zh), ("en", en)):
        response = owner(rt, lang).get(f"/console/bills/{path}?{query}")
        assert response.status_code == 400, (lang, response.status_code)
        shown = re.search(rf'data-error-field="{field}">([^<]*)<', response.text)
        assert shown and text in shown.group(1), (lang, response.text[-2000:])
        assert "data-line=" not in response.text and "data-chart=" not in response.text


def test_a_hostile_by_or_resource_is_shown_as_text(rt, billed):
    http = owner(rt)
    response = http.get("/console/bills/summary", params={"by": XSS})
    assert response.status_code == 400 and XSS not in response.text
    response = http.get("/console/bills/lines", params={"resource": XSS})
    assert response.status_code == 200 and XSS not in response.text
    assert "&lt;script&gt;" in response.text and "共 0 条" in response.text


@pytest.mark.spec("ACC-2")
def test_a_readonly_user_gets_the_services_refusal(rt, billed):
    http = logged_in(rt, "bills-readonly", ACCOUNT)
    for path in PAGES:
        response = http.get(f"{path}?month={MONTH}")
        assert response.status_code == 403, path
        assert re.search(r"data-denied>([^<]*)<", response.text).group(1) == \
            "缺少财务权限，请联系主账号授权"
        assert "data-total=" not in response.text and "data-line=" not in response.text


def test_each_page_shows_its_messages_in_the_pages_language_only(rt, billed):
    entries = [m for m in catalog().values() if m.string != m.id and "%(" not in m.id]
    paths = [f"{path}?month={MONTH}" for path in PAGES] + [
        f"/console/bills/summary?month={MONTH}&by=tag", f"/console/bills/summary?month={MONTH}&by=pay_mode",
        f"/console/bills/summary?month={MONTH}&by=tag&tag_key=env", "/console/bills/overview?month=2026-13"]
    for lang, foreign in (("zh-CN", lambda m: m.id), ("en", lambda m: m.string)):
        http = owner(rt, lang)
        for path in paths:
            texts = shown_texts(http.get(path).text)
            assert sorted(foreign(m) for m in entries if foreign(m) in texts) == [], (lang, path)


def test_the_by_day_chart_has_every_day_of_the_month_and_a_later_deduction_day():
    """On usage time a month may hold its last usage deducted on the next month's first
    day (BIL-3): that day follows the month's own days."""
    from datetime import date

    chart = bill_pages._by_day_chart("2026-02", [{"day": date(2026, 2, 3), "deducted": 7},
                                                 {"day": date(2026, 3, 1), "deducted": -2}], "费用")
    assert chart["labels"][:3] == ["02-01", "02-02", "02-03"] and len(chart["labels"]) == 29
    assert chart["labels"][-1] == "03-01" and chart["values"][-1] == -2
    assert chart["values"][2] == 7 and sum(chart["values"]) == 5
