"""对公汇款 end to end in a real browser (Debian's chromium through Playwright; skipped
without it, except under CI=true): an operator logs in, uploads an MT940 statement
(one transfer to the customer's 25-digit number from a payer it has not
registered, one to our prefix with an unknown code), reads the import's summary
and assigns the unassigned record to the account; the customer then logs in, sees
both records pending, registers the payer (ticking the agreement), asks for
re-verification and sees them credited with the balance up by their amounts.
Screenshots console-remittance-… in artifacts/screenshots/.
"""

from __future__ import annotations

from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.auth import operator_sessions, sessions
from feecenter.auth import service as auth
from feecenter.db.engine import transaction
from tests.helpers import OPS, add_cash, api_key, new_account
from tests.rest_harness import HOST, Signed
from tests.test_console_browser import (  # noqa: F401 - browser_page is a fixture
    PASSWORD,
    browser_page,
    log_in,
    shooter,
    watch_errors,
)
from tests.test_console_ops import USCC
from tests.test_console_remittance import numbers, statement, unknown_code_number

ENTITY = "杭州示例网络有限公司"
PAYER = "宁波示例贸易有限公司"


def test_an_operator_imports_and_assigns_and_the_customer_registers_the_payer_and_is_credited(
        live_server, browser_page, request, tmp_path):  # noqa: F811 - the fixture imported above
    runtime, address = live_server
    uin = new_account(runtime, "browser-remit", enterprise_name=ENTITY, uscc=USCC)
    add_cash(runtime, uin, 10_00)
    with transaction(runtime.engine) as conn:
        auth.create_operator(conn, runtime.clock, OPS, "dora")
        operator_sessions.set_password(conn, runtime.clock, OPS, "dora", PASSWORD)
        sessions.set_password(conn, runtime.clock, OPS, uin, None, PASSWORD)
    file = tmp_path / "statement.sta"
    file.write_bytes(statement(("BR-OWN-1", numbers(runtime, uin)[0], PAYER, 1_200_00, "货款"),
                               ("BR-LOST-1", unknown_code_number(runtime), PAYER, 300_50, "预付")))
    api = Signed(runtime, TestClient(create_app(runtime), base_url=f"http://{HOST}"),
                 api_key(runtime, uin))
    from playwright.sync_api import expect

    page = browser_page
    problems, shot = watch_errors(page), shooter(page, request)
    base = f"http://{address}"

    # the operator: import, summary, the unassigned queue
    page.goto(f"{base}/console/ops/remittances/imports")
    page.fill("input[name=name]", "dora")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/ops/remittances/imports")
    assert page.locator("h1").inner_text() == "导入对账单"
    page.set_input_files("input[name=statement]", str(file))
    page.click("form.import-statement button[type=submit]")
    page.wait_for_selector("[data-import]")
    figures = {name: page.locator(f'[data-count="{name}"]').inner_text()
               for name in ("lines", "credited", "unassigned", "pending", "held", "not_ours",
                            "duplicates")}
    assert figures == {"lines": "2", "credited": "0", "unassigned": "1", "pending": "1",
                       "held": "0", "not_ours": "0", "duplicates": "0"}
    assert page.locator('[data-fen="new"]').inner_text() == "¥1,500.50"
    shot("remittance-ops-import")
    page.click("a[data-work-unassigned]")
    row = page.locator("tr[data-remittance]", has_text="BR-LOST-1")
    expect(row.locator("[data-state]")).to_have_text("待分配")
    shot("remittance-ops-unassigned")
    row.locator("input[name=uin]").fill(str(uin))
    row.locator("form.assign button").click()
    page.wait_for_selector("[data-empty]")  # the queue is empty now
    page.click("a[data-queue=pending]")
    expect(page.locator("tr[data-remittance]")).to_have_count(2)
    shot("remittance-ops-pending")
    page.click("form.logout button")
    page.wait_for_url(f"{base}/console/ops/login")

    # the customer: the pending records, register the payer, re-verify
    log_in(page, address, "browser-remit", "/console/remittance")
    assert page.locator("h1").inner_text() == "对公汇款"
    assert page.locator("code[data-number]").first.inner_text() == numbers(runtime, uin)[0]
    own = page.locator("tr[data-remittance]", has_text="BR-OWN-1")
    expect(own.locator("[data-state]")).to_have_text("待签署")
    assert own.locator("[data-amount]").inner_text() == "¥1,200.00"
    assert PAYER in own.locator('[data-col="reason"]').inner_text()
    shot("remittance-pending")
    page.fill("input[name=payer_name]", PAYER)
    page.check("input[name=agree]")
    page.click("form.register-payer button[type=submit]")
    expect(page.locator('tr[data-payer] [data-col="name"]')).to_have_text(PAYER)
    for reference in ("BR-OWN-1", "BR-LOST-1"):
        page.locator("tr[data-remittance]", has_text=reference).locator(
            "form.reverify button").click()
        expect(page.locator("[data-result-state]")).to_have_attribute("data-result-state",
                                                                      "credited")
        expect(page.locator("tr[data-remittance]", has_text=reference).locator(
            "[data-state]")).to_have_text("已充值")
    shot("remittance-credited")
    balance = api.send("GET", f"/api/v1/accounts/{uin}/balance").json()
    assert balance["cash"] == "1510.50"  # 10.00 + 1,200.00 + 300.50
    page.click('nav.menu a[href="/console/"]')
    expect(page.locator('[data-field="cash"]')).to_have_text("¥1,510.50")
    assert problems == []  # no CSP violation, no script error
