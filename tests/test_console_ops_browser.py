"""The operator console in a real browser (Debian's chromium through Playwright;
skipped without it, except under CI=true): an operator logs in, finds the account,
adjusts +100.00 through the confirmation step; the customer then logs in and sees
the new balance (the balance API's) and the entry in 收支明细. A screenshot of
each page goes to artifacts/screenshots/ (console-ops-…).
"""

from __future__ import annotations

from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.auth import operator_sessions, sessions
from feecenter.auth import service as auth
from feecenter.db.engine import transaction
from tests.helpers import OPS, add_cash, api_key, new_account
from tests.rest_harness import HOST, Signed
from tests.test_console_browser import ARTIFACTS, PASSWORD, browser_page  # noqa: F401 - fixture

REASON = "客服补偿 / goodwill"


def test_an_operator_adjusts_and_the_customer_sees_it(live_server, browser_page,  # noqa: F811
                                                      request):
    runtime, address = live_server
    uin = new_account(runtime, "browser-ops", personal_name="李四")
    add_cash(runtime, uin, 23_45)
    with transaction(runtime.engine) as conn:
        auth.create_operator(conn, runtime.clock, OPS, "carol")
        operator_sessions.set_password(conn, runtime.clock, OPS, "carol", PASSWORD)
        sessions.set_password(conn, runtime.clock, OPS, uin, None, PASSWORD)
    from playwright.sync_api import expect

    page, problems = browser_page, []
    page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backend = request.node.callspec.id

    def shot(name: str) -> None:
        path = ARTIFACTS / f"console-ops-{name}-{backend}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0

    base = f"http://{address}"
    page.goto(f"{base}/console/ops/")
    assert "/console/ops/login" in page.url
    assert page.locator("h1").inner_text() == "运营人员登录"
    page.fill("input[name=name]", "carol")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/ops/")

    page.fill("input[name=q]", "李四")
    page.click("form.filters button[type=submit]")
    page.wait_for_selector(f'tr[data-uin="{uin}"]')
    shot("search")
    page.click(f'tr[data-uin="{uin}"] a')
    page.wait_for_selector(f'h1[data-account="{uin}"]')
    assert page.locator('[data-field="cash"]').inner_text() == "¥23.45"
    shot("account")

    page.fill('form[data-form="adjust"] input[name=amount]', "100.00")
    page.fill('form[data-form="adjust"] input[name=reason]', REASON)
    page.click('form[data-form="adjust"] button[type=submit]')
    page.wait_for_selector("[data-confirm]")
    assert page.locator("[data-amount]").inner_text() == "¥100.00"
    shot("adjust-confirm")
    page.click("form button.primary")
    page.wait_for_selector("[data-txn]")
    assert page.locator("h1").inner_text() == "调账完成"
    expect(page.locator('[data-field="cash"]')).to_have_text("¥123.45")
    shot("adjusted")
    page.click("form.logout button")
    page.wait_for_url(f"{base}/console/ops/login")

    page.goto(f"{base}/console/")
    page.fill("input[name=account]", "browser-ops")
    page.fill("input[name=login]", "browser-ops")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/")
    api = Signed(runtime, TestClient(create_app(runtime), base_url=f"http://{HOST}"),
                 api_key(runtime, uin)).send("GET", f"/api/v1/accounts/{uin}/balance").json()
    assert api["cash"] == "123.45"
    assert page.locator('[data-field="cash"]').inner_text() == "¥123.45"
    assert page.locator('[data-field="available"]').inner_text() == f"¥{api['available']}"

    page.click('nav.menu a[href="/console/transactions"]')
    page.wait_for_selector("h1")
    assert page.locator("h1").inner_text() == "收支明细"
    newest = page.locator("tr[data-entry]").first
    assert newest.locator('[data-col="memo"]').inner_text() == REASON
    assert newest.locator('[data-col="amount"]').inner_text() == "¥100.00"
    assert newest.locator('[data-col="balance_after"]').inner_text() == "¥123.45"
    shot("customer-transactions")
    assert problems == []  # no CSP violation, no script error
