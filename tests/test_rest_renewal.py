"""Renewal management on the native REST API (api/renewal.py; docs/api.md,
"Renewal"): the list, the batch auto-renew settings, the account's settings, the
batch renewal with its merged payment preview or paid at once, and the
unified-expiry preview. Bad input: a 4xx naming the field, nothing written."""

from __future__ import annotations

import pytest

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM
from feecenter.auth import service as auth
from feecenter.db.engine import transaction
from feecenter.ledger.tables import ledger_transactions
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.renewal.tables import renewal_accounts, renewal_settings
from tests.helpers import OPS, assert_reconciled, buy, pay, row_counts
from tests.rest_harness import Signed
from tests.test_rest_strict_input import assert_refused


@pytest.fixture
def shop(rest_shop):
    """The REST shop with two cvm bought for a month (expiring 2 April 2026 10:00)
    and a resource package."""
    rt, uin = rest_shop.rt, rest_shop.uin
    order_ids = buy(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"),
                    ("cvm", "S5.MEDIUM4", 1, "ap-shanghai"),
                    ("cospack", "std-100GB", 1, "ap-guangzhou"))
    pay(rt, uin, order_ids)
    with rt.engine.connect() as conn:
        ids = [o["resource_id"] for o in orders.get_orders(conn, SYSTEM, uin, order_ids)]
    return rest_shop, ids


def written(rt):
    return row_counts(rt, ledger_transactions, orders_table, renewal_settings, renewal_accounts)


def _path(shop, tail=""):
    return f"/api/v1/accounts/{shop.uin}/renewal{tail}"


@pytest.mark.spec("RNW-7")
def test_the_list_filters_like_the_service_and_packages_have_their_own(shop):
    rest, (first, second, package) = shop
    listed = rest.customer.send("GET", _path(rest, "s")).json()
    assert listed["total"] == 2  # same expiry: by resource id
    assert [i["resource_id"] for i in listed["items"]] == sorted([first, second])
    assert listed["items"][0]["period_end"] == "2026-04-02 10:00:00"
    packages = rest.customer.send("GET", _path(rest, "s"), query={"packages": "true"}).json()
    assert [i["resource_id"] for i in packages["items"]] == [package]
    response = rest.customer.send("POST", _path(rest, "s/auto-renew"),
                                  {"resource_ids": [second], "auto_renew": True, "months": 3})
    assert response.status_code == 200, response.text
    assert response.json()["updated"] == 1
    on = rest.customer.send("GET", _path(rest, "s"), query={"auto_renew": "true"}).json()
    assert [(i["resource_id"], i["months"]) for i in on["items"]] == [(second, 3)]
    regional = rest.customer.send("GET", _path(rest, "s"),
                                  query={"product_code": "cvm", "limit": "1"}).json()
    assert regional["total"] == 2 and len(regional["items"]) == 1


@pytest.mark.parametrize("query, field", [
    ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"offset": "-1"}, "offset"),
    ({"expiring_within_days": "-1"}, "expiring_within_days"),
    ({"expiring_within_days": "１"}, "expiring_within_days"),
    ({"auto_renew": "maybe"}, "auto_renew"), ({"project_id": "0"}, "project_id"),
    ({"product_code": "c v m"}, "product_code"),
])
def test_bad_list_queries_are_400_naming_the_parameter(shop, query, field):
    rest, _ = shop
    assert_refused(rest.customer.send("GET", _path(rest, "s"), query=query), 400, field)


@pytest.mark.parametrize("body, field", [
    ({"resource_ids": [], "auto_renew": True}, "resource_ids"),
    ({"resource_ids": ["{first}"], "auto_renew": "yes"}, "auto_renew"),
    ({"resource_ids": ["{first}"], "months": 0}, "months"),
    ({"resource_ids": ["{first}"], "months": "1"}, "months"),
    ({"resource_ids": ["{first}"]}, "auto_renew"),  # nothing to set
    ({"resource_ids": ["{first}", "{first}"], "auto_renew": True}, "resource_ids"),
    ({"resource_ids": ["{first}"], "auto_renew": True, "colour": "red"}, "colour"),
])
def test_bad_auto_renew_bodies_are_400_and_write_nothing(shop, body, field):
    rest, (first, _, _) = shop
    body = {k: [first if r == "{first}" else r for r in v] if k == "resource_ids" else v
            for k, v in body.items()}
    before = written(rest.rt)
    assert_refused(rest.customer.send("POST", _path(rest, "s/auto-renew"), body), 400, field)
    assert written(rest.rt) == before


@pytest.mark.spec("RNW-5")
def test_account_settings_change_only_the_fields_given(shop):
    rest, _ = shop
    settings = _path(rest, "-settings")
    assert rest.customer.send("GET", settings).json() == {"auto_renew_default": False,
                                                          "unified_day": None}
    assert rest.customer.send("PUT", settings, {"unified_day": 10}).json() == {
        "auto_renew_default": False, "unified_day": 10}
    assert rest.customer.send("PUT", settings, {"auto_renew_default": True}).json() == {
        "auto_renew_default": True, "unified_day": 10}
    assert rest.customer.send("PUT", settings, {"unified_day": None}).json()["unified_day"] is None
    before = written(rest.rt)
    for body, field in (({"unified_day": 29}, "unified_day"), ({"unified_day": 0}, "unified_day"),
                        ({"unified_day": "5"}, "unified_day"), ({}, "unified_day"),
                        ({"auto_renew_default": None}, "auto_renew_default"),
                        ({"auto_renew_default": "true"}, "auto_renew_default")):
        assert_refused(rest.customer.send("PUT", settings, body), 400, field)
    assert written(rest.rt) == before


@pytest.mark.spec("RNW-5", "RNW-7")
def test_batch_renewal_shows_the_merged_payment_then_the_pay_endpoint_pays(shop):
    rest, (first, second, _) = shop
    rest.customer.send("PUT", _path(rest, "-settings"), {"unified_day": 10})
    preview = rest.customer.send("GET", _path(rest, "s/preview"),
                                 query={"resource_id": [first, second]}).json()
    # 2 April + 1 month = 2 May, aligned to 10 May: 8 days of May, 178.00 × 8/31 = 45.94
    assert [(i["new_expiry"], i["term_amount"], i["unified_extra"], i["amount"])
            for i in preview["items"]] == [("2026-05-10 10:00:00", "178.00", "45.94", "223.94")] * 2
    assert preview["total"] == "447.88"
    response = rest.customer.send("POST", _path(rest, "s/orders"),
                                  {"resource_ids": [first, second], "idempotency_key": "b-1"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert [o["amount"] for o in created["orders"]] == ["223.94", "223.94"]
    assert [(o["unified_day"], o["unified_extra"])
            for o in created["orders"]] == [(10, "45.94")] * 2
    assert created["payment_preview"]["totals"]["amount"] == "447.88"
    again = rest.customer.send("POST", _path(rest, "s/orders"),
                               {"resource_ids": [first, second], "idempotency_key": "b-1"}).json()
    assert [o["order_no"] for o in again["orders"]] == [o["order_no"] for o in created["orders"]]
    paid = rest.customer.send("POST", f"/api/v1/accounts/{rest.uin}/payments",
                              {"order_ids": [o["order_no"] for o in created["orders"]],
                               "idempotency_key": "pay-b-1"})
    assert paid.status_code == 201, paid.text
    assert paid.json()["amount"] == "447.88"
    listed = rest.customer.send("GET", _path(rest, "s")).json()["items"]
    assert [i["period_end"] for i in listed] == ["2026-05-10 10:00:00"] * 2  # as previewed
    assert_reconciled(rest.rt, rest.uin)


@pytest.mark.spec("RNW-7")
def test_batch_renewal_paid_at_once_needs_a_key_and_repeats_once(shop):
    rest, (first, second, package) = shop
    before = written(rest.rt)
    body = {"resource_ids": [first, second], "months": 2, "pay": True}
    assert_refused(rest.customer.send("POST", _path(rest, "s/orders"), body), 400,
                   "idempotency_key")
    assert_refused(rest.customer.send("POST", _path(rest, "s/orders"),
                                      {"resource_ids": [first, package], "idempotency_key": "x"}),
                   400, "resource_ids")
    assert_refused(rest.customer.send("POST", _path(rest, "s/orders"),
                                      {"resource_ids": [first], "months": 61}), 400, "months")
    assert written(rest.rt) == before
    done = rest.customer.send("POST", _path(rest, "s/orders"), {**body, "idempotency_key": "p-1"})
    assert done.status_code == 201, done.text
    payment = done.json()["payment"]
    assert payment["created"] is True and payment["amount"] == "712.00"  # 2 × 2 × 178.00
    assert {o["state"] for o in done.json()["orders"]} == {"delivered"}
    repeat = rest.customer.send("POST", _path(rest, "s/orders"), {**body, "idempotency_key": "p-1"})
    assert repeat.json()["payment"]["payment_id"] == payment["payment_id"]
    assert repeat.json()["payment"]["created"] is False
    listed = rest.customer.send("GET", _path(rest, "s")).json()["items"]
    assert [i["period_end"] for i in listed] == ["2026-06-02 10:00:00"] * 2
    assert_reconciled(rest.rt, rest.uin)


@pytest.mark.parametrize("query, field", [
    ({}, "resource_id"), ({"resource_id": "{first}", "months": "0"}, "months"),
    ({"resource_id": "{first}", "months": "x"}, "months"),
    ({"resource_id": "x" * 101}, "resource_id.0"),
])
def test_bad_preview_queries_are_400_naming_the_parameter(shop, query, field):
    rest, (first, _, _) = shop
    query = {k: v.format(first=first) for k, v in query.items()}
    assert_refused(rest.customer.send("GET", _path(rest, "s/preview"), query=query), 400, field)


@pytest.mark.spec("ACC-2")
def test_renewal_management_is_the_owners_and_admins_paying_is_finances(shop):
    rest, (first, second, _) = shop
    rt = rest.rt
    with transaction(rt.engine) as conn:
        signed = {}
        for login, role in (("adm", "admin"), ("fin", "finance"), ("ro", "readonly")):
            accounts.add_user(conn, rt.clock, OPS, rest.uin, login, role)
            signed[role] = Signed(rt, rest.customer.http,
                                  auth.create_api_key(conn, rt.clock, OPS, rest.uin, login))
    admin, finance, readonly = signed["admin"], signed["finance"], signed["readonly"]
    for who in (finance, readonly):
        assert who.send("GET", _path(rest, "s")).status_code == 403
        assert who.send("PUT", _path(rest, "-settings"), {"unified_day": 3}).status_code == 403
        assert who.send("POST", _path(rest, "s/orders"),
                        {"resource_ids": [first]}).status_code == 403
    assert readonly.send("GET", _path(rest, "-settings")).json()["unified_day"] is None
    assert admin.send("PUT", _path(rest, "-settings"), {"unified_day": 3}).status_code == 200
    made = admin.send("POST", _path(rest, "s/orders"), {"resource_ids": [first, second]})
    assert made.status_code == 201 and made.json()["payment_preview"] is None
    assert admin.send("POST", _path(rest, "s/orders"),
                      {"resource_ids": [first], "pay": True, "idempotency_key": "adm-1"}
                      ).status_code == 403
    paid = finance.send("POST", f"/api/v1/accounts/{rest.uin}/payments",
                        {"order_ids": [o["order_no"] for o in made.json()["orders"]],
                         "idempotency_key": "fin-1"})
    assert paid.status_code == 201, paid.text
    assert_reconciled(rt, rest.uin)
