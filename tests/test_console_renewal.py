"""The console's 续费管理 and 回收站 pages: the list, its tabs and filters; the batch
auto-renew flag and period; the batch manual renewal leading to the merged
payment preview and paid there; the account's default flag and unified day; the
recycle bin and its restore; CSRF, permissions and bad input (a form message,
never a 500, nothing written).

Both backends (the ``rt`` fixture), the app in-process (TestClient).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM
from feecenter.clock import from_db_time
from feecenter.db.engine import transaction
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.renewal import settings
from feecenter.renewal.tables import renewal_accounts, renewal_settings
from feecenter.resources import service as resources
from tests.helpers import (OPS, add_cash, assert_reconciled, buy, load_sample_catalog,
                           new_account, pay, row_counts)
from tests.test_console import csrf_of, logged_in, set_password
from tests.test_console_orders import pay_form, shown_plan
from tests.test_renewal_recycle_bin import expire

CVM_MEDIUM_MONTH = 178_00


def bought(rt, uin, *items) -> list[str]:
    order_ids = buy(rt, uin, *items)
    pay(rt, uin, order_ids)
    with rt.engine.connect() as conn:
        return [orders.get_order(conn, SYSTEM, uin, o)["resource_id"] for o in order_ids]


@pytest.fixture
def shop(rt):
    """acme-cloud with cash, two 1-month cvm, one 12-month cvm and a cospack package,
    and a third 1-month cvm stopped for expiry (in the recycle bin); its owner and a
    finance and a readonly sub-user with console passwords."""
    load_sample_catalog(rt)
    uin = new_account(rt, "acme-cloud")
    add_cash(rt, uin, 10_000_00)
    with transaction(rt.engine) as conn:
        for role in ("finance", "readonly"):
            accounts.add_user(conn, rt.clock, OPS, uin, f"acme-{role}", role)
    for login in (None, "acme-finance", "acme-readonly"):
        set_password(rt, uin, login)
    binned = bought(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-beijing"))[0]
    expire(rt, uin, binned)  # the clock moves to its expiry
    ids = bought(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"),
                 ("cvm", "S5.MEDIUM4", 1, "ap-shanghai"), ("cvm", "S5.MEDIUM4", 12, "ap-guangzhou"),
                 ("cospack", "std-100GB", 1, "ap-guangzhou"))
    return uin, ids, binned


def rows(html: str, attr: str = "data-renewable") -> list[str]:
    return re.findall(rf'<tr {attr}="([^"]+)"', html)


def cell(html: str, resource_id: str, attr: str) -> str:
    row = re.search(rf'<tr data-renewable="{re.escape(resource_id)}">.*?</tr>', html, re.S)[0]
    return re.search(rf'{attr}="([^"]*)"', row)[1]


def form_key(html: str) -> str:
    return re.search(r'name="idempotency_key" value="([^"]+)"', html)[1]


def end_of(rt, uin, resource_id):
    with rt.engine.connect() as conn:
        return from_db_time(resources.get_resource(conn, uin, resource_id)["period_end"])


# ---------------------------------------------------------------- the list

@pytest.mark.spec("RNW-7")
def test_the_list_shows_renewable_resources_and_packages_on_their_own_tab(rt, shop):
    uin, (first, second, year, package), binned = shop
    http = logged_in(rt)
    page = http.get("/console/renewal")
    assert page.status_code == 200 and "<h1>续费管理</h1>" in page.text
    assert 'href="/console/renewal" aria-current="page"' in page.text  # the menu entry
    listed = rows(page.text)  # by expiry (the first two expire together); no package, no
    assert sorted(listed[:2]) == sorted([first, second]) and listed[2:] == [year]  # stopped one
    assert cell(page.text, first, "data-auto-renew") == "off" and "批量续费" in page.text
    packages = http.get("/console/renewal?tab=packages")
    assert rows(packages.text) == [package]
    assert 'formaction="/console/renewal/renew"' not in packages.text  # flag and period only
    assert "资源包需在其产品控制台手动续费" in packages.text
    assert sorted(rows(http.get("/console/renewal?within=40").text)) == sorted([first, second])
    with transaction(rt.engine) as conn:
        settings.set_auto_renew(conn, rt.clock, SYSTEM, uin, [year], auto_renew=True)
    assert rows(http.get("/console/renewal?auto=on").text) == [year]
    assert sorted(rows(http.get("/console/renewal?auto=off").text)) == sorted([first, second])
    assert rows(http.get("/console/renewal?product=cdn").text) == []
    assert len(rows(http.get("/console/renewal?product=cvm").text)) == 3
    with rt.engine.connect() as conn:
        project = resources.get_resource(conn, uin, first)["project_id"]
    assert len(rows(http.get(f"/console/renewal?project={project}").text)) == 3
    assert rows(http.get(f"/console/renewal?project={project + 999}").text) == []
    http.cookies.set("fc_lang", "en", path="/console")
    english = http.get("/console/renewal")
    assert "<h1>Renewal management</h1>" in english.text and "Turn auto-renew on" in english.text


@pytest.mark.parametrize("query, field", [
    ("within=abc", "expiring_within_days"), ("within=99999", "expiring_within_days"),
    ("auto=maybe", "auto_renew"), ("tab=other", "tab"), ("project=x", "project_id"),
    ("page=0", "page"), ("page=" + "9" * 5000, "page"), ("product=a%00b", "product_code")])
def test_bad_filters_are_field_errors_not_500s(rt, shop, query, field):
    http = logged_in(rt)
    response = http.get(f"/console/renewal?{query}")
    assert response.status_code == 400 and f'data-error-field="{field}"' in response.text


def test_a_finance_or_readonly_user_is_refused_renewal_management(rt, shop):
    uin, (first, *_), binned = shop
    for login in ("acme-finance", "acme-readonly"):
        http = logged_in(rt, login)
        for path in ("/console/renewal", "/console/recycle-bin"):
            page = http.get(path)
            assert page.status_code == 403 and 'class="notice denied"' in page.text, path
        token = csrf_of(http.get("/console/").text)
        before = row_counts(rt, renewal_settings, orders_table)
        refused = http.post("/console/renewal/auto-renew", data={
            "csrf_token": token, "resource_id": first, "auto_renew": "on"})
        assert refused.status_code == 403
        refused = http.post(f"/console/recycle-bin/{binned}/restore", data={
            "csrf_token": token, "months": "1", "idempotency_key": "k"})
        assert refused.status_code == 403
        assert row_counts(rt, renewal_settings, orders_table) == before


# ---------------------------------------------------------------- batch settings

@pytest.mark.spec("RNW-7")
def test_batch_auto_renew_on_and_off_and_the_period(rt, shop):
    uin, (first, second, year, package), _ = shop
    http = logged_in(rt)
    token = csrf_of(http.get("/console/renewal").text)
    done = http.post("/console/renewal/auto-renew", data={
        "csrf_token": token, "resource_id": [first, second], "auto_renew": "on", "months": "3"})
    assert done.status_code == 303 and done.headers["location"] == "/console/renewal"
    page = http.get("/console/renewal").text
    assert [cell(page, r, "data-auto-renew") for r in (first, second, year)] == ["on", "on", "off"]
    assert cell(page, first, "data-months") == "1"  # the flag alone: the period unchanged
    done = http.post("/console/renewal/period", data={
        "csrf_token": token, "resource_id": [second], "months": "3", "tab": "resources"})
    assert done.status_code == 303
    page = http.get("/console/renewal").text
    assert cell(page, second, "data-months") == "3"
    assert cell(page, second, "data-auto-renew") == "on"
    http.post("/console/renewal/auto-renew", data={
        "csrf_token": token, "resource_id": [first], "auto_renew": "off"})
    assert cell(http.get("/console/renewal").text, first, "data-auto-renew") == "off"
    done = http.post("/console/renewal/auto-renew", data={
        "csrf_token": token, "resource_id": [package], "auto_renew": "on", "tab": "packages"})
    assert done.headers["location"] == "/console/renewal?tab=packages"
    assert cell(http.get("/console/renewal?tab=packages").text, package, "data-auto-renew") == "on"


@pytest.mark.parametrize("path, data, field, status", [
    ("auto-renew", {"auto_renew": "on"}, "resource_ids", 400),
    ("auto-renew", {"resource_id": "FIRST", "auto_renew": "maybe"}, "auto_renew", 400),
    ("auto-renew", {"resource_id": "FIRST"}, "auto_renew", 400),
    ("auto-renew", {"resource_id": ["FIRST", "FIRST"], "auto_renew": "on"}, "resource_ids", 400),
    ("auto-renew", {"resource_id": "nope", "auto_renew": "on"}, "resource_id", 404),
    ("auto-renew", {"resource_id": "a\x00b", "auto_renew": "on"}, "resource_id", 400),
    ("period", {"resource_id": "FIRST", "months": "x"}, "months", 400),
    ("period", {"resource_id": "FIRST", "months": "999"}, "months", 400),
    ("renew", {"resource_id": "FIRST", "renew_months": "x", "idempotency_key": "k"}, "months",
     400),
    ("renew", {"resource_id": "FIRST"}, "idempotency_key", 400),
    ("renew", {"resource_id": "PACKAGE", "idempotency_key": "k"}, "resource_ids", 400),
    ("renew", {"idempotency_key": "k"}, "resource_ids", 400),
    ("settings", {"auto_renew_default": "on", "unified_day": "29"}, "unified_day", 400),
    ("settings", {"auto_renew_default": "on", "unified_day": "x"}, "unified_day", 400),
    ("settings", {"auto_renew_default": "yes"}, "auto_renew_default", 400),
    ("settings", {}, "auto_renew_default", 400)])
def test_bad_batch_forms_are_field_errors_and_write_nothing(rt, shop, path, data, field, status):
    uin, (first, _, _, package), _ = shop
    http = logged_in(rt)
    token = csrf_of(http.get("/console/renewal").text)
    swap = {"FIRST": first, "PACKAGE": package}
    data = {k: ([swap.get(x, x) for x in v] if isinstance(v, list) else swap.get(v, v))
            for k, v in data.items()}
    before = row_counts(rt, renewal_settings, renewal_accounts, orders_table)
    response = http.post(f"/console/renewal/{path}", data={"csrf_token": token, **data})
    assert response.status_code == status and f'data-error-field="{field}"' in response.text
    assert "<h1>续费管理</h1>" in response.text
    assert row_counts(rt, renewal_settings, renewal_accounts, orders_table) == before


def test_forms_without_the_csrf_token_are_refused(rt, shop):
    uin, (first, *_), binned = shop
    http = logged_in(rt)
    before = row_counts(rt, renewal_settings, renewal_accounts, orders_table)
    for path, data in (("/console/renewal/auto-renew", {"resource_id": first, "auto_renew": "on"}),
                       ("/console/renewal/period", {"resource_id": first, "months": "2"}),
                       ("/console/renewal/renew", {"resource_id": first,
                                                   "idempotency_key": "k"}),
                       ("/console/renewal/settings", {"auto_renew_default": "on"}),
                       (f"/console/recycle-bin/{binned}/restore", {"months": "1",
                                                                  "idempotency_key": "k"})):
        assert http.post(path, data={**data, "csrf_token": "forged"}).status_code == 403, path
    assert row_counts(rt, renewal_settings, renewal_accounts, orders_table) == before


@pytest.mark.spec("RNW-5")
def test_the_account_default_and_unified_day(rt, shop):
    uin, (first, *_), _ = shop
    http = logged_in(rt)
    token = csrf_of(http.get("/console/renewal").text)
    done = http.post("/console/renewal/settings", data={
        "csrf_token": token, "auto_renew_default": "on", "unified_day": "15"})
    assert done.status_code == 303
    with rt.engine.connect() as conn:
        assert settings.get_account_settings(conn, SYSTEM, uin) == {
            "auto_renew_default": True, "unified_day": 15}
    page = http.get("/console/renewal").text
    assert '<option value="15" selected>' in page
    assert cell(page, first, "data-auto-renew") == "on"  # no setting of its own: the default
    http.post("/console/renewal/settings", data={
        "csrf_token": token, "auto_renew_default": "off", "unified_day": ""})
    with rt.engine.connect() as conn:
        assert settings.get_account_settings(conn, SYSTEM, uin) == {
            "auto_renew_default": False, "unified_day": None}


# ---------------------------------------------------------------- batch renewal

@pytest.mark.spec("RNW-7")
def test_batch_renewal_leads_to_the_merged_payment_and_a_double_submit_makes_the_same_orders(
        rt, shop):
    uin, (first, second, *_), _ = shop
    before = {r: end_of(rt, uin, r) for r in (first, second)}
    http = logged_in(rt)
    page = http.get("/console/renewal").text
    data = {"csrf_token": csrf_of(page), "idempotency_key": form_key(page),
            "resource_id": [first, second], "renew_months": "2"}
    made = http.post("/console/renewal/renew", data=data)
    assert made.status_code == 303
    target = urlsplit(made.headers["location"])
    assert target.path == "/console/orders/pay"
    order_refs = parse_qs(target.query)["order_id"]
    assert len(order_refs) == 2
    assert http.post("/console/renewal/renew", data=data).headers["location"] == made.headers[
        "location"]  # the same orders again
    preview = http.get(made.headers["location"])
    assert preview.status_code == 200 and "data-preview" in preview.text
    assert shown_plan(preview.text)["amount"] == f"¥{4 * CVM_MEDIUM_MONTH // 100:,}.00"
    paid = http.post("/console/orders/pay", data=pay_form(preview.text))
    assert paid.status_code == 200 and "data-payment" in paid.text
    for resource_id in (first, second):
        grown = end_of(rt, uin, resource_id) - before[resource_id]
        assert 59 <= grown.days <= 62
    assert_reconciled(rt, uin)


# ---------------------------------------------------------------- recycle bin

@pytest.mark.spec("RNW-6")
def test_the_recycle_bin_shows_release_dates_and_restores_through_payment(rt, shop):
    uin, (first, *_), binned = shop
    expired_at = end_of(rt, uin, binned)
    http = logged_in(rt)
    page = http.get("/console/recycle-bin")
    assert page.status_code == 200 and "<h1>回收站</h1>" in page.text
    assert rows(page.text, "data-binned") == [binned]
    row = re.search(rf'<tr data-binned="{binned}">.*?</tr>', page.text, re.S)[0]
    assert re.search(r"data-release>\d{4}-\d\d-\d\d 00:00:00<", row)
    assert "data-days-left>8<" in row
    data = {"csrf_token": csrf_of(page.text), "idempotency_key": form_key(page.text),
            "months": "1"}
    made = http.post(f"/console/recycle-bin/{binned}/restore", data=data)
    assert made.status_code == 303 and made.headers["location"].startswith(
        "/console/orders/pay?order_id=")
    assert http.post(f"/console/recycle-bin/{binned}/restore", data=data).headers[
        "location"] == made.headers["location"]  # a double submit: the same order
    preview = http.get(made.headers["location"])
    paid = http.post("/console/orders/pay", data=pay_form(preview.text))
    assert paid.status_code == 200
    order_id = int(made.headers["location"].rsplit("=", 1)[1])
    with rt.engine.connect() as conn:
        order = orders.get_order(conn, SYSTEM, uin, order_id)
    assert order["kind"] == "renew" and order["state"] == "delivered"
    assert order["resource_id"] == binned
    new_end = end_of(rt, uin, binned)
    assert 28 <= (new_end - expired_at).days <= 31 and new_end.time() == expired_at.time()
    assert_reconciled(rt, uin)


@pytest.mark.parametrize("target, months, field, status", [
    ("FIRST", "1", "resource_id", 409), ("nope", "1", "resource_id", 404),
    ("a%00b", "1", "resource_id", 400), ("BINNED", "x", "months", 400),
    ("BINNED", "13", "months", 400), ("BINNED", "", "months", 400)])
def test_a_bad_restore_is_a_field_error_and_writes_nothing(rt, shop, target, months, field,
                                                          status):
    uin, (first, *_), binned = shop
    http = logged_in(rt)
    page = http.get("/console/recycle-bin").text
    target = {"FIRST": first, "BINNED": binned}.get(target, target)
    before = row_counts(rt, orders_table)
    response = http.post(f"/console/recycle-bin/{target}/restore", data={
        "csrf_token": csrf_of(page), "idempotency_key": form_key(page), "months": months})
    assert response.status_code == status and f'data-error-field="{field}"' in response.text
    assert "<h1>回收站</h1>" in response.text
    assert row_counts(rt, orders_table) == before
