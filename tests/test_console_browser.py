"""The console in a real browser: log in (zh-CN), the overview's figures equal the
balance API's, htmx refreshes them under the console's CSP, switch to English,
log out; a second journey filters 收支明细, downloads its CSV and reads 账单.
Playwright drives Debian's chromium (FEECENTER_CHROMIUM, else
``chromium`` on PATH); without one the test is skipped, except under CI=true,
where that is a failure (.ci/run installs it). Screenshots of the overview
and of both ledger pages go to artifacts/screenshots/ (git-ignored).
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


def watch_errors(page) -> list[str]:
    """The page's console errors and uncaught exceptions, collected as they happen."""
    problems: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return problems


def shooter(page, request):
    """``shot(name)``: a full-page screenshot in artifacts/screenshots/, per backend."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backend = request.node.callspec.id

    def shot(name: str) -> None:
        path = ARTIFACTS / f"console-{name}-{backend}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0
    return shot


def log_in(page, address: str, account: str, path: str, *, login: str | None = None,
           password: str = PASSWORD) -> None:
    """Open ``path``, log in as the account's owner (or its user ``login``) on the login
    page it leads to, and arrive back at ``path``."""
    page.goto(f"http://{address}{path}")
    page.fill("input[name=account]", account)
    page.fill("input[name=login]", login or account)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"http://{address}{path}")


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


def test_filter_the_transactions_download_the_csv_and_read_the_bills(live_server, browser_page,
                                                                     request):
    """收支明细: filter by type through htmx (the address follows), the rows equal the API's,
    the CSV downloads with the filtered rows; 账单 shows a month's lines. A screenshot
    of each page."""
    import csv
    import io

    from feecenter.funds import service as funds
    from tests.helpers import revenue
    from tests.test_console_ledger import add_line

    runtime, address = live_server
    uin = new_account(runtime, "ledger-shop")
    add_cash(runtime, uin, 1_000_00)
    account = revenue(runtime)
    with transaction(runtime.engine) as conn:
        sessions.set_password(conn, runtime.clock, OPS, uin, None, PASSWORD)
        for n, product in enumerate(("cvm", "cbs", "cvm")):
            funds.spend(conn, runtime.clock, uin, 12_34 * (n + 1), key=f"journey:{n}",
                        postpaid=False, revenue_account_id=account, product_code=product)
    add_line(runtime, uin, 0)
    add_line(runtime, uin, 1, price_kind="contract", resource_id="ins-stopped",
             stopped_quantity=500_000)
    key = api_key(runtime, uin)
    api = Signed(runtime, TestClient(create_app(runtime), base_url=f"http://{HOST}"), key).send(
        "GET", f"/api/v1/accounts/{uin}/transactions", query={"type": "deduct"}).json()
    from playwright.sync_api import expect

    page, problems = browser_page, []
    page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(f"http://{address}/console/login")
    page.fill("input[name=account]", "ledger-shop")
    page.fill("input[name=login]", "ledger-shop")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"http://{address}/console/")

    page.click("nav.menu >> text=收支明细")
    page.wait_for_url(f"http://{address}/console/transactions")
    assert page.locator("h1").inner_text() == "收支明细"
    expect(page.locator("[data-total]")).to_have_text("共 4 条")  # the top-up and 3 deductions
    page.select_option("select[name=type]", "deduct")
    page.click("form.filters button[type=submit]")
    expect(page.locator("[data-total]")).to_have_text("共 3 条")
    page.wait_for_url(re.compile(r"/console/transactions\?type=deduct&page=1$"))  # HX-Push-Url
    amounts = page.locator('td[data-col="amount"]').all_inner_texts()
    assert [a.replace("¥", "").replace(",", "") for a in amounts] == \
        [i["amount"] for i in api["items"]] == ["-37.02", "-24.68", "-12.34"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"console-transactions-{request.node.callspec.id}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0

    with page.expect_download() as started:
        page.click("a.download")
    download = started.value
    assert download.suggested_filename == f"transactions-{uin}.csv"
    content = Path(download.path()).read_bytes()
    assert content.startswith(b"\xef\xbb\xbf")
    header, *entries = csv.reader(io.StringIO(content.decode("utf-8-sig")))
    assert header[:4] == ["时间", "类型", "产品", "金额（元）"]
    assert [e[3] for e in entries] == [i["amount"] for i in api["items"]]

    page.click("nav.menu >> text=账单")
    page.wait_for_url(f"http://{address}/console/bills")
    assert page.locator("h1").inner_text() == "账单"
    expect(page.locator("[data-statistic-period]")).to_contain_text("按扣费时间")
    stopped = page.locator('tr:has(td[data-col="resource"]:text("ins-stopped"))')
    assert stopped.locator('td[data-col="unit_price"]').inner_text() == "-"  # BIL-6
    assert "停服期间的用量不计费" in stopped.locator('td[data-col="stopped_quantity"]').inner_text()
    page.fill("input[name=month]", "2026-13")
    page.click("form.filters button[type=submit]")
    expect(page.locator('[data-error="month"]')).to_have_text("月份格式应为 YYYY-MM")
    shot = ARTIFACTS / f"console-bills-{request.node.callspec.id}.png"
    page.fill("input[name=month]", "")
    page.click("form.filters button[type=submit]")
    expect(page.locator("[data-error]")).to_have_count(0)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0
    assert problems == []  # no CSP violation, no script error
