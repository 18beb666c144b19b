"""The orders pages in a real browser (Debian's chromium through Playwright; skipped
without it, except under CI=true): log in, select two orders, preview the payment
with a coupon, pay, and see the overview's cash fall by what the preview said,
as the balance API says. A screenshot of each page goes to artifacts/screenshots/.
"""

from __future__ import annotations

from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.auth import sessions
from feecenter.coupons import rules as coupon_rules
from feecenter.coupons import service as coupons
from feecenter.db.engine import transaction
from tests.helpers import OPS, add_cash, api_key, buy, load_sample_catalog, new_account
from tests.rest_harness import HOST, Signed
from tests.test_console_browser import (  # noqa: F401 - browser_page is a fixture
    PASSWORD, browser_page, log_in, shooter, watch_errors)


def test_select_two_orders_preview_with_a_coupon_pay_and_see_the_balance(
        live_server, browser_page, request):  # noqa: F811 - the fixture imported above
    runtime, address = live_server
    load_sample_catalog(runtime)
    uin = new_account(runtime, "browser-orders")
    add_cash(runtime, uin, 1_000_00)
    with transaction(runtime.engine) as conn:
        sessions.set_password(conn, runtime.clock, OPS, uin, None, PASSWORD)
        voucher = coupons.grant(conn, runtime.clock, OPS, uin, coupon_rules.Terms(
            kind=coupon_rules.VOUCHER, pay_mode=coupon_rules.PREPAID, face_amount=25_00,
            valid_days=30), campaign="browser")
    ids = buy(runtime, uin) + buy(runtime, uin) + buy(runtime, uin)
    from playwright.sync_api import expect

    page = browser_page
    problems, shot = watch_errors(page), shooter(page, request)
    log_in(page, address, "browser-orders", "/console/orders")
    assert page.locator("h1").inner_text() == "订单"
    assert page.locator("tr[data-order]").count() == 3
    shot("orders")

    for order_id in ids[:2]:
        page.check(f'tr[data-order="{order_id}"] input[name=order_id]')
    page.click("form.orders button[type=submit]")
    page.wait_for_selector("section[data-preview]")
    assert page.locator("h1").inner_text() == "支付订单"
    page.check("input[name=coupons][value=pick]")
    page.check(f'input[name=coupon_id][value="{voucher}"]')
    page.click("form.coupons button[type=submit]")
    expect(page.locator('section[data-preview] [data-total="coupon"]')).to_have_text("¥25.00")
    assert page.locator('section[data-preview] [data-total="cash"]').inner_text() == "¥331.00"
    assert page.locator(f'li[data-use="{voucher}"]').count() == 1
    shot("payment-preview")

    page.click("form.pay button[type=submit]")
    page.wait_for_selector("[data-payment]")
    assert page.locator("h1").inner_text() == "支付成功"
    assert page.locator('[data-total="cash"]').inner_text() == "¥331.00"
    shot("payment-made")

    page.click("ul.paid a >> nth=0")
    page.wait_for_selector("[data-state]")
    assert page.locator("dd[data-state]").get_attribute("data-state") == "delivered"
    shot("order")

    page.click('nav.menu a[href="/console/"]')
    page.wait_for_selector('[data-field="cash"]')
    api = Signed(runtime, TestClient(create_app(runtime), base_url=f"http://{HOST}"),
                 api_key(runtime, uin)).send("GET", f"/api/v1/accounts/{uin}/balance").json()
    assert api["cash"] == "669.00"
    assert page.locator('[data-field="cash"]').inner_text() == "¥669.00"
    assert problems == []  # no CSP violation, no script error
