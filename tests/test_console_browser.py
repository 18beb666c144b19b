"""The console in a real browser: log in (zh-CN), the overview's figures equal the
balance API's, htmx refreshes them under the console's CSP, switch to English,
log out. Playwright drives Debian's chromium (FEECENTER_CHROMIUM, else
``chromium`` on PATH); without one the test is skipped, except under CI=true,
where that is a failure (.ci/run installs it). A screenshot of the overview
goes to artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.auth import sessions
from feecenter.db.engine import transaction
from tests.helpers import OPS, add_cash, add_gift, api_key, new_account
from tests.rest_harness import HOST, Signed

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
PASSWORD = "browser-journey-1"
FIGURES = ("available", "cash", "gift", "income", "frozen", "arrears", "credit_amount",
           "real_credit_balance")


def _chromium() -> str:
    found = os.environ.get("FEECENTER_CHROMIUM") or shutil.which("chromium")
    if found:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError as exc:
            found, why = None, f"playwright is not installed: {exc}"
    else:
        why = "no chromium (apt-get install chromium, or set FEECENTER_CHROMIUM)"
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run under CI=true: {why}")
        pytest.skip(why)
    return found


@pytest.fixture
def browser_page():
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser.new_page(locale="zh-CN")
        finally:
            browser.close()


def test_log_in_read_the_overview_switch_language_log_out(live_server, browser_page, request):
    runtime, address = live_server
    uin = new_account(runtime, "browser-shop")
    add_cash(runtime, uin, 9_876_543_21)
    add_gift(runtime, uin, 12_34)
    with transaction(runtime.engine) as conn:
        sessions.set_password(conn, runtime.clock, OPS, uin, None, PASSWORD)
    key = api_key(runtime, uin)
    api = Signed(runtime, TestClient(create_app(runtime), base_url=f"http://{HOST}"), key).send(
        "GET", f"/api/v1/accounts/{uin}/balance").json()
    from playwright.sync_api import expect

    page, problems = browser_page, []
    page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    page.goto(f"http://{address}/console/")
    assert re.search(r"/console/login\?next=/console/$", page.url)
    assert page.locator("h1").inner_text() == "登录控制台"
    page.fill("input[name=account]", "browser-shop")
    page.fill("input[name=login]", "browser-shop")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"http://{address}/console/")
    assert page.locator("h1").inner_text() == "概览"

    def shown() -> dict[str, str]:
        return {f: page.locator(f'[data-field="{f}"]').inner_text()
                .replace("¥", "").replace(",", "") for f in FIGURES}

    assert shown() == {f: api[f] for f in FIGURES}
    assert page.locator('[data-field="cash"]').inner_text() == "¥9,876,543.21"

    # htmx (vendored, under a CSP without inline script) swaps in a fresh panel
    add_cash(runtime, uin, 100_00)
    page.click("button.refresh")
    expect(page.locator('[data-field="cash"]')).to_have_text("¥9,876,643.21")
    assert page.locator('[data-field="gift"]').inner_text() == "¥12.34"

    page.click("a.lang[lang=en]")
    page.wait_for_selector("html[lang=en]")
    assert page.locator("h1").inner_text() == "Overview"
    assert page.locator(".figure-available dt").inner_text() == "Available balance"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"console-overview-{request.node.callspec.id}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0

    page.click("form.logout button")
    page.wait_for_url(f"http://{address}/console/login")
    assert page.locator("h1").inner_text() == "Log in to the console"
    page.goto(f"http://{address}/console/")
    assert "/console/login" in page.url  # the session is gone
    assert problems == []  # no CSP violation, no script error
