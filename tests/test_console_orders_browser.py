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
from tests.test_console_browser import ARTIFACTS, PASSWORD, browser_page  # noqa: F401 - fixture


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

    page, problems = browser_page, []
    page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backend = request.node.callspec.id

    def shot(name: str) -> None:
        path = ARTIFACTS / f"console-{name}-{backend}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0

    page.goto(f"http://{address}/console/orders")
    page.fill("input[name=account]", "browser-orders")
    page.fill("input[name=login]", "browser-orders")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"http://{address}/console/orders")
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
