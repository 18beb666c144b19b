"""下载中心 in a real browser (Debian's chromium through Playwright; skipped without
it, except under CI=true): a customer with two prepaid purchases this month
requests the month's bill lines as CSV, watches the export finish (the list polls
through htmx), downloads it through its signed link and finds the two lines with
their amounts. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import pytest

from feecenter.accounts.permissions import SYSTEM
from feecenter.auth import sessions
from feecenter.clock import business_date
from feecenter.db.engine import transaction
from feecenter.money import format_yuan
from feecenter.orders import service as orders
from tests.helpers import OPS, add_cash, buy, load_sample_catalog, new_account, pay
from tests.test_console_browser import (  # noqa: F401 - browser_page is a fixture
    PASSWORD, browser_page, log_in, shooter, watch_errors)


@pytest.mark.spec("BIL-7")
def test_request_a_csv_of_the_month_see_it_finish_and_download_it(live_server, browser_page,  # noqa: F811
                                                                  request, tmp_path):
    runtime, address = live_server
    runtime.settings = dataclasses.replace(runtime.settings, export_dir=tmp_path / "exports")
    load_sample_catalog(runtime)
    uin = new_account(runtime, "browser-exports")
    add_cash(runtime, uin, 5_000_00)
    with transaction(runtime.engine) as conn:
        sessions.set_password(conn, runtime.clock, OPS, uin, None, PASSWORD)
    order_ids = buy(runtime, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"),
                    ("cvm", "S5.MEDIUM4", 2, "ap-shanghai"))
    pay(runtime, uin, order_ids)
    with runtime.engine.connect() as conn:
        amounts = {f"prepaid:{o}": orders.get_order(conn, SYSTEM, uin, o)["amount"]
                   for o in order_ids}
    month = business_date(runtime.clock.now()).strftime("%Y-%m")
    from playwright.sync_api import expect

    page = browser_page
    problems, shot = watch_errors(page), shooter(page, request)
    log_in(page, address, "browser-exports", "/console/bills/downloads")
    assert page.locator("h1").inner_text() == "下载中心"
    expect(page.locator("input[name=month]")).to_have_value(month)
    page.select_option("select[name=level]", "lines")
    page.select_option("select[name=fmt]", "csv")
    page.click("button[data-action=export]")
    row = page.locator("tr[data-export]")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-state", "done", timeout=30_000)
    expect(row.locator("[data-progress]")).to_contain_text("2 条")
    shot("bill-exports")
    with page.expect_download() as started:
        row.locator("a[data-download]").click()
    download = started.value
    assert download.suggested_filename.startswith(f"bill-{uin}-{month}-lines-")
    content = Path(download.path()).read_bytes()
    assert content.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM, for Excel
    lines = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    assert {line["明细 ID Line ID"]: line["扣费（元） Deducted (CNY)"] for line in lines} == {
        line_id: format_yuan(amount) for line_id, amount in amounts.items()}
    assert {line["计费模式 Pay mode"] for line in lines} == {"prepaid"}
    assert {line["账单月份 Bill month"] for line in lines} == {month}
    assert problems == []
