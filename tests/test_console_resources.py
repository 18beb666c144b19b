"""The console's 资源 pages: resources by project with state, pay mode, spec and
expiry (against the REST list), moving them, renew and upgrade forms leading to
the order, and the refund: the service's preview (against the REST preview),
the confirmation changing the balance as REST says, a double submit refunding
once, the readonly user refused with nothing written, bad forms as field errors
in the page's language, CSRF and escaping.

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
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.resources import postpaid
from feecenter.resources import service as resources
from tests.helpers import (OPS, add_cash, add_gift, api_key, assert_reconciled, buy,
                           load_sample_catalog, new_account, pay, row_counts, run_threads)
from tests.rest_harness import HOST, Signed
from tests.test_console import XSS, as_yuan_text, csrf_of, figures, logged_in, set_password


@pytest.fixture
def store(rt):
    """acme-cloud with ¥1,000.00 cash, ¥56.00 gift and a ¥60.00 cash coupon; two paid
    prepaid cvm (the second named hostilely), a second project "web"; its owner and
    readonly and admin sub-users with console passwords."""
    load_sample_catalog(rt)
    uin = new_account(rt, "acme-cloud")
    add_cash(rt, uin, 1_000_00)
    add_gift(rt, uin, 56_00)
    with transaction(rt.engine) as conn:
        for role in ("readonly", "admin"):
            accounts.add_user(conn, rt.clock, OPS, uin, f"acme-{role}", role)
        coupons.grant(conn, rt.clock, OPS, uin, coupon_rules.Terms(
            kind=coupon_rules.CASH, pay_mode=coupon_rules.PREPAID, face_amount=60_00,
            valid_days=30), campaign="console")
        web = resources.create_project(conn, rt.clock, OPS, uin, "web")
    for login in (None, "acme-readonly", "acme-admin"):
        set_password(rt, uin, login)
    first = buy(rt, uin, ("cvm", "S5.MEDIUM4", 3, "ap-guangzhou"))
    second = buy(rt, uin, resource_name=XSS)
    pay(rt, uin, first)  # 534.00: the 60.00 cash coupon, 56.00 gift, 418.00 cash
    pay(rt, uin, second)
    ids = [resource_of(rt, uin, o) for o in first + second]
    return uin, ids, web


def resource_of(rt, uin, order_id) -> str:
    with rt.engine.connect() as conn:
        return orders.get_order(conn, OPS, uin, order_id)["resource_id"]


def rest(rt, uin) -> Signed:
    return Signed(rt, TestClient(create_app(rt), base_url=f"http://{HOST}"), api_key(rt, uin))


def written(rt) -> tuple[int, ...]:
    return row_counts(rt, orders_table, ledger_transactions, statement_entries)


def form_of(html: str, action: str) -> dict[str, str]:
    form = re.search(rf'<form method="post" action="{re.escape(action)}".*?</form>', html, re.S)[0]
    return dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))


def back(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-back="(\w+)">([^<]*)<', html))


# ---------------------------------------------------------------- the list, moving

def test_the_list_shows_what_the_rest_list_shows(rt, store):
    uin, ids, _ = store
    http = logged_in(rt)
    page = http.get("/console/resources")
    assert page.status_code == 200 and "<h1>资源</h1>" in page.text
    assert 'href="/console/resources" aria-current="page"' in page.text
    api = rest(rt, uin).send("GET", f"/api/v1/accounts/{uin}/resources").json()
    assert sorted(r["id"] for r in api) == sorted(ids)
    assert re.findall(r'<tr data-resource="([^"]+)">', page.text) == [r["id"] for r in api]
    for resource in api:
        row = re.search(rf'<tr data-resource="{resource["id"]}">.*?</tr>', page.text, re.S)[0]
        assert resource["period_end"] in row and "包年包月" in row and "运行中" in row
        assert f'{resource["product_code"]} · {resource["spec_item"]} · {resource["region"]}' in row
    assert '<h2>默认项目</h2>' in page.text and "<h2>web</h2>" not in page.text  # empty: hidden


@pytest.mark.spec("SET-7")
def test_moving_resources_to_another_project(rt, store):
    uin, ids, web = store
    http = logged_in(rt)
    page = http.get("/console/resources")
    moved = http.post("/console/resources/move", data={
        "resource_id": [ids[0]], "project_id": str(web), "csrf_token": csrf_of(page.text)})
    assert moved.status_code == 303 and moved.headers["location"] == f"/console/resources?project={web}"
    shown = http.get(moved.headers["location"]).text
    assert f'data-resource="{ids[0]}"' in shown and f'data-resource="{ids[1]}"' not in shown
    api = rest(rt, uin).send("GET", f"/api/v1/accounts/{uin}/resources",
                             query={"project_id": web}).json()
    assert [r["id"] for r in api] == [ids[0]]


@pytest.mark.spec("ACC-2")
def test_a_readonly_user_sees_the_resources_but_moves_and_refunds_nothing(rt, store):
    uin, ids, web = store
    owner = logged_in(rt)
    refund_form = form_of(owner.get(f"/console/resources/{ids[0]}/refund").text,
                          f"/console/resources/{ids[0]}/refund")
    reader = logged_in(rt, "acme-readonly")
    page = reader.get("/console/resources")
    assert page.status_code == 200 and f'data-resource="{ids[0]}"' in page.text  # READ_PROFILE
    before = written(rt)
    token = csrf_of(page.text)
    refused = reader.post(f"/console/resources/{ids[0]}/refund",
                          data={**refund_form, "csrf_token": token})
    assert refused.status_code == 403
    assert "权限" in re.search(r'class="notice denied"[^>]*>([^<]*)<', refused.text)[1]
    assert reader.get(f"/console/resources/{ids[0]}/refund").status_code == 403
    move = reader.post("/console/resources/move", data={
        "resource_id": [ids[0]], "project_id": str(web), "csrf_token": token})
    assert move.status_code == 403 and 'class="notice denied"' in move.text
    assert written(rt) == before
    with rt.engine.connect() as conn:
        assert [r["project_id"] for r in resources.list_resources(conn, OPS, uin)] == \
            [resources.default_project(conn, rt.clock, uin)] * 2
        assert resources.get_resource(conn, uin, ids[0])["state"] == "running"


@pytest.mark.parametrize("data, field", [({"project_id": "x"}, "project_id"),
                                         ({"project_id": "999999"}, "project_id"),
                                         ({"resource_id": []}, "resource_ids")])
def test_bad_move_forms_are_field_errors_in_the_pages_language(rt, store, data, field):
    uin, ids, web = store
    http = logged_in(rt)
    form = {"resource_id": [ids[0]], "project_id": str(web),
            "csrf_token": csrf_of(http.get("/console/resources").text), **data}
    zh = http.post("/console/resources/move", data=form)
    assert zh.status_code in (400, 404) and f'data-error-field="{field}"' in zh.text
    http.cookies.set("fc_lang", "en", path="/console")
    en = http.post("/console/resources/move", data=form)
    assert f'data-error-field="{field}"' in en.text and "<h1>Resources</h1>" in en.text
    assert re.search(r"data-error[^>]*>([^<]*)<", en.text)[1].isascii()
    with rt.engine.connect() as conn:
        assert resources.get_resource(conn, uin, ids[0])["project_id"] != web


def test_hostile_resource_names_are_escaped(rt, store):
    _, ids, _ = store
    http = logged_in(rt)
    for path in ("/console/resources", f"/console/resources/{ids[1]}"):
        page = http.get(path)
        assert page.status_code == 200 and XSS not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert http.get("/console/resources/%3Cscript%3E").status_code == 404
    assert "<script>alert" not in http.get("/console/resources/%3Cscript%3Ealert").text


# ---------------------------------------------------------------- renew, upgrade

@pytest.mark.spec("ORD-1")
def test_renew_and_upgrade_create_the_order_and_lead_to_its_page(rt, store):
    uin, ids, _ = store
    http = logged_in(rt)
    page = http.get(f"/console/resources/{ids[1]}")
    assert page.status_code == 200 and 'name="months"' in page.text
    renewed = http.post(f"/console/resources/{ids[1]}/renew",
                        data={"months": "2", "csrf_token": csrf_of(page.text)})
    assert renewed.status_code == 303
    order_page = http.get(renewed.headers["location"])
    assert order_page.status_code == 200 and 'data-state="unpaid"' in order_page.text
    assert 'data-money="amount">¥356.00<' in order_page.text and "续费" in order_page.text
    upgraded = http.post(f"/console/resources/{ids[1]}/upgrade",
                         data={"spec_item": "S5.LARGE8", "csrf_token": csrf_of(page.text)})
    assert upgraded.status_code == 303
    assert "升配" in http.get(upgraded.headers["location"]).text
    listed = rest(rt, uin).send("GET", f"/api/v1/accounts/{uin}/orders",
                                query={"state": "unpaid"}).json()["items"]
    assert sorted(o["kind"] for o in listed) == ["renew", "upgrade"]
    assert {o["order_no"] for o in listed} == {
        renewed.headers["location"].rsplit("/", 1)[1], upgraded.headers["location"].rsplit("/", 1)[1]}


@pytest.mark.parametrize("months, status", [("x", 400), ("0", 400), ("61", 400)])
def test_a_bad_renewal_form_is_a_field_error_and_writes_nothing(rt, store, months, status):
    _, ids, _ = store
    http = logged_in(rt)
    token = csrf_of(http.get(f"/console/resources/{ids[1]}").text)
    before = written(rt)
    zh = http.post(f"/console/resources/{ids[1]}/renew", data={"months": months, "csrf_token": token})
    assert zh.status_code == status and 'data-error-field="months"' in zh.text
    assert 'name="months" aria-invalid="true"' in zh.text
    http.cookies.set("fc_lang", "en", path="/console")
    en = http.post(f"/console/resources/{ids[1]}/renew", data={"months": months, "csrf_token": token})
    message_en = re.search(r"data-error[^>]*>([^<]*)<", en.text)[1]
    assert message_en.isascii() and message_en != re.search(r"data-error[^>]*>([^<]*)<", zh.text)[1]
    assert written(rt) == before


# ---------------------------------------------------------------- refund

@pytest.mark.spec("ORD-4")
def test_the_refund_preview_shows_what_the_rest_preview_shows(rt, store):
    uin, ids, _ = store
    http = logged_in(rt)
    before = written(rt)
    page = http.get(f"/console/resources/{ids[0]}/refund")
    assert page.status_code == 200 and 'data-why="full"' in page.text
    api = rest(rt, uin).send("GET", f"/api/v1/accounts/{uin}/resources/{ids[0]}/refund-preview"
                             ).json()
    assert {k: as_yuan_text(v) for k, v in back(page.text).items()} == {
        k: api[k] for k in ("gift", "cash", "coupon", "total")}
    # 534.00 paid by the 60.00 cash coupon, 56.00 gift and 418.00 cash: all of it back
    assert back(page.text) == {"gift": "¥56.00", "cash": "¥418.00", "coupon": "¥60.00",
                               "total": "¥534.00"}
    assert api["full"] is True and api["window_days"] == 5
    rt.clock.advance(days=45)  # half of the three months used, outside the window
    later = logged_in(rt).get(f"/console/resources/{ids[0]}/refund")
    api = rest(rt, uin).send("GET", f"/api/v1/accounts/{uin}/resources/{ids[0]}/refund-preview"
                             ).json()
    assert 'data-why="unused"' in later.text and api["full"] is False
    assert as_yuan_text(back(later.text)["total"]) == api["total"]
    assert written(rt) == before  # a preview writes nothing


@pytest.mark.spec("ORD-4", "BAL-4")
def test_refunding_changes_the_balance_as_the_preview_said_and_a_double_submit_refunds_once(
        rt, store):
    uin, ids, _ = store
    http = logged_in(rt)
    api = rest(rt, uin)
    before = api.send("GET", f"/api/v1/accounts/{uin}/balance").json()
    page = http.get(f"/console/resources/{ids[0]}/refund")
    promised = back(page.text)
    form = form_of(page.text, f"/console/resources/{ids[0]}/refund")
    assert len(form["idempotency_key"]) >= 32
    first = http.post(f"/console/resources/{ids[0]}/refund", data=form)
    assert first.status_code == 200, first.text
    count = written(rt)
    second = http.post(f"/console/resources/{ids[0]}/refund", data=form)
    assert second.status_code == 200 and written(rt) == count
    refund_of = re.compile(r'data-refund="(\d+)"')
    assert refund_of.search(first.text)[1] == refund_of.search(second.text)[1]
    assert back(first.text) == {"gift": promised["gift"], "cash": promised["cash"]}
    after = api.send("GET", f"/api/v1/accounts/{uin}/balance").json()
    assert float(after["cash"]) - float(before["cash"]) == float(as_yuan_text(promised["cash"]))
    assert float(after["gift"]) - float(before["gift"]) == float(as_yuan_text(promised["gift"]))
    overview = figures(http.get("/console/").text)
    assert as_yuan_text(overview["cash"]) == after["cash"]
    with rt.engine.connect() as conn:
        assert resources.get_resource(conn, uin, ids[0])["state"] == "recycled"
    listed = http.get("/console/resources").text
    assert re.search(rf'data-resource="{ids[0]}">.*?data-state="recycled"', listed, re.S)
    # a new rendering of the form: the released resource is refused, nothing refunded again
    again = http.get(f"/console/resources/{ids[0]}/refund")
    assert again.status_code == 409 and 'data-error-field="resource_id"' in again.text
    assert written(rt) == count
    assert_reconciled(rt, uin)


@pytest.mark.parametrize("change, field, status", [
    ({"idempotency_key": ""}, "idempotency_key", 400),
    ({"idempotency_key": "k" * 200}, "idempotency_key", 400)])
def test_a_bad_refund_form_is_a_field_error_and_writes_nothing(rt, store, change, field, status):
    _, ids, _ = store
    http = logged_in(rt)
    form = form_of(http.get(f"/console/resources/{ids[0]}/refund").text,
                   f"/console/resources/{ids[0]}/refund")
    before = written(rt)
    page = http.post(f"/console/resources/{ids[0]}/refund", data={**form, **change})
    assert page.status_code == status and f'data-error-field="{field}"' in page.text
    assert "data-refund-preview" in page.text  # the preview again, with the message
    http.cookies.set("fc_lang", "en", path="/console")
    en = http.post(f"/console/resources/{ids[0]}/refund", data={**form, **change})
    assert re.search(r"data-error[^>]*>([^<]*)<", en.text)[1].isascii()
    assert written(rt) == before


def test_a_postpaid_resource_has_no_refund(rt, store):
    uin, _, _ = store
    with transaction(rt.engine) as conn:
        opened = postpaid.open_postpaid(conn, rt.clock, OPS, uin, product="cvm",
                                        region="ap-guangzhou", spec_item="S5.MEDIUM4")
    http = logged_in(rt)
    page = http.get(f"/console/resources/{opened}")
    assert page.status_code == 200 and "按量计费" in page.text and "/refund" not in page.text
    refused = http.get(f"/console/resources/{opened}/refund")
    assert refused.status_code == 400 and 'data-error-field="resource_id"' in refused.text
    assert http.get("/console/resources/nope/refund").status_code == 404


def test_refunding_without_the_csrf_token_is_refused(rt, store):
    _, ids, _ = store
    http = logged_in(rt)
    form = form_of(http.get(f"/console/resources/{ids[0]}/refund").text,
                   f"/console/resources/{ids[0]}/refund")
    before = written(rt)
    for token in ("", "stale"):
        assert http.post(f"/console/resources/{ids[0]}/refund",
                         data={**form, "csrf_token": token}).status_code == 403
        assert http.post(f"/console/resources/{ids[0]}/renew",
                         data={"months": "1", "csrf_token": token}).status_code == 403
    assert written(rt) == before


@pytest.mark.postgres_only
@pytest.mark.spec("ORD-4")
def test_eight_concurrent_submits_of_one_refund_form_refund_once(rt, store):
    uin, ids, _ = store
    owner = logged_in(rt)
    page = owner.get(f"/console/resources/{ids[1]}/refund")
    promised = back(page.text)
    form = form_of(page.text, f"/console/resources/{ids[1]}/refund")
    cash = rest(rt, uin).send("GET", f"/api/v1/accounts/{uin}/balance").json()["cash"]
    before = written(rt)
    app, shown = create_app(rt), [None] * 8

    def submit(i: int) -> None:
        http = TestClient(app, base_url="http://testserver", follow_redirects=False,
                          cookies=dict(owner.cookies.items()))
        response = http.post(f"/console/resources/{ids[1]}/refund", data=form)
        assert response.status_code == 200, response.text
        shown[i] = re.search(r'data-refund="(\d+)"', response.text)[1]

    assert run_threads(8, submit) == []
    assert len(set(shown)) == 1  # every submit shows the one refund
    after = written(rt)
    assert after[0] == before[0] + 1  # one refund order
    assert after[1] == before[1] + 1 and after[2] == before[2] + 1  # one return, one entry
    now = rest(rt, uin).send("GET", f"/api/v1/accounts/{uin}/balance").json()["cash"]
    assert float(now) - float(cash) == float(as_yuan_text(promised["cash"]))
    assert_reconciled(rt, uin)
