"""环比分析 (month over month, BIL-8) in a real browser (Debian's chromium through
Playwright; skipped without it, except under CI=true): a customer whose
December holds a new purchase, a renewal onto the unified expiry day and grown
postpaid usage at a raised price picks November and December and sees each
category with its amount and its resources; a previous month after the month
is refused on the page, naming the field. The page passes axe (serious and
critical) with every field labelled. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import pytest

from feecenter.auth import sessions
from feecenter.db.engine import transaction
from tests.helpers import OPS
from tests.test_bills_month_over_month import MONTH, PREVIOUS, months  # noqa: F401 - a fixture
from tests.test_console_a11y_browser import UNLABELLED, severe_violations
from tests.test_console_browser import (  # noqa: F401 - browser_page is a fixture
    PASSWORD, browser_page, log_in, shooter, watch_errors)


@pytest.mark.spec("BIL-8")
def test_a_customer_sees_each_category_with_its_amount(
        rt, months, live_server_on_test_clock, browser_page, request):  # noqa: F811
    _, address = live_server_on_test_clock
    m = months
    with transaction(rt.engine) as conn:
        sessions.set_password(conn, rt.clock, OPS, m["uin"], None, PASSWORD)
    page = browser_page
    problems, shot = watch_errors(page), shooter(page, request)
    log_in(page, address, "month-over-month", "/console/bills/compare")
    assert page.locator("h1").inner_text() == "环比分析"
    # the default: this business month (December) against the one before
    assert page.locator('[data-total="current"]').inner_text() == "¥512.52"
    page.fill("input[name=month]", MONTH)
    page.fill("input[name=previous]", PREVIOUS)
    page.click("form.compare-months button[type=submit]")
    page.wait_for_url(f"http://{address}/console/bills/compare?month={MONTH}&previous={PREVIOUS}")
    assert page.locator('[data-total="previous"]').inner_text() == "¥190.42"
    assert page.locator('[data-total="current"]').inner_text() == "¥512.52"
    assert page.locator('[data-total="difference"]').inner_text() == "¥322.10"

    def amount(category: str, resource: str | None = None) -> str:
        section = page.locator(f'section[data-category="{category}"]')
        if resource is None:
            return section.locator("h2 [data-amount]").inner_text()
        return section.locator(f'tr[data-resource="{resource}"] [data-amount]').inner_text()

    assert page.locator('section[data-category="new_purchases"] h2').inner_text().startswith("新购")
    assert amount("new_purchases") == "¥0.50"
    assert amount("new_purchases", m["p2"]) == "¥178.00"  # bought in December
    assert amount("new_purchases", m["p1"]) == "-¥178.00"  # November's purchase
    assert amount("renewals") == amount("renewals", m["p1"]) == "¥178.00"
    assert amount("unified_expiry") == "¥126.12"
    assert amount("expired_discounts") == amount("expired_discounts", m["b"]) == "¥0.98"
    assert amount("price_changes") == amount("price_changes", m["a"]) == "¥5.00"
    assert amount("usage_growth") == "¥11.50"
    assert amount("usage_growth", m["a"]) == "¥12.00"
    assert amount("usage_growth", m["d"]) == "-¥0.50"
    assert page.locator('section[data-category="usage_growth"] tr[data-resource] a'
                        ).first.inner_text() == "web"  # the name the customer gave
    assert page.locator('section[data-category="other"]').count() == 0
    shot("bill-compare")
    assert severe_violations(page) == [] and page.evaluate(UNLABELLED) == []  # axe, labels
    assert problems == []  # no CSP violation, no script error

    page.fill("input[name=previous]", "2027-01")
    page.click("form.compare-months button[type=submit]")
    page.wait_for_selector("[data-error-field=previous]")
    assert "比较月份须早于所分析的月份" in page.locator("[data-error]").inner_text()
    assert page.locator("input[name=previous]").get_attribute("aria-invalid") == "true"
    assert page.locator("section[data-category]").count() == 0
    shot("bill-compare-refused")
    assert [p for p in problems if "400 (Bad Request)" not in p] == []  # the refusal's status
    problems.clear()

    page.goto(f"http://{address}/console/bills/compare?month={MONTH}&previous={PREVIOUS}")
    page.click('nav.langs a[lang="en"]')  # the same page in English
    page.wait_for_selector('section[data-category="renewals"]')
    assert page.locator("h1").inner_text() == "Month over month"
    assert page.locator('section[data-category="unified_expiry"] h2').inner_text().startswith(
        "Unified expiry")
    assert amount("unified_expiry") == "¥126.12"
    assert problems == []  # no CSP violation, no script error
