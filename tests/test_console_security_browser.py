"""The console's security journeys in a real browser (Debian's chromium through
Playwright; skipped without it, except under CI=true): a readonly user who cannot
pay (no pay button; a crafted POST refused, nothing written); a form with a stale
CSRF token refused; hostile names shown as text (no dialog fires); an idle session
sending the next click to the login and back; an API key whose secret is shown once
and is gone after a reload; marking a message read through htmx. The server runs on
the test's clock (``live_server_on_test_clock``), so the session's expiry is a clock
move. Screenshots go to artifacts/screenshots/ (``console-security-…``).
"""

from __future__ import annotations

import re

import pytest

from feecenter.accounts import service as accounts
from feecenter.accounts.tables import users
from feecenter.auth import sessions
from feecenter.auth.tables import api_keys
from feecenter.db.engine import transaction
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.orders.tables import orders as orders_table
from feecenter.orders.tables import payments
from tests.helpers import OPS, add_cash, buy, load_sample_catalog, new_account, row_counts
from tests.test_console import XSS
from tests.test_console_browser import ARTIFACTS, PASSWORD, browser_page  # noqa: F401 - fixture
from tests.test_console_messages import notify
from tests.test_console_orders import number


@pytest.fixture
def journey(live_server_on_test_clock, browser_page, request):  # noqa: F811 - imported fixture
    """(runtime, base URL, page, problems, shot): acme-browser with ¥500.00 cash, two
    unpaid orders (one for a resource named ``<script>…``), an owner and a readonly
    sub-user with console passwords."""
    runtime, address = live_server_on_test_clock
    load_sample_catalog(runtime)
    uin = new_account(runtime, "acme-browser")
    add_cash(runtime, uin, 500_00)
    with transaction(runtime.engine) as conn:
        accounts.add_user(conn, runtime.clock, OPS, uin, "acme-readonly", "readonly")
        for login in (None, "acme-readonly"):
            sessions.set_password(conn, runtime.clock, OPS, uin, login, PASSWORD)
    ids = buy(runtime, uin) + buy(runtime, uin, resource_name=XSS)
    page, problems, dialogs = browser_page, [], []
    refusal = "the server responded with a status of 4"  # the refusals these journeys expect
    page.on("console", lambda msg: msg.type == "error" and refusal not in msg.text
            and problems.append(msg.text))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        path = ARTIFACTS / f"console-security-{name}-{request.node.callspec.id}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0

    yield {"rt": runtime, "base": f"http://{address}", "page": page, "uin": uin, "ids": ids,
           "problems": problems, "dialogs": dialogs, "shot": shot}
    assert dialogs == []  # no script of a hostile name ever ran


def log_in(j, login: str, target: str = "/console/") -> None:
    page = j["page"]
    page.goto(f"{j['base']}/console/login?next={target}")
    page.fill("input[name=account]", "acme-browser")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{j['base']}{target}")


def page_csrf(page) -> str:
    return page.locator("form.logout input[name=csrf_token]").get_attribute("value")


@pytest.mark.spec("ACC-2")
def test_a_readonly_user_cannot_pay(journey):
    j, page = journey, journey["page"]
    log_in(j, "acme-readonly", "/console/orders")
    assert page.locator("h1").inner_text() == "订单"
    assert page.locator("[data-error]").inner_text() == "缺少财务权限，请联系主账号授权"
    assert page.locator("form.orders").count() == 0 and page.locator("button.primary").count() == 0
    page.goto(f"{j['base']}/console/orders/{number(j['rt'], j['ids'][0])}")
    assert page.locator("a.button.primary").count() == 0  # no Pay on the order either
    j["shot"]("readonly-orders")
    before = row_counts(j["rt"], payments, ledger_transactions, statement_entries)
    crafted = page.request.post(f"{j['base']}/console/orders/pay", form={
        "order_id": number(j["rt"], j["ids"][0]), "coupons": "auto",
        "idempotency_key": "crafted-by-hand", "csrf_token": page_csrf(page)})
    assert crafted.status == 403 and "缺少财务权限" in crafted.text()
    assert row_counts(j["rt"], payments, ledger_transactions, statement_entries) == before
    with j["rt"].engine.connect() as conn:
        assert {s for s, in conn.execute(orders_table.select().with_only_columns(
            orders_table.c.state))} == {"unpaid"}
    assert j["problems"] == []


def test_a_form_with_a_stale_csrf_token_is_refused(journey):
    j, page = journey, journey["page"]
    log_in(j, "acme-browser", "/console/users")
    stale = page_csrf(page)
    page.click("form.logout button")
    page.wait_for_url(f"{j['base']}/console/login")
    log_in(j, "acme-browser", "/console/users")
    assert page_csrf(page) != stale
    before = row_counts(j["rt"], users)
    page.locator("form.add-user input[name=csrf_token]").evaluate(
        "(field, token) => { field.value = token; }", stale)
    page.fill("form.add-user input[name=login]", "csrf-victim")
    page.click("form.add-user button[type=submit]")
    page.wait_for_selector("section.refused")
    assert page.locator("h1").inner_text() == "请求被拒绝"
    j["shot"]("csrf-refused")
    assert row_counts(j["rt"], users) == before
    missing = page.request.post(f"{j['base']}/console/users",
                                form={"login": "csrf-victim", "role": "readonly"})
    assert missing.status == 403 and row_counts(j["rt"], users) == before


def test_hostile_names_render_as_text(journey):
    j, page = journey, journey["page"]
    log_in(j, "acme-browser", "/console/orders")
    hostile = page.locator(f'tr[data-order="{j["ids"][1]}"] td').nth(4)
    assert hostile.inner_text() == XSS  # the text itself, not a script element
    assert page.locator("main script").count() == 0
    page.goto(f"{j['base']}/console/users")
    page.fill("form.add-user input[name=login]", XSS)
    page.click("form.add-user button[type=submit]")
    page.wait_for_selector('[data-error-field="login"]')
    assert page.locator("form.add-user input[name=login]").input_value() == XSS
    assert page.locator("main script").count() == 0
    j["shot"]("hostile-names")
    assert j["dialogs"] == [] and j["problems"] == []


def test_an_idle_session_goes_to_the_login_and_back(journey):
    j, page = journey, journey["page"]
    log_in(j, "acme-browser", "/console/users")
    j["rt"].clock.advance(minutes=31)  # past the idle expiry (sessions.IDLE)
    page.click('nav.menu a[href="/console/messages"]')
    page.wait_for_url(re.compile(r"/console/login\?next=/console/messages$"))
    j["shot"]("session-expired")
    page.fill("input[name=account]", "acme-browser")
    page.fill("input[name=login]", "acme-browser")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{j['base']}/console/messages")
    assert page.locator("h1").inner_text() == "消息"
    assert j["problems"] == []


@pytest.mark.spec("ACC-2")
def test_a_new_key_shows_its_secret_once(journey):
    from playwright.sync_api import expect

    j, page = journey, journey["page"]
    notify(j["rt"], j["uin"], 2)
    log_in(j, "acme-browser", "/console/users")
    page.click("form.create-key button[type=submit]")  # htmx swaps the keys part in
    expect(page.locator("[data-secret-key]")).to_have_count(1)
    secret_id = page.locator("[data-secret-id]").inner_text()
    secret_key = page.locator("[data-secret-key]").inner_text()
    assert len(secret_key) == 32 and page.url == f"{j['base']}/console/users"
    assert page.locator(f'tr[data-key="{secret_id}"] [data-state]').inner_text() == "已启用"
    j["shot"]("new-key")
    page.reload()
    assert page.locator("[data-secret-key]").count() == 0
    assert secret_key not in page.content()
    assert page.locator(f'tr[data-key="{secret_id}"]').count() == 1
    with j["rt"].engine.connect() as conn:
        assert row_counts(j["rt"], api_keys) == (1,)
        assert secret_key not in str(conn.execute(api_keys.select()).all())

    # the inbox: mark the newest read through htmx; the header's count follows
    page.click("a#unread-count")
    page.wait_for_url(f"{j['base']}/console/messages?unread=1")
    assert page.locator("#unread-count").get_attribute("data-unread") == "2"
    page.locator("li.message form.mark-one button").first.click()
    expect(page.locator("#unread-count")).to_have_attribute("data-unread", "1")
    expect(page.locator("li.message[data-read=false]")).to_have_count(1)
    j["shot"]("messages")
    assert j["problems"] == []
