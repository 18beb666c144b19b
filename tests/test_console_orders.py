"""The console's 订单 pages: the list and its filter and pages, one order, the
merged payment with the service's preview (against the REST preview), paying
with a coupon (against the REST balance), a double submit that pays once, the
readonly user refused, voiding, CSRF, bad input and escaping.

Both backends (the ``rt`` fixture), the app in-process (TestClient).
"""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from feecenter.accounts import service as accounts
from feecenter.api.app import create_app
from feecenter.coupons import rules as coupon_rules
from feecenter.coupons import service as coupons
from feecenter.db.engine import transaction
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.orders.rules import order_no
from feecenter.orders.tables import orders as orders_table
from feecenter.orders.tables import payments
from tests.helpers import (OPS, add_cash, api_key, assert_reconciled, buy, load_sample_catalog,
                           new_account, row_counts)
from tests.rest_harness import HOST, Signed
from tests.test_console import XSS, as_yuan_text, csrf_of, figures, logged_in, set_password

PARTS = ("amount", "coupon", "gift", "cash", "credit")


@pytest.fixture
def store(rt):
    """acme-cloud with ¥1,000.00 cash, a ¥25.00 voucher, three unpaid cvm orders (one
    named hostilely), its owner and a readonly sub-user with console passwords."""
    load_sample_catalog(rt)
    uin = new_account(rt, "acme-cloud")
    add_cash(rt, uin, 1_000_00)
    with transaction(rt.engine) as conn:
        accounts.add_user(conn, rt.clock, OPS, uin, "acme-readonly", "readonly")
        voucher = coupons.grant(conn, rt.clock, OPS, uin, coupon_rules.Terms(
            kind=coupon_rules.VOUCHER, pay_mode=coupon_rules.PREPAID, face_amount=25_00,
            valid_days=30), campaign="console")
    for login in (None, "acme-readonly"):
        set_password(rt, uin, login)
    ids = buy(rt, uin) + buy(rt, uin) + buy(rt, uin, resource_name=XSS)
    return uin, ids, voucher


def number(rt, order_id: int) -> str:
    with rt.engine.connect() as conn:
        created = conn.execute(orders_table.select().where(orders_table.c.id == order_id)
                               ).mappings().one()["created_at"]
    return order_no(order_id, created)


def rest(rt, uin) -> Signed:
    return Signed(rt, TestClient(create_app(rt), base_url=f"http://{HOST}"), api_key(rt, uin))


def shown_plan(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-total="(\w+)">([^<]*)<', html))


def pay_form(html: str) -> dict:
    form = re.search(r'<form method="post" action="/console/orders/pay".*?</form>', html, re.S)[0]
    fields = re.findall(r'name="(\w+)" value="([^"]*)"', form)
    data: dict[str, list[str]] = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    return data


def written(rt) -> tuple[int, ...]:
    return row_counts(rt, payments, ledger_transactions, statement_entries)


def states(rt, ids) -> list[str]:
    with rt.engine.connect() as conn:
        rows = dict(conn.execute(orders_table.select().with_only_columns(
            orders_table.c.id, orders_table.c.state).where(orders_table.c.id.in_(ids))).all())
    return [rows[i] for i in ids]


# ---------------------------------------------------------------- list and detail

def test_the_list_filters_by_state_and_pages(rt, store):
    uin, ids, _ = store
    http = logged_in(rt)
    page = http.get("/console/orders")
    assert page.status_code == 200 and "<h1>订单</h1>" in page.text
    assert 'href="/console/orders" aria-current="page"' in page.text  # the menu entry
    for order_id in ids:
        assert f'data-order="{order_id}"' in page.text
        assert f'value="{number(rt, order_id)}"' in page.text  # unpaid: selectable
    assert "¥178.00" in page.text and "待支付" in page.text
    assert "第 1/1 页，共 3 个订单" in page.text
    assert 'data-order' not in http.get("/console/orders?state=paid").text
    assert len([i for _ in range(19) for i in buy(rt, uin)]) == 19  # 22 unpaid in all
    first, second = http.get("/console/orders?state=unpaid"), http.get(
        "/console/orders?state=unpaid&page=2")
    assert first.text.count("data-order=") == 20 and second.text.count("data-order=") == 2
    assert 'rel="next" href="/console/orders?state=unpaid&amp;page=2"' in first.text
    assert 'rel="prev"' in second.text


@pytest.mark.parametrize("query, field", [("state=gone", "state"), ("page=0", "page"),
                                          ("page=x", "page")])
def test_bad_filters_are_field_errors_in_the_pages_language(rt, store, query, field):
    http = logged_in(rt)
    zh = http.get(f"/console/orders?{query}")
    assert zh.status_code == 400 and f'data-error-field="{field}"' in zh.text
    http.cookies.set("fc_lang", "en", path="/console")
    en = http.get(f"/console/orders?{query}")
    assert en.status_code == 400 and f'data-error-field="{field}"' in en.text
    assert "<h1>Orders</h1>" in en.text
    error = re.search(r"data-error[^>]*>([^<]*)<", en.text)[1]
    assert error.isascii() and error != re.search(r"data-error[^>]*>([^<]*)<", zh.text)[1]


def test_one_order_and_an_unknown_one(rt, store):
    _, ids, _ = store
    http = logged_in(rt)
    shown = http.get(f"/console/orders/{number(rt, ids[0])}")
    assert shown.status_code == 200 and f"订单 {number(rt, ids[0])}" in shown.text
    assert 'data-money="amount">¥178.00<' in shown.text and 'data-state="unpaid"' in shown.text
    assert http.get(f"/console/orders/{ids[0]}").status_code == 200  # the internal id too
    assert http.get("/console/orders/999999999").status_code == 404
    bad = http.get("/console/orders/abc")
    assert bad.status_code == 400 and 'data-error-field="order"' in bad.text


def test_hostile_resource_names_are_escaped(rt, store):
    _, ids, _ = store
    http = logged_in(rt)
    for path in ("/console/orders", f"/console/orders/{number(rt, ids[2])}",
                 f"/console/orders/pay?order_id={number(rt, ids[2])}"):
        page = http.get(path)
        assert page.status_code == 200
        assert XSS not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in http.get("/console/orders").text
    reflected = http.get("/console/orders?state=%3Cscript%3E")
    assert reflected.status_code == 400 and "<script>" not in reflected.text


# ---------------------------------------------------------------- payment

@pytest.mark.spec("ORD-3")
def test_the_preview_shows_what_the_rest_preview_shows(rt, store):
    uin, ids, voucher = store
    http = logged_in(rt)
    before = written(rt)
    numbers = [number(rt, i) for i in ids[:2]]
    page = http.get("/console/orders/pay", params={"order_id": numbers})
    assert page.status_code == 200
    api = rest(rt, uin).send("POST", f"/api/v1/accounts/{uin}/payments/preview",
                             {"order_ids": numbers}).json()
    shown = shown_plan(page.text)
    assert {k: as_yuan_text(v) for k, v in shown.items()} == api["totals"]
    assert shown == {"amount": "¥356.00", "coupon": "¥25.00", "gift": "¥0.00",
                     "cash": "¥331.00", "credit": "¥0.00"}
    (use,) = api["coupon_uses"]
    assert f'data-use="{voucher}"' in page.text and use["coupon_id"] == voucher
    # picking no coupon: the REST preview with coupon_ids []
    none = http.get("/console/orders/pay", params={"order_id": numbers, "coupons": "pick"})
    api_none = rest(rt, uin).send("POST", f"/api/v1/accounts/{uin}/payments/preview",
                                  {"order_ids": numbers, "coupon_ids": []}).json()
    assert {k: as_yuan_text(v) for k, v in shown_plan(none.text).items()} == api_none["totals"]
    assert written(rt) == before  # a preview writes nothing


def test_a_coupon_that_does_not_apply_says_why(rt, store):
    uin, ids, _ = store
    with transaction(rt.engine) as conn:
        big = coupons.grant(conn, rt.clock, OPS, uin, coupon_rules.Terms(
            kind=coupon_rules.VOUCHER, pay_mode=coupon_rules.PREPAID, face_amount=10_00,
            threshold=10_000_00, valid_days=30), campaign="console")
    http = logged_in(rt)
    numbers = [number(rt, ids[0])]
    page = http.get("/console/orders/pay", params={"order_id": numbers})
    api = rest(rt, uin).send("POST", f"/api/v1/accounts/{uin}/payments/preview",
                             {"order_ids": numbers}).json()
    reason = api["coupons_skipped"][str(big)]
    assert f'<li data-skipped="{big}">#{big}: {reason["zh"]}</li>' in page.text
    http.cookies.set("fc_lang", "en", path="/console")
    english = http.get("/console/orders/pay", params={"order_id": numbers}).text
    assert f'#{big}: {reason["en"]}</li>' in english


@pytest.mark.spec("ORD-3", "BAL-4")
def test_paying_two_orders_with_a_coupon_changes_the_balance_as_rest_says(rt, store):
    uin, ids, voucher = store
    http = logged_in(rt)
    numbers = [number(rt, i) for i in ids[:2]]
    page = http.get("/console/orders/pay", params={"order_id": numbers, "coupons": "pick",
                                                   "coupon_id": str(voucher)})
    form = pay_form(page.text)
    assert form["coupon_id"] == [str(voucher)] and form["order_id"] == numbers
    paid = http.post("/console/orders/pay", data=form)
    assert paid.status_code == 200, paid.text
    assert shown_plan(paid.text) == {"amount": "¥356.00", "coupon": "¥25.00", "gift": "¥0.00",
                                     "cash": "¥331.00", "credit": "¥0.00"}
    assert states(rt, ids[:2]) == ["delivered", "delivered"] and states(rt, ids[2:]) == ["unpaid"]
    api = rest(rt, uin).send("GET", f"/api/v1/accounts/{uin}/balance").json()
    assert api["cash"] == "669.00"
    overview = figures(http.get("/console/").text)
    assert as_yuan_text(overview["cash"]) == api["cash"] and overview["cash"] == "¥669.00"
    assert_reconciled(rt)


def test_a_double_submit_pays_once(rt, store):
    uin, ids, _ = store
    http = logged_in(rt)
    page = http.get("/console/orders/pay", params={"order_id": [number(rt, i) for i in ids[:2]]})
    form = pay_form(page.text)
    assert len(form["idempotency_key"][0]) >= 32
    first = http.post("/console/orders/pay", data=form)
    count = written(rt)
    second = http.post("/console/orders/pay", data=form)
    assert first.status_code == second.status_code == 200
    assert "data-repeat" not in first.text and "data-repeat" in second.text
    assert re.search(r'data-payment="(\d+)"', first.text)[1] == \
        re.search(r'data-payment="(\d+)"', second.text)[1]
    assert written(rt) == count and row_counts(rt, payments) == (1,)
    assert rest(rt, uin).send("GET", f"/api/v1/accounts/{uin}/balance").json()["cash"] == "669.00"
    # a new rendering of the form is a new key: the paid orders are refused, not paid again
    again = http.get("/console/orders/pay", params={"order_id": [number(rt, ids[0])]})
    assert again.status_code == 409 and 'data-error-field="order_ids"' in again.text
    assert_reconciled(rt, uin)


@pytest.mark.spec("ACC-2")
def test_a_readonly_user_is_refused_and_nothing_is_written(rt, store):
    uin, ids, _ = store
    owner = logged_in(rt)
    form = pay_form(owner.get("/console/orders/pay",
                              params={"order_id": [number(rt, ids[0])]}).text)
    reader = logged_in(rt, "acme-readonly")
    listing = reader.get("/console/orders")
    assert listing.status_code == 403 and "data-order" not in listing.text
    assert reader.get("/console/orders/pay",
                      params={"order_id": [number(rt, ids[0])]}).status_code == 403
    before = written(rt)
    refused = reader.post("/console/orders/pay",
                          data={**form, "csrf_token": csrf_of(listing.text)})
    assert refused.status_code == 403
    message = re.search(r'class="notice denied"[^>]*>([^<]*)<', refused.text)[1]
    assert message and "权限" in message
    void = reader.post(f"/console/orders/{number(rt, ids[1])}/void",
                       data={"csrf_token": csrf_of(listing.text)})
    assert void.status_code == 403
    assert written(rt) == before and states(rt, ids) == ["unpaid"] * 3


def test_bad_pay_forms_are_field_errors_and_write_nothing(rt, store):
    _, ids, _ = store
    http = logged_in(rt)
    form = pay_form(http.get("/console/orders/pay",
                             params={"order_id": [number(rt, ids[0])]}).text)
    before = written(rt)
    for change, field, status in (({"order_id": ["12ab"]}, "order_ids", 400),
                                  ({"order_id": []}, "order_ids", 400),
                                  ({"coupons": "pick", "coupon_id": ["x"]}, "coupon_ids", 400),
                                  ({"idempotency_key": ""}, "idempotency_key", 400),
                                  ({"order_id": ["999999999"]}, "order_ids", 404)):
        page = http.post("/console/orders/pay", data={**form, **change})
        assert page.status_code == status, (change, page.text)
        assert f'data-error-field="{field}"' in page.text
    assert written(rt) == before and states(rt, ids) == ["unpaid"] * 3


def test_paying_without_the_csrf_token_is_refused(rt, store):
    _, ids, _ = store
    http = logged_in(rt)
    form = pay_form(http.get("/console/orders/pay",
                             params={"order_id": [number(rt, ids[0])]}).text)
    before = written(rt)
    for token in ("", "stale"):
        assert http.post("/console/orders/pay", data={**form, "csrf_token": token}
                         ).status_code == 403
        assert http.post(f"/console/orders/{number(rt, ids[0])}/void",
                         data={"csrf_token": token}).status_code == 403
    assert written(rt) == before and states(rt, ids) == ["unpaid"] * 3


# ---------------------------------------------------------------- void

def test_voiding_an_unpaid_order(rt, store):
    _, ids, _ = store
    http = logged_in(rt)
    ref = number(rt, ids[0])
    page = http.get(f"/console/orders/{ref}")
    voided = http.post(f"/console/orders/{ref}/void", data={"csrf_token": csrf_of(page.text)})
    assert voided.status_code == 303 and voided.headers["location"] == f"/console/orders/{ref}"
    assert states(rt, ids) == ["voided", "unpaid", "unpaid"]
    after = http.get(f"/console/orders/{ref}").text
    assert 'data-state="voided"' in after and "/void" not in after
    again = http.post(f"/console/orders/{ref}/void", data={"csrf_token": csrf_of(page.text)})
    assert again.status_code == 409 and "data-error" in again.text
    assert states(rt, ids) == ["voided", "unpaid", "unpaid"]
