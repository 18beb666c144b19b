"""在线充值 end to end in a real browser (Debian's chromium through Playwright;
skipped without it, except under CI=true): log in, recharge 100.00 by WeChat Pay,
see the QR code, open the sandbox provider's payer page (the sandbox runs
in-process, as in tests/test_recharges.py) and pay; the console's page turns to
paid and shows the new balance by its htmx polling, without a reload. A
screenshot of each page goes to artifacts/screenshots/.
"""

from __future__ import annotations

from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.auth import sessions
from feecenter.db.engine import transaction
from feecenter.gateways.wechatpay import WeChatPayConfig, WeChatPayGateway
from feecenter.sandbox import keys as sandbox_keys
from tests.helpers import OPS, api_key, new_account
from tests.rest_harness import HOST, Signed
from tests.test_console_browser import ARTIFACTS, PASSWORD, browser_page  # noqa: F401 - fixture
from tests.test_recharges import sandbox  # noqa: F401 - fixture


def test_recharge_by_wechat_pay_in_the_sandbox_and_see_the_balance_without_a_reload(
        live_server, sandbox, browser_page, request):  # noqa: F811 - the fixtures imported above
    runtime, address = live_server
    keys, sandbox_url, _ = sandbox
    gateway = WeChatPayGateway(WeChatPayConfig.from_env(sandbox_keys.merchant_env(
        keys, sandbox_url, f"http://{address}/api/v1/recharges/notify/wechat")))
    runtime.gateways = {"wechat": gateway}
    uin = new_account(runtime, "browser-recharge")
    with transaction(runtime.engine) as conn:
        sessions.set_password(conn, runtime.clock, OPS, uin, None, PASSWORD)
    api = Signed(runtime, TestClient(create_app(runtime), base_url=f"http://{HOST}"),
                 api_key(runtime, uin))
    from playwright.sync_api import expect

    page, problems = browser_page, []
    page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backend = request.node.callspec.id

    def shot(target, name: str) -> None:
        path = ARTIFACTS / f"console-{name}-{backend}.png"
        target.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0

    page.goto(f"http://{address}/console/recharge")
    page.fill("input[name=account]", "browser-recharge")
    page.fill("input[name=login]", "browser-recharge")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"http://{address}/console/recharge")
    assert page.locator("h1").inner_text() == "在线充值"
    page.fill("input[name=amount]", "100.00")
    page.check("input[name=channel][value=wechat]")
    shot(page, "recharge-form")
    page.click("form.recharge button[type=submit]")
    page.wait_for_selector("svg[data-qr]")
    expect(page.locator("[data-recharge-state]")).to_have_attribute("data-recharge-state",
                                                                    "pending")
    assert page.locator("[data-amount]").inner_text() == "¥100.00"
    shot(page, "recharge-qr")
    page.evaluate("window.__same_document = true")  # gone if the page were reloaded

    payer_url = page.locator("a[data-payer-page]").get_attribute("href")
    assert payer_url.startswith(sandbox_url)
    payer = page.context.browser.new_page(locale="zh-CN")
    payer.goto(payer_url)
    shot(payer, "recharge-sandbox-payer")
    payer.locator("button[name=action][value=pay]").click()
    payer.wait_for_load_state()
    payer.close()

    expect(page.locator("[data-recharge-state]")).to_have_attribute(
        "data-recharge-state", "paid", timeout=15_000)
    assert page.evaluate("window.__same_document") is True  # htmx swapped the part in place
    balance = api.send("GET", f"/api/v1/accounts/{uin}/balance").json()
    assert balance["available"] == balance["cash"] == "100.00"
    assert page.locator('[data-field="available"]').inner_text() == "¥100.00"
    assert page.locator("svg[data-qr]").count() == 0
    shot(page, "recharge-paid")

    page.click('a[href="/console/recharges"]')
    expect(page.locator("tr[data-recharge] [data-state]")).to_have_attribute("data-state", "paid")
    shot(page, "recharge-records")
    assert problems == []  # no CSP violation, no script error
