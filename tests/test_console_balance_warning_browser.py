"""余额预警 on 概览 in a real browser (Debian's chromium through Playwright; skipped
without it, except under CI=true): the console's shop (tests/test_console.py) spent
¥500,000.00 of postpaid lines two hours ago (an L3 line as settlement writes it,
tests/test_balance_warnings.py); its owner sees the estimate (2 days) and the warning
under the default 5 days, sets the days and an amount through the form and sees
them saved, the warning gone and back when the amount is above the balance; days 0
or 31 and an amount of three decimals show the field's message and change nothing; a
finance user sees the estimate and no form. The server runs on the test's clock.
Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from feecenter.audit.tables import audit_log
from feecenter.balance_warnings import service
from tests.test_balance_warnings import _line
from tests.test_console import PASSWORD as SHOP_PASSWORD
from tests.test_console import shop  # noqa: F401 - a fixture
from tests.test_console_browser import (  # noqa: F401 - browser_page is a fixture
    browser_page, log_in, shooter, watch_errors)

ESTIMATE = "按近24小时消耗（¥500,000.00），余额约可用 2 天。"
WARNING_NOW = "余额已低于您的预警设置，请及时充值。"
SAVE = 'form[action="/console/balance-warning"] button[type=submit]'
REFUSED = "the server responded with a status of 400"  # the bad values' answer


@pytest.mark.spec("XTR-2")
def test_the_owner_sets_the_warning_on_the_overview_and_finance_only_reads_it(
        rt, shop, live_server_on_test_clock, browser_page, request):  # noqa: F811 - fixtures
    _, address = live_server_on_test_clock
    uin = shop
    _line(rt, uin, 500_000_00, rt.clock.now() - timedelta(hours=2))
    from playwright.sync_api import expect

    page = browser_page
    problems, shot = watch_errors(page), shooter(page, request)
    section = page.locator("[data-balance-warning]")
    days, amount = page.locator("select[name=days]"), page.locator("input[name=amount]")

    def settings():
        with rt.engine.connect() as conn:
            return service.settings_of(conn, uin)

    def audited() -> int:
        with rt.engine.connect() as conn:
            return len(conn.execute(select(audit_log.c.id).where(
                audit_log.c.action == "set_balance_warning")).all())

    log_in(page, address, "acme-cloud", "/console/", password=SHOP_PASSWORD)
    assert page.locator("h1").inner_text() == "概览"
    # 1,234,467.89 available at 500,000.00 a day: 2 days, under the default 5
    expect(section.locator("[data-days-left]")).to_have_text(ESTIMATE)
    expect(section.locator("[data-days-left]")).to_have_attribute("data-days-left", "2")
    expect(section.locator("[data-warning-now]")).to_have_text(WARNING_NOW)
    expect(days).to_have_value("5")
    expect(amount).to_have_value("")
    shot("balance-warning-default")

    days.select_option("2")
    amount.fill("100.50")
    page.click(SAVE)
    page.wait_for_url(f"http://{address}/console/#balance-warning")
    assert settings() == service.WarningSettings(2, 100_50)
    expect(days).to_have_value("2")
    expect(amount).to_have_value("100.50")
    expect(section.locator("[data-warning-now]")).to_have_count(0)  # 2 days is not under 2
    shot("balance-warning-saved")

    amount.fill("1234467.90")  # one fen above the available balance
    page.click(SAVE)
    page.wait_for_url(f"http://{address}/console/#balance-warning")
    assert settings() == service.WarningSettings(2, 1_234_467_90)
    expect(amount).to_have_value("1234467.90")
    expect(section.locator("[data-warning-now]")).to_have_text(WARNING_NOW)
    shot("balance-warning-by-amount")

    saved, changes = settings(), audited()
    for day in ("0", "31"):  # the select offers 1-30: a crafted option, as a script could send
        page.evaluate("d => document.querySelector('select[name=days]').add(new Option(d, d))",
                      day)
        days.select_option(day)
        page.click(SAVE)
        error = section.locator("[data-error]")
        expect(error).to_have_attribute("data-error-field", "days")
        expect(error).to_have_text("预警天数须为 1–30 的整数，或留空（关闭）")
        expect(days).to_have_attribute("aria-invalid", "true")
        expect(days).to_have_value("2")  # the page shows what is saved
        assert (settings(), audited()) == (saved, changes)
    shot("balance-warning-bad-days")
    amount.fill("1.234")
    page.click(SAVE)
    error = section.locator("[data-error]")
    expect(error).to_have_attribute("data-error-field", "amount")
    expect(error).to_have_text("金额格式错误：'1.234'（最多两位小数）")
    expect(amount).to_have_attribute("aria-invalid", "true")
    expect(amount).to_have_value("1234467.90")
    assert (settings(), audited()) == (saved, changes)
    shot("balance-warning-bad-amount")

    page.click("form.logout button")
    page.wait_for_url(f"http://{address}/console/login")
    log_in(page, address, "acme-cloud", "/console/", login="acme-finance",
           password=SHOP_PASSWORD)
    expect(section.locator("[data-days-left]")).to_have_text(ESTIMATE)
    expect(section.locator("[data-warning-now]")).to_have_text(WARNING_NOW)
    expect(section.locator("form")).to_have_count(0)
    assert page.locator('form[action="/console/balance-warning"]').count() == 0
    shot("balance-warning-finance")
    assert settings() == saved
    assert [p for p in problems if REFUSED not in p] == []  # no CSP violation, no script error
