"""The cost-bill pages in a real browser (Debian's chromium through Playwright; skipped
without it, except under CI=true): a customer with prepaid and postpaid lines opens
账单概览, sees the month's totals and the three charts drawn by the vendored ECharts
with data, switches to 汇总 (by product), goes through 资源 to a refunded resource's
lines and sees the refund negative, then 消耗账单 with its explanation; axe-core finds
no serious or critical violation on each page and every field has a label.
Screenshots go to artifacts/screenshots/.

The server runs on the test's clock (5 March 2026), the account is
tests/test_bills_rollup.py's March, rolled up.
"""

from __future__ import annotations

import pytest

from feecenter.auth import sessions
from feecenter.bills import service
from feecenter.db.engine import transaction
from tests.helpers import OPS
from tests.test_bills_rollup import MONTH, _order, _refresh_all, month  # noqa: F401 - a fixture
from tests.test_console_a11y_browser import UNLABELLED, severe_violations
from tests.test_console_bills_pages import ACCOUNT, shown_yuan
from tests.test_console_browser import (  # noqa: F401 - browser_page is a fixture
    PASSWORD, browser_page, log_in, shooter, watch_errors)

CHART_POINTS = """els => els.map(el => {
  const chart = window.echarts.getInstanceByDom(el);
  return [el.querySelectorAll("canvas").length, chart.getOption().series[0].data.length];
})"""


@pytest.mark.spec("BIL-1", "BIL-5")
def test_read_the_overview_and_its_charts_the_product_summary_and_a_refund(
        rt, month, live_server_on_test_clock, browser_page, request):  # noqa: F811
    _, address = live_server_on_test_clock
    uin = month["uin"]
    _refresh_all(rt)
    with transaction(rt.engine) as conn:
        sessions.set_password(conn, rt.clock, OPS, uin, None, PASSWORD)
    with rt.engine.connect() as conn:
        total = service.overview(conn, OPS, uin, MONTH)["total"]
        by_product = service.summary(conn, OPS, uin, MONTH, "product")
    refunded = _order(rt, uin, month["orders"]["second"])["resource_id"]
    from playwright.sync_api import expect

    page = browser_page
    problems, shot = watch_errors(page), shooter(page, request)
    log_in(page, address, ACCOUNT, "/console/bills/overview")
    assert page.locator("h1").inner_text() == "账单概览"
    expect(page.locator('[data-total="deducted"]')).to_have_text(shown_yuan(total["deducted"]))
    expect(page.locator('[data-total="lines"]')).to_have_text(str(total["lines"]))
    expect(page.locator("[data-chart][data-chart-drawn]")).to_have_count(3)
    drawn = page.locator("[data-chart]").evaluate_all(CHART_POINTS)
    assert drawn == [[1, 31], [1, len(by_product)], [1, 1]]  # days, products, one project
    assert page.locator("#chart-by-day canvas").bounding_box()["height"] > 100
    shot("bills-overview")
    assert (severe_violations(page), page.evaluate(UNLABELLED)) == ([], [])

    page.click('nav.bill-tabs a[data-tab="summary"]')
    page.wait_for_url(f"http://{address}/console/bills/summary?month={MONTH}")
    assert page.locator("h1").inner_text() == "账单汇总"
    expect(page.locator('a[data-by="product"]')).to_have_attribute("aria-current", "page")
    groups = page.locator("tr[data-group]")
    expect(groups).to_have_count(len(by_product))
    assert groups.first.get_attribute("data-group") == by_product[0]["product"]
    expect(groups.first.locator('td[data-col="deducted"]')).to_have_text(
        shown_yuan(by_product[0]["deducted"]))
    shot("bills-summary")
    assert (severe_violations(page), page.evaluate(UNLABELLED)) == ([], [])

    page.click('nav.bill-tabs a[data-tab="resources"]')
    page.wait_for_selector(f'tr[data-resource="{refunded}"]')
    page.click(f'a[data-lines-of="{refunded}"]')
    page.wait_for_selector("tr[data-line]")
    assert page.locator("h1").inner_text() == "账单明细"
    refund = page.locator('tr[data-kind="refund"]')
    expect(refund).to_have_count(1)
    expect(refund.locator('td[data-col="kind"]')).to_have_text("退订")
    expect(refund.locator('td[data-col="deducted"]')).to_have_text("-¥178.00")
    expect(refund.locator('td[data-col="deducted"]')).to_have_css("color", "rgb(26, 127, 55)")
    expect(page.locator('tr[data-kind="new"] td[data-col="deducted"]')).to_have_text("¥178.00")
    shot("bills-lines")
    assert (severe_violations(page), page.evaluate(UNLABELLED)) == ([], [])

    page.click('nav.bill-tabs a[data-tab="consumption"]')
    page.wait_for_selector("[data-why-not-line-by-line]")
    assert page.locator("h1").inner_text() == "消耗账单"
    expect(page.locator("[data-why-not-line-by-line]")).to_contain_text("无法逐行对账")
    shot("bills-consumption")
    assert (severe_violations(page), page.evaluate(UNLABELLED)) == ([], [])
    assert problems == []  # no CSP violation, no script error
