"""提现 in a real browser (Debian's chromium through Playwright; skipped without it,
except under CI=true): a customer recharges ¥100.00 by WeChat Pay through the sandbox
provider (in-process, as in tests/test_recharges.py), then withdraws ¥60.00 along the
original route: the preview shows the leg (WeChat Pay, ¥60.00, arrival within 2
hours). The payer's channel account was closed at the provider in the meantime: the
refund the console sends right after applying ends ABNORMAL, and the page shows the
¥60.00 still held and the withdrawal 失败待审核 with the link to its failed-payout
request. An operator returns it to cash
from 提现失败审核 (reason, confirmation) and the customer sees it 已退回 and the
¥100.00 back. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import pytest
import requests

from feecenter.auth import operator_sessions, sessions
from feecenter.auth import service as auth
from feecenter.db.engine import transaction
from feecenter.gateways.wechatpay import WeChatPayConfig, WeChatPayGateway
from feecenter.sandbox import keys as sandbox_keys
from feecenter.withdrawals import sending
from tests.helpers import OPS, balance, new_account
from tests.test_console_browser import (  # noqa: F401 - browser_page is a fixture
    PASSWORD, browser_page, log_in, shooter, watch_errors)
from tests.test_recharges import sandbox  # noqa: F401 - fixture


def _recharge_in_the_sandbox(page, base: str, payer: str) -> None:
    """¥100.00 by WeChat Pay: the QR page, the sandbox payer page paid by ``payer``."""
    from playwright.sync_api import expect

    page.goto(f"{base}/console/recharge")
    page.fill("input[name=amount]", "100.00")
    page.check("input[name=channel][value=wechat]")
    page.click("form.recharge button[type=submit]")
    page.wait_for_selector("svg[data-qr]")
    payer_page = page.context.browser.new_page(locale="zh-CN")
    payer_page.goto(page.locator("a[data-payer-page]").get_attribute("href"))
    payer_page.fill("input[name=payer]", payer)
    payer_page.locator("button[name=action][value=pay]").click()
    payer_page.wait_for_load_state()
    payer_page.close()
    expect(page.locator("[data-recharge-state]")).to_have_attribute(
        "data-recharge-state", "paid", timeout=15_000)


@pytest.mark.spec("WDR-2", "WDR-4", "WDR-5")
def test_an_original_route_withdrawal_fails_and_is_returned_to_cash(
        live_server, sandbox, browser_page, request):  # noqa: F811 - the fixtures imported above
    runtime, address = live_server
    keys, sandbox_url, _ = sandbox
    runtime.gateways = {"wechat": WeChatPayGateway(WeChatPayConfig.from_env(
        sandbox_keys.merchant_env(keys, sandbox_url,
                                  f"http://{address}/api/v1/recharges/notify/wechat")))}
    backend = request.node.callspec.id
    payer = f"payer-wdr-browser-{backend}"
    uin = new_account(runtime, "browser-withdraw")
    with transaction(runtime.engine) as conn:
        sessions.set_password(conn, runtime.clock, OPS, uin, None, PASSWORD)
        auth.create_operator(conn, runtime.clock, OPS, "wendy")
        operator_sessions.set_password(conn, runtime.clock, OPS, "wendy", PASSWORD)
    from playwright.sync_api import expect

    page = browser_page
    problems, shot = watch_errors(page), shooter(page, request)
    base = f"http://{address}"
    log_in(page, address, "browser-withdraw", "/console/recharge")
    _recharge_in_the_sandbox(page, base, payer)

    page.goto(f"{base}/console/withdrawals")
    expect(page.locator('[data-field="takeable"]')).to_have_text("¥100.00")
    page.fill("input[name=amount]", "60.00")
    page.check("input[name=route][value=original]")
    page.click("button[data-action=preview]")
    expect(page.locator("h1")).to_have_text("确认提现")
    leg = page.locator("tr[data-leg]")
    expect(leg).to_have_count(1)
    expect(leg).to_have_attribute("data-channel", "wechat")
    expect(leg.locator("[data-leg-amount]")).to_have_text("¥60.00")
    expect(leg.locator("[data-estimate]")).not_to_have_text("-")
    shot("withdrawal-preview")
    closed = requests.post(f"{sandbox_url}/sandbox/payers/{payer}/close", timeout=30)
    assert closed.status_code == 200, closed.text
    page.click("button[data-action=apply]")
    page.wait_for_url(f"{base}/console/withdrawals?applied=*")
    expect(page.locator("[data-held]")).to_have_text("¥60.00")
    expect(page.locator('[data-field="takeable"]')).to_have_text("¥40.00")
    row = page.locator("tr[data-withdrawal]")
    shot("withdrawal-held")

    _wait_for_state(runtime, uin, "failed")  # the refund to the closed account: ABNORMAL
    assert sending.send_pending(runtime.engine, runtime.clock, runtime.gateways)["failed"] == 0
    page.reload()
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "failed")
    expect(row.locator("[data-state]")).to_have_text("失败待审核")
    expect(page.locator("[data-held]")).to_have_text("¥60.00")  # still held: nothing lost
    expect(row.locator("a[data-file-request]")).to_be_visible()
    shot("withdrawal-failed")

    page.goto(f"{base}/console/ops/withdrawals/failed")
    page.fill("input[name=name]", "wendy")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/ops/withdrawals/failed")
    failed = page.locator("tr[data-withdrawal]")
    expect(failed).to_have_count(1)
    shot("withdrawal-failed-review")
    form = failed.locator("form[data-return-form]")
    form.locator("input[name=reason]").fill("付款人微信账户已注销")
    form.locator("input[name=confirm]").check()
    form.locator("button[data-action=return]").click()
    page.wait_for_url(f"{base}/console/ops/withdrawals/failed?done=*")
    expect(page.locator("tr[data-withdrawal]")).to_have_count(0)

    page.goto(f"{base}/console/withdrawals")
    expect(row.locator("[data-state]")).to_have_text("已退回")
    expect(page.locator("[data-held]")).to_have_text("¥0.00")
    expect(page.locator('[data-field="cash"]')).to_have_text("¥100.00")
    shot("withdrawal-returned")
    assert balance(runtime, uin).cash == 100_00
    assert problems == []


def _wait_for_state(runtime, uin: int, state: str, seconds: float = 20.0) -> None:
    """The console sends the legs after its answer (a background task): wait for it."""
    import time

    from sqlalchemy import select

    from feecenter.withdrawals.tables import withdrawals

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with runtime.engine.connect() as conn:
            found = conn.execute(select(withdrawals.c.state)
                                 .where(withdrawals.c.uin == uin)).scalar()
        if found == state:
            return
        time.sleep(0.2)
    raise AssertionError(f"the withdrawal is {found!r}, not {state!r}")
