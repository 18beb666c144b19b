"""续费管理 and 回收站 in a real browser (Debian's chromium through Playwright; skipped
without it, except under CI=true): a customer turns auto-renew on for two
resources in one batch, renews both in one batch through the merged payment
preview and sees their new expiries; then restores a resource stopped for expiry
from the recycle bin through the payment page. Screenshots go to
artifacts/screenshots/.
"""

from __future__ import annotations

import pytest

from feecenter.accounts.permissions import SYSTEM
from feecenter.auth import sessions
from feecenter.clock import add_months, from_db_time
from feecenter.db.engine import transaction
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.present.text import time_text
from feecenter.resources import service as resources
from tests.helpers import (OPS, add_cash, assert_reconciled, buy, load_sample_catalog, new_account,
                           pay)
from tests.test_console_browser import (  # noqa: F401 - browser_page is a fixture
    PASSWORD, browser_page, log_in, shooter, watch_errors)


def bought(rt, uin, *items) -> list[str]:
    order_ids = buy(rt, uin, *items)
    pay(rt, uin, order_ids)
    with rt.engine.connect() as conn:
        return [orders.get_order(conn, SYSTEM, uin, o)["resource_id"] for o in order_ids]


def expiry(rt, uin, resource_id):
    with rt.engine.connect() as conn:
        return from_db_time(resources.get_resource(conn, uin, resource_id)["period_end"])


@pytest.mark.spec("RNW-7", "RNW-6")
def test_batch_auto_renew_batch_renewal_and_restore_from_the_recycle_bin(
        live_server, browser_page, request):  # noqa: F811 - the fixture imported above
    runtime, address = live_server
    load_sample_catalog(runtime)
    uin = new_account(runtime, "browser-renewal")
    add_cash(runtime, uin, 5_000_00)
    with transaction(runtime.engine) as conn:
        sessions.set_password(conn, runtime.clock, OPS, uin, None, PASSWORD)
    first, second, binned = bought(runtime, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"),
                                   ("cvm", "S5.MEDIUM4", 1, "ap-shanghai"),
                                   ("cvm", "S5.MEDIUM4", 1, "ap-beijing"))
    with transaction(runtime.engine) as conn:  # stopped for expiry: in the recycle bin
        resources.stop_resource(conn, binned, runtime.clock.now(), "expired")
    before = {r: expiry(runtime, uin, r) for r in (first, second, binned)}
    from playwright.sync_api import expect

    page = browser_page
    problems, shot = watch_errors(page), shooter(page, request)
    log_in(page, address, "browser-renewal", "/console/renewal")
    assert page.locator("h1").inner_text() == "续费管理"
    assert page.locator("tr[data-renewable]").count() == 2  # the stopped one is not listed
    for resource_id in (first, second):
        expect(page.locator(f'tr[data-renewable="{resource_id}"] [data-auto-renew]')
               ).to_have_attribute("data-auto-renew", "off")
        page.check(f'tr[data-renewable="{resource_id}"] input[name=resource_id]')
    shot("renewal")
    page.click("button[data-action=auto-on]")
    page.wait_for_url(f"http://{address}/console/renewal")
    for resource_id in (first, second):
        expect(page.locator(f'tr[data-renewable="{resource_id}"] [data-auto-renew]')
               ).to_have_attribute("data-auto-renew", "on")
    assert page.locator('[data-auto-renew="on"]').all_inner_texts() == ["开启", "开启"]

    for resource_id in (first, second):
        page.check(f'tr[data-renewable="{resource_id}"] input[name=resource_id]')
    page.click("button[data-action=renew]")  # each resource's own period: 1 month
    page.wait_for_selector("section[data-preview]")
    assert page.locator("h1").inner_text() == "支付订单"
    assert page.locator("tr[data-line]").count() == 2
    assert page.locator('section[data-preview] [data-total="amount"]').inner_text() == "¥356.00"
    shot("renewal-payment-preview")
    page.click("form.pay button[type=submit]")
    page.wait_for_selector("[data-payment]")
    assert page.locator("h1").inner_text() == "支付成功"

    page.click('nav.menu a[href="/console/renewal"]')
    page.wait_for_selector("tr[data-renewable]")
    for resource_id in (first, second):
        renewed = expiry(runtime, uin, resource_id)
        assert renewed == add_months(before[resource_id], 1)
        expect(page.locator(f'tr[data-renewable="{resource_id}"] [data-expires]')
               ).to_have_text(time_text(renewed))
    shot("renewal-renewed")

    page.click('nav.menu a[href="/console/recycle-bin"]')
    page.wait_for_selector(f'tr[data-binned="{binned}"]')
    assert page.locator("h1").inner_text() == "回收站"
    assert page.locator(f'tr[data-binned="{binned}"] [data-days-left]').inner_text() in ("7", "8")
    shot("recycle-bin")
    page.click(f'tr[data-binned="{binned}"] form.restore button[type=submit]')
    page.wait_for_selector("section[data-preview]")
    assert page.locator('section[data-preview] [data-total="amount"]').inner_text() == "¥178.00"
    page.click("form.pay button[type=submit]")
    page.wait_for_selector("[data-payment]")
    with runtime.engine.connect() as conn:
        (order,) = [dict(r) for r in conn.execute(orders_table.select().where(
            orders_table.c.resource_id == binned, orders_table.c.kind == "renew")).mappings()]
    assert order["state"] == "delivered" and order["paid_at"] is not None  # paid, delivered
    assert expiry(runtime, uin, binned) == add_months(before[binned], 1)  # from the old expiry
    with runtime.engine.connect() as conn:  # restored (RNW-6): running, its stop ended
        assert resources.get_resource(conn, uin, binned)["state"] == "running"
        assert resources.open_stops(conn, [binned]) == {}
    page.goto(page.url.split("/console/")[0] + "/console/recycle-bin")
    assert "回收站" in page.locator("h1").inner_text()
    assert page.locator(f'tr[data-binned="{binned}"]').count() == 0
    shot("recycle-bin-restored")
    assert_reconciled(runtime, uin)
    assert problems == []  # no CSP violation, no script error
