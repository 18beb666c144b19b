"""The resources, coupons and arrears pages in a real browser (Debian's chromium
through Playwright; skipped without it, except under CI=true): log in, see the
resources, open one, preview its refund, refund it and see the overview's cash
rise by what the preview said, as the balance API says; then open 优惠券 and 欠费.
A screenshot of each page goes to artifacts/screenshots/.
"""

from __future__ import annotations

from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.auth import sessions
from feecenter.coupons import rules as coupon_rules
from feecenter.coupons import service as coupons
from feecenter.db.engine import transaction
from feecenter.orders import service as orders
from tests.helpers import OPS, add_cash, api_key, buy, load_sample_catalog, new_account, pay
from tests.rest_harness import HOST, Signed
from tests.test_console_browser import (  # noqa: F401 - browser_page is a fixture
    PASSWORD, browser_page, log_in, shooter, watch_errors)


def test_see_resources_refund_one_with_the_preview_then_coupons_and_arrears(
        live_server, browser_page, request):  # noqa: F811 - the fixture imported above
    runtime, address = live_server
    load_sample_catalog(runtime)
    uin = new_account(runtime, "browser-resources")
    add_cash(runtime, uin, 1_000_00)
    with transaction(runtime.engine) as conn:
        sessions.set_password(conn, runtime.clock, OPS, uin, None, PASSWORD)
        coupons.grant(conn, runtime.clock, OPS, uin, coupon_rules.Terms(
            kind=coupon_rules.VOUCHER, pay_mode=coupon_rules.PREPAID, face_amount=25_00,
            valid_days=30, threshold=5_000_00), campaign="browser")
    (order_id,) = buy(runtime, uin, ("cvm", "S5.MEDIUM4", 2, "ap-guangzhou"))
    pay(runtime, uin, [order_id])  # 356.00 cash (the voucher's threshold is not met)
    with runtime.engine.connect() as conn:
        resource_id = orders.get_order(conn, OPS, uin, order_id)["resource_id"]
    api = Signed(runtime, TestClient(create_app(runtime), base_url=f"http://{HOST}"),
                 api_key(runtime, uin))
    from playwright.sync_api import expect

    page = browser_page
    problems, shot = watch_errors(page), shooter(page, request)
    log_in(page, address, "browser-resources", "/console/resources")
    assert page.locator("h1").inner_text() == "资源"
    row = page.locator(f'tr[data-resource="{resource_id}"]')
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "running")
    shot("resources")

    row.locator("a").first.click()
    page.wait_for_selector(f'dl[data-resource="{resource_id}"]')
    shot("resource")
    page.click(f'a[href="/console/resources/{resource_id}/refund"]')
    page.wait_for_selector("section[data-refund-preview]")
    assert page.locator("[data-why]").get_attribute("data-why") == "full"
    assert page.locator('[data-back="cash"]').inner_text() == "¥356.00"
    assert page.locator('[data-back="total"]').inner_text() == "¥356.00"
    shot("refund-preview")

    cash_before = api.send("GET", f"/api/v1/accounts/{uin}/balance").json()["cash"]
    assert cash_before == "644.00"
    page.click("form.refund button[type=submit]")
    page.wait_for_selector("[data-refund]")
    assert page.locator("h1").inner_text() == "退订成功"
    assert page.locator('[data-back="cash"]').inner_text() == "¥356.00"
    shot("refund-made")

    page.click('nav.menu a[href="/console/"]')
    page.wait_for_selector('[data-field="cash"]')
    assert api.send("GET", f"/api/v1/accounts/{uin}/balance").json()["cash"] == "1000.00"
    assert page.locator('[data-field="cash"]').inner_text() == "¥1,000.00"

    page.click('nav.menu a[href="/console/resources"]')
    expect(page.locator(f'tr[data-resource="{resource_id}"] [data-state]')).to_have_attribute(
        "data-state", "recycled")

    page.click('nav.menu a[href="/console/coupons"]')
    page.wait_for_selector("tr[data-coupon]")
    assert page.locator("h1").inner_text() == "优惠券"
    assert page.locator('tr[data-coupon] [data-state]').get_attribute("data-state") == "unused"
    shot("coupons")

    page.click('nav.menu a[href="/console/arrears"]')
    page.wait_for_selector("[data-owed]")
    assert page.locator("h1").inner_text() == "欠费"
    assert page.locator("[data-owed]").inner_text() == "账户没有欠费。"
    shot("arrears")
    assert problems == []  # no CSP violation, no script error
