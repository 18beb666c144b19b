"""发票 in a real browser (Debian's chromium through Playwright; skipped without it,
except under CI=true): an enterprise customer that paid a month of cvm sets its title,
applies for an ordinary invoice through the preview, sees it 已开具 (issued by the
server right after the application, as the app does), downloads its PDF; then asks
for a reversal, which an operator releases in the operator console, and the customer
sees the invoice 已红冲. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from feecenter.auth import operator_sessions, sessions
from feecenter.auth import service as auth
from feecenter.db.engine import transaction
from tests.helpers import OPS, add_cash, buy, load_sample_catalog, new_account, pay
from tests.test_console_browser import (  # noqa: F401 - browser_page is a fixture
    PASSWORD, browser_page, log_in, shooter, watch_errors)

ENTITY = "杭州示例网络有限公司"
USCC = "91310000MA1FL4TQ9U"


def _until(page, selector: str, timeout_s: int = 30) -> None:
    """Reload until ``selector`` shows (the issuing runs after the answer)."""
    for _ in range(timeout_s * 2):
        if page.locator(selector).count():
            return
        page.wait_for_timeout(500)
        page.reload()
    raise AssertionError(f"{selector} never showed")


@pytest.mark.spec("INV-5", "INV-6")
def test_title_apply_issue_download_then_a_released_reversal(live_server, browser_page,  # noqa: F811
                                                             request):
    runtime, address = live_server
    load_sample_catalog(runtime)
    uin = new_account(runtime, "browser-invoices", enterprise_name=ENTITY, uscc=USCC,
                      email="finance@example.com")
    add_cash(runtime, uin, 5_000_00)
    pay(runtime, uin, buy(runtime, uin))
    with transaction(runtime.engine) as conn:
        sessions.set_password(conn, runtime.clock, OPS, uin, None, PASSWORD)
        auth.create_operator(conn, runtime.clock, OPS, "dora")
        operator_sessions.set_password(conn, runtime.clock, OPS, "dora", PASSWORD)
    from playwright.sync_api import expect

    page = browser_page
    problems, shot = watch_errors(page), shooter(page, request)
    base = f"http://{address}"
    log_in(page, address, "browser-invoices", "/console/invoices/title")
    page.select_option("select[name=title_kind]", "enterprise")
    page.fill("input[name=title]", ENTITY)
    page.fill("input[name=tax_id]", USCC)
    page.click("button[data-action=save-title]")
    expect(page.locator("input[name=title]")).to_have_value(ENTITY)
    shot("invoice-title")

    page.goto(f"{base}/console/invoices")
    expect(page.locator("[data-invoiceable]")).not_to_have_text("¥0.00")
    page.select_option("select[name=kind]", "ordinary")
    page.fill("input[name=amount]", "10.60")
    page.click("button[data-action=preview]")
    expect(page.locator("h1")).to_have_text("确认开票申请")
    expect(page.locator("tr[data-line] td[data-tax]")).to_have_text("¥0.60")
    shot("invoice-preview")
    page.click("button[data-action=apply]")
    page.wait_for_url(f"{base}/console/invoices?applied=*")
    row = page.locator("tr[data-invoice]")
    expect(row).to_have_count(1)
    _until(page, 'tr[data-invoice] [data-state="issued"]')
    expect(row.locator("[data-state]")).to_have_text("已开具")
    shot("invoice-issued")
    with page.expect_download() as started:
        row.locator("a[data-download=pdf]").click()
    assert Path(started.value.path()).read_bytes().startswith(b"%PDF")

    row.locator("td a").first.click()
    page.select_option("select[name=treatment]", "none")
    page.select_option("select[name=reason]", "wrong_details")
    page.fill("textarea[name=explanation]", "抬头地址有误，需重开")
    page.click("button[data-action=reverse]")
    expect(page.locator("[data-reversal-state]")).to_have_attribute("data-reversal-state",
                                                                    "submitted")

    page.goto(f"{base}/console/ops/invoice-reversals?state=submitted")
    page.fill("input[name=name]", "dora")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/ops/invoice-reversals?state=submitted")
    shot("invoice-reversal-queue")
    page.click("tr[data-reversal] button[data-action=release]")
    expect(page.locator("tr[data-reversal]")).to_have_count(0)

    page.goto(f"{base}/console/invoices")
    blue = page.locator('tr[data-invoice] [data-state="reversed"]')
    expect(blue).to_have_text("已红冲")
    shot("invoice-reversed")
    assert problems == []
