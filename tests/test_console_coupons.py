"""The console's 优惠券 and 欠费 pages: coupons with state, amounts (against the REST
list), restrictions and the coupon domain's reason when one cannot be used now;
redeeming a code; the arrears owed, cases, events and next steps (against REST),
a resource stopped for arrears saying why; the readonly user refused.

Both backends (the ``rt`` fixture), the app in-process (TestClient).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM
from feecenter.api.app import create_app
from feecenter.arrears import service as arrears
from feecenter.catalog import service as catalog
from feecenter.coupons import rules
from feecenter.coupons import service as coupons
from feecenter.coupons.tables import coupons as coupons_table
from feecenter.db.engine import transaction
from feecenter.funds import service as funds
from feecenter.resources import postpaid
from tests.helpers import (OPS, add_cash, api_key, balance, load_sample_catalog, new_account,
                           row_counts)
from tests.rest_harness import HOST, Signed
from tests.test_console import as_yuan_text, csrf_of, logged_in, set_password


def rest(rt, uin) -> Signed:
    return Signed(rt, TestClient(create_app(rt), base_url=f"http://{HOST}"), api_key(rt, uin))


def grant(rt, uin, **terms) -> int:
    terms = {"kind": rules.VOUCHER, "pay_mode": rules.PREPAID, "face_amount": 50_00,
             "valid_days": 30, **terms}
    with transaction(rt.engine) as conn:
        return coupons.grant(conn, rt.clock, OPS, uin, rules.Terms(**terms), campaign="console")


@pytest.fixture
def wallet(rt):
    """acme-cloud with a usable voucher, a cash coupon for cvm only from ¥100.00 and 1–12
    months, one not valid until tomorrow, a postpaid discount coupon; owner and readonly."""
    load_sample_catalog(rt)
    uin = new_account(rt, "acme-cloud")
    add_cash(rt, uin, 100_00)
    with transaction(rt.engine) as conn:
        accounts.add_user(conn, rt.clock, OPS, uin, "acme-readonly", "readonly")
    for login in (None, "acme-readonly"):
        set_password(rt, uin, login)
    ids = {"voucher": grant(rt, uin),
           "cash": grant(rt, uin, kind=rules.CASH, face_amount=20_00, product_scope=rules.ONLY,
                         products=("cvm",), threshold=100_00, min_months=1, max_months=12),
           "later": grant(rt, uin, valid_from=rt.clock.now() + timedelta(days=1)),
           "discount": grant(rt, uin, kind=rules.DISCOUNT, pay_mode=rules.POSTPAID,
                             face_amount=None, discount_bp=8000, max_discount=30_00)}
    return uin, ids


def row(html: str, coupon_id: int) -> str:
    return re.search(rf'<tr data-coupon="{coupon_id}">.*?</tr>', html, re.S)[0]


@pytest.mark.spec("CPN-1", "CPN-3")
def test_coupons_show_what_the_rest_list_shows_with_restrictions_and_reasons(rt, wallet):
    uin, ids = wallet
    http = logged_in(rt)
    page = http.get("/console/coupons")
    assert page.status_code == 200 and "<h1>优惠券</h1>" in page.text
    api = rest(rt, uin).send("GET", f"/api/v1/accounts/{uin}/coupons").json()
    assert {c["id"] for c in api["items"]} == set(ids.values())
    for coupon in api["items"]:
        shown = row(page.text, coupon["id"])
        if coupon["remaining"] is not None:
            left = re.search(r"data-remaining>([^<]*)<", shown)[1]
            assert as_yuan_text(left) == coupon["remaining"]
        assert f'data-state="{coupon["state"]}"' in shown
    cash = row(page.text, ids["cash"])
    assert "仅限：cvm" in cash and "满 ¥100.00 可用" in cash and "购买时长：1–12 个月" in cash
    assert "最多抵扣 ¥30.00" in row(page.text, ids["discount"])
    with rt.engine.connect() as conn:
        reason = coupons.unusable_reasons(conn, rt.clock, SYSTEM, uin, [ids["later"]])[ids["later"]]
    assert f'data-reason="not_yet_valid">{reason.zh}<' in row(page.text, ids["later"])
    assert "data-reason" not in row(page.text, ids["voucher"])
    http.cookies.set("fc_lang", "en", path="/console")
    english = http.get("/console/coupons").text
    assert f'data-reason="not_yet_valid">{reason.en}<' in row(english, ids["later"])
    assert "Only for: cvm" in row(english, ids["cash"])


@pytest.mark.spec("ARR-5")
def test_in_arrears_every_coupon_says_it_waits_for_the_repayment(rt, wallet):
    uin, ids = wallet
    with transaction(rt.engine) as conn:
        funds.spend(conn, rt.clock, uin, 150_00, key="console:debt", postpaid=True,
                    revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"),
                    product_code="cvm")
    page = logged_in(rt).get("/console/coupons").text
    assert 'data-reason="account_in_arrears">账号欠费，还清欠费前不能使用优惠券<' in row(page, ids["voucher"])
    assert 'data-reason="not_yet_valid"' in row(page, ids["later"])  # its own reason first


def test_the_state_filter_and_a_bad_one(rt, wallet):
    http = logged_in(rt)
    usable = http.get("/console/coupons?state=unused").text
    assert usable.count("<tr data-coupon=") == 4
    assert http.get("/console/coupons?state=used").text.count("<tr data-coupon=") == 0
    bad = http.get("/console/coupons?state=%3Cscript%3E")
    assert bad.status_code == 400 and 'data-error-field="state"' in bad.text
    assert "<script>" not in bad.text
    http.cookies.set("fc_lang", "en", path="/console")
    assert re.search(r"data-error[^>]*>([^<]*)<",
                     http.get("/console/coupons?page=0").text)[1].isascii()


@pytest.mark.spec("CPN-2")
def test_redeeming_a_code(rt, wallet):
    with transaction(rt.engine) as conn:
        batch = coupons.create_codes(conn, rt.clock, OPS, rules.Terms(
            kind=rules.VOUCHER, pay_mode=rules.PREPAID, face_amount=8_00, valid_days=10),
            campaign="console", count=1, key="codes")
    http = logged_in(rt)
    token = csrf_of(http.get("/console/coupons").text)
    before = row_counts(rt, coupons_table)
    for code, status in (("", 400), ("ZZZZZZZZ", 404)):
        bad = http.post("/console/coupons/redeem", data={"code": code, "csrf_token": token})
        assert bad.status_code == status and 'data-error-field="code"' in bad.text
    assert http.post("/console/coupons/redeem", data={"code": batch.codes[0]}).status_code == 403
    assert row_counts(rt, coupons_table) == before
    done = http.post("/console/coupons/redeem", data={"code": batch.codes[0], "csrf_token": token})
    assert done.status_code == 303
    page = http.get(done.headers["location"]).text
    new_id = int(re.search(r'data-redeemed="(\d+)"', page)[1])
    assert "¥8.00" in row(page, new_id)
    again = http.post("/console/coupons/redeem", data={"code": batch.codes[0], "csrf_token": token})
    assert again.status_code == 409 and row_counts(rt, coupons_table) == (before[0] + 1,)


@pytest.mark.spec("ACC-2")
def test_a_readonly_user_gets_the_permission_message(rt, wallet):
    reader = logged_in(rt, "acme-readonly")
    for path in ("/console/coupons", "/console/arrears"):
        page = reader.get(path)
        assert page.status_code == 403 and "data-coupon" not in page.text
        assert "权限" in re.search(r'class="notice denied"[^>]*>([^<]*)<', page.text)[1]


# ---------------------------------------------------------------- arrears

@pytest.fixture
def owing(rt):
    """debtor: a postpaid cvm (compute: 2 hours of protection) and cdb, ¥12.34 owed."""
    load_sample_catalog(rt)
    uin = new_account(rt, "debtor")
    add_cash(rt, uin, 1_000_00)
    with transaction(rt.engine) as conn:
        ids = {product: postpaid.open_postpaid(
            conn, rt.clock, SYSTEM, uin, product=product, region="ap-guangzhou",
            spec_item=next(i["code"] for i in catalog.list_items(conn, product) if i["spec"]))
            for product in ("cvm", "cdb")}
    available = balance(rt, uin).available
    with transaction(rt.engine) as conn:
        funds.spend(conn, rt.clock, uin, available + 12_34, key="usage",
                    postpaid=True,
                    revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))
    set_password(rt, uin, None)
    return uin, ids


@pytest.mark.spec("ARR-3")
def test_the_arrears_page_shows_the_case_its_events_and_what_comes_next(rt, owing):
    uin, ids = owing
    http = logged_in(rt, "debtor", "debtor")
    quiet = http.get("/console/arrears").text
    assert "您的账户欠费 ¥12.34" in quiet and "暂无欠费记录" in quiet  # the job has not run yet
    arrears.escalate(rt.engine, rt.clock)
    page = http.get("/console/arrears")
    assert page.status_code == 200 and 'aria-current="page"' in page.text
    api = rest(rt, uin)
    (case,) = api.send("GET", f"/api/v1/accounts/{uin}/arrears/cases").json()["items"]
    assert f'data-case="{case["id"]}" data-case-state="open"' in page.text
    assert as_yuan_text(re.search(r"data-case-amount>([^<]*)<", page.text)[1]) == \
        case["arrears_at_open"] == "12.34"
    assert case["started_at"] in page.text and 'data-event="dunning"' in page.text
    outlook = api.send("GET", f"/api/v1/accounts/{uin}/arrears/outlook").json()["items"]
    for step in outlook:
        assert re.search(rf'data-step="{step["resource_id"]}" data-next="stopped">.*?{step["at"]}',
                         page.text)
    assert "可通过在线充值" in page.text and 'href="/console/recharge"' in page.text  # how to pay
    rt.clock.advance(hours=2)
    arrears.escalate(rt.engine, rt.clock)
    http = logged_in(rt, "debtor", "debtor")
    later = http.get("/console/arrears").text
    assert 'data-event="stopped"' in later
    assert re.search(rf'data-step="{ids["cvm"]}" data-next="destroyed"', later)
    events = api.send("GET", f"/api/v1/accounts/{uin}/arrears/events").json()["items"]
    stopped = next(e for e in events if e["kind"] == "stopped")
    assert f'销毁时间 {stopped["detail"]["destroy_at"]}' in later
    resource = http.get(f"/console/resources/{ids['cvm']}").text
    assert 'data-stop="arrears"' in resource and "因欠费停服" in resource
    http.cookies.set("fc_lang", "en", path="/console")
    english = http.get("/console/arrears").text
    assert "You owe ¥12.34" in english and "Isolation period" in english
