"""Accessibility of the console's main pages in a real browser (axe-core through
axe-playwright-python, on Debian's chromium; skipped without it, except under
CI=true): every customer page — login, 概览 (with its charts drawn), 收支明细,
账单, 订单, one order, the payment page, 资源, 优惠券, 欠费, 用户与密钥, 消息, 对公汇款,
在线充值 and 提现 — and
every operator page has no serious or critical violation, and every form field
has a label. Each page's screenshot goes to artifacts/screenshots/ (the
overview's shows the Chinese web font's glyphs)."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe

from feecenter.auth import operator_sessions, sessions
from feecenter.auth import service as auth
from feecenter.db.engine import transaction
from feecenter.funds import service as funds
from feecenter.orders import service as orders
from feecenter.resources import service as resources
from tests.helpers import OPS, add_cash, buy, load_sample_catalog, new_account, pay, revenue
from tests.test_console_browser import ARTIFACTS, PASSWORD, browser_page  # noqa: F401 - fixture
from feecenter.remittances import service as remittances
from feecenter.remittances import statements
from tests.test_console_ledger import add_line
from tests.test_console_remittance import numbers, statement, unknown_code_number

SEVERE = {"serious", "critical"}
UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
  .map(el => el.outerHTML)"""


def remittances_arrived(runtime, uin: int) -> None:
    """A statement imported: one transfer to the account waiting for its payer, one
    unassigned (the 对公汇款 page's re-verify button, the queue's assign form)."""
    parsed = statements.parse(statement(
        ("A11Y-1", numbers(runtime, uin)[0], "示例付款有限公司", 100_00, "货款"),
        ("A11Y-2", unknown_code_number(runtime), "示例付款有限公司", 200_00, "货款")))
    with transaction(runtime.engine) as conn:
        remittances.import_transfers(conn, runtime.clock, OPS, list(parsed.transfers()),
                                     source=parsed.format, digest=parsed.digest)


def severe_violations(page) -> list[str]:
    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
            for v in results.response["violations"] if v["impact"] in SEVERE]


def test_every_page_passes_axe_and_labels_its_fields(live_server, browser_page,  # noqa: F811
                                                         request):
    runtime, address = live_server
    load_sample_catalog(runtime)
    uin = new_account(runtime, "a11y-shop")
    add_cash(runtime, uin, 1_000_00)
    income = revenue(runtime)
    with transaction(runtime.engine) as conn:
        sessions.set_password(conn, runtime.clock, OPS, uin, None, PASSWORD)
        auth.create_operator(conn, runtime.clock, OPS, "a11y-operator")
        operator_sessions.set_password(conn, runtime.clock, OPS, "a11y-operator", PASSWORD)
        funds.spend(conn, runtime.clock, uin, 12_34, key="a11y:spend", postpaid=False,
                    revenue_account_id=income, product_code="cvm")
    for n in range(3):
        add_line(runtime, uin, n)
    order_id = buy(runtime, uin)[0]
    renewable, binned = buy(runtime, uin) + buy(runtime, uin)  # 续费管理 and 回收站 each list one
    pay(runtime, uin, [renewable, binned])
    with transaction(runtime.engine) as conn:
        binned_id = orders.get_order(conn, OPS, uin, binned)["resource_id"]
        resources.stop_resource(conn, binned_id, runtime.clock.now(), "expired")
    remittances_arrived(runtime, uin)
    page, problems, found = browser_page, [], {}
    page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    backend = request.node.callspec.id

    def check(name: str) -> None:
        found[name] = severe_violations(page) + [f"unlabelled: {html}"
                                                  for html in page.evaluate(UNLABELLED)]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"console-page-{name}-{backend}.png"), full_page=True)

    page.goto(f"http://{address}/console/login")
    check("login")
    page.fill("input[name=account]", "a11y-shop")
    page.fill("input[name=login]", "a11y-shop")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"http://{address}/console/")
    page.wait_for_selector("[data-chart][data-chart-drawn] canvas", state="attached")
    assert page.locator("[data-chart-drawn]").count() == 2
    page.evaluate("document.fonts.ready")
    assert page.evaluate("document.fonts.check('14px \"Noto Sans SC Subset\"', '概览')")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"console-overview-charts-{request.node.callspec.id}.png"),
                    full_page=True)
    check("overview")
    for name, path in (("transactions", "/console/transactions"), ("bills", "/console/bills"),
                       ("orders", "/console/orders"), ("order", f"/console/orders/{order_id}"),
                       ("payment", f"/console/orders/pay?order_id={order_id}"),
                       ("resources", "/console/resources"), ("coupons", "/console/coupons"),
                       ("arrears", "/console/arrears"), ("users", "/console/users"),
                       ("messages", "/console/messages"), ("remittance", "/console/remittance"),
                       ("recharge", "/console/recharge"), ("renewal", "/console/renewal"),
                       ("recycle-bin", "/console/recycle-bin"),
                       ("withdrawals", "/console/withdrawals")):
        page.goto(f"http://{address}{path}")
        check(name)
    page.goto(f"http://{address}/console/ops/login")
    check("ops-login")
    page.fill("input[name=name]", "a11y-operator")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"http://{address}/console/ops/")
    check("ops-search")
    for name, path in (("ops-account", f"/console/ops/accounts/{uin}"),
                       ("ops-adjust", f"/console/ops/accounts/{uin}/adjust?sub_account=cash"
                                      "&amount=100.00&reason=a11y&idempotency_key=a11y-1"),
                       ("ops-arrears", "/console/ops/arrears"), ("ops-jobs", "/console/ops/jobs"),
                       ("ops-arrears-measures", f"/console/ops/arrears-measures?uin={uin}"),
                       ("ops-account-measures", f"/console/ops/accounts/{uin}/arrears-measures"),
                       ("ops-measure-confirm", f"/console/ops/accounts/{uin}/arrears-measures/"
                                               "confirm?measure=damages&amount=1.00&reason=a11y"
                                               "&idempotency_key=a11y-2"),
                       ("ops-reconcile", "/console/ops/reconcile"),
                       ("ops-audit", "/console/ops/audit"), ("ops-catalog", "/console/ops/catalog"),
                       ("ops-product", "/console/ops/catalog/cvm"),
                       ("ops-remittances", "/console/ops/remittances?queue=unassigned"),
                       ("ops-remittance-imports", "/console/ops/remittances/imports"),
                       ("ops-payouts", "/console/ops/payouts"),
                       ("ops-withdrawals-failed", "/console/ops/withdrawals/failed")):
        page.goto(f"http://{address}{path}")
        check(name)
    assert found == {name: [] for name in found}
    assert problems == []  # no CSP violation, no script error
