"""The console's 在线充值 pages through the real WeChat Pay v3 adapter and the
sandbox provider (the fixtures of tests/test_recharges.py): the form creating a
recharge, its QR code and live status part (polling while pending, stopping
once paid with the new balance or failed with the provider's reason), bad
amounts and channels as field errors in both languages with nothing written,
the readonly user refused, CSRF, and the records equal to the REST list.

Both backends (the ``engine`` fixture under ``pay``), the app in-process.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from feecenter.accounts import service as accounts
from feecenter.db.engine import transaction
from feecenter.recharges.tables import recharges as recharges_table
from tests.helpers import OPS
from tests.test_console import csrf_of, logged_in, set_password
from tests.test_recharges import pay, rest, sandbox  # noqa: F401 - fixtures


@pytest.fixture
def shop(pay):  # noqa: F811 - the fixture imported above
    """The recharger account with console passwords for its owner and a readonly user."""
    with transaction(pay.rt.engine) as conn:
        accounts.add_user(conn, pay.rt.clock, OPS, pay.uin, "recharger-readonly", "readonly")
    for login in (None, "recharger-readonly"):
        set_password(pay.rt, pay.uin, login)
    return pay


def console(shop, login: str = "recharger", lang: str = "zh-CN"):
    http = logged_in(shop.rt, login, "recharger")
    if lang == "en":
        http.cookies.set("fc_lang", "en", path="/console")
    return http


def submit(http, amount: str, channel: str = "wechat", **extra):
    token = csrf_of(http.get("/console/recharge").text)
    return http.post("/console/recharge", data={"amount": amount, "channel": channel,
                                                "csrf_token": token, **extra})


def recharge_count(shop) -> int:
    with shop.rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(recharges_table)).scalar_one()


def status_part(http, recharge_id: int) -> str:
    response = http.get(f"/console/recharges/{recharge_id}/status")
    assert response.status_code == 200, response.text
    return response.text


def recharge_id_of(response) -> int:
    assert response.status_code == 303, response.text
    return int(re.fullmatch(r"/console/recharges/(\d+)", response.headers["location"])[1])


@pytest.mark.spec("RCH-1", "RCH-5", "RCH-6", "BAL-5")
def test_recharge_shows_the_qr_code_and_the_status_turns_paid_with_the_balance(shop):
    http = console(shop)
    form = http.get("/console/recharge")
    assert form.status_code == 200 and '<a href="/console/recharge" aria-current="page"' in form.text
    recharge_id = recharge_id_of(submit(http, "100.00"))
    page = http.get(f"/console/recharges/{recharge_id}").text
    code_url = shop.row(recharge_id)["code_url"]
    assert "<svg" in page and "data-qr" in page and "¥100.00" in page
    assert f'href="{code_url}"' in page  # the sandbox's payer page
    assert 'hx-trigger="every 2s"' in page and 'data-recharge-state="pending"' in page

    shop.payer_acts({"code_url": code_url}, "pay")
    shop.wait_state(recharge_id, "paid")
    part = status_part(http, recharge_id)
    balance = rest(shop).send("GET", f"/api/v1/accounts/{shop.uin}/balance").json()
    assert balance["available"] == "100.00"
    assert 'data-recharge-state="paid"' in part and "hx-trigger" not in part
    assert '<strong data-field="available">¥100.00</strong>' in part and "<svg" not in part


@pytest.mark.spec("RCH-6")
def test_a_failed_payment_shows_the_providers_reason_and_stops_polling(shop):
    http = console(shop)
    recharge_id = recharge_id_of(submit(http, "20.00"))
    shop.payer_acts({"code_url": shop.row(recharge_id)["code_url"]}, "fail")
    http_query = rest(shop).send("POST", f"/api/v1/recharges/{recharge_id}/query")
    assert http_query.json()["state"] == "failed"
    part = status_part(http, recharge_id)
    assert 'data-recharge-state="failed"' in part and "hx-trigger" not in part
    assert "当前交易行为异常" in part


@pytest.mark.spec("RCH-2")
@pytest.mark.parametrize(("amount", "channel", "field", "status", "zh", "en"), [
    ("", "wechat", "amount", 400, "请输入充值金额", "enter the amount"),
    ("abc", "wechat", "amount", 400, "金额格式错误", "malformed amount"),
    ("1.234", "wechat", "amount", 400, "最多两位小数", "at most 2 decimals"),
    ("0.00", "netbank", "amount", 400, "金额", "amount"),
    ("50000.01", "wechat", "amount", 403, "限额", "at most"),
    ("10.00", "intl_card", "channel", 400, "充值渠道未开通", "disabled"),
    ("10.00", "cash", "channel", 400, "不支持的充值渠道", "unknown recharge channel"),
])
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_bad_input_is_a_field_error_in_the_pages_language_with_nothing_written(
        shop, amount, channel, field, status, zh, en, lang):
    http = console(shop, lang=lang)
    response = submit(http, amount, channel)
    assert response.status_code == status, response.text
    error = re.search(rf'data-error data-error-field="{field}">([^<]*)<', response.text)
    assert error, response.text
    assert (zh if lang == "zh-CN" else en) in error[1]
    assert f'value="{amount}"' in response.text  # the form keeps what was typed
    assert recharge_count(shop) == 0


@pytest.mark.spec("RCH-3")
def test_too_many_payers_block_the_wechat_qr_with_the_rules_message_next_to_the_channel(shop):
    for i in range(5):  # five distinct payers within the window; the console user is a sixth
        shop.create(1_00, payer=f"payer-{i}")
    http = console(shop)
    refused = submit(http, "10.00", "wechat")
    assert refused.status_code == 403
    assert re.search(r'data-error-field="channel">暂时无法获取微信支付二维码<', refused.text)
    assert recharge_count(shop) == 5
    assert submit(http, "10.00", "netbank").status_code == 303  # online banking still works


def test_a_provider_that_cannot_be_reached_is_said_on_the_page(shop):
    from feecenter.gateways.wechatpay import WeChatPayConfig, WeChatPayGateway
    from feecenter.sandbox import keys as sandbox_keys

    shop.rt.gateways = {"wechat": WeChatPayGateway(WeChatPayConfig.from_env(
        sandbox_keys.merchant_env(shop.keys, "http://127.0.0.1:9", f"{shop.own}/notify")))}
    response = submit(console(shop), "10.00", "wechat")
    assert response.status_code == 503 and "data-error" in response.text
    with shop.rt.engine.connect() as conn:  # nothing half-written: closed, nobody saw a code
        assert [tuple(r) for r in conn.execute(select(recharges_table.c.state))] == [("closed",)]


def test_the_readonly_user_is_refused_and_nothing_is_written(shop):
    http = console(shop, "recharger-readonly")
    form = http.get("/console/recharge")
    assert form.status_code == 403 and "data-denied" in form.text
    assert 'name="amount"' not in form.text
    assert submit_raw(http, form.text).status_code == 403
    assert http.get("/console/recharges").status_code == 403
    assert recharge_count(shop) == 0


def submit_raw(http, page_html: str):
    token = re.search(r'name="csrf_token" value="([^"]+)"', page_html)[1]  # the logout form's
    return http.post("/console/recharge", data={"amount": "10.00", "channel": "wechat",
                                                "csrf_token": token})


def test_a_post_without_the_csrf_token_is_refused(shop):
    http = console(shop)
    response = http.post("/console/recharge", data={"amount": "10.00", "channel": "wechat"})
    assert response.status_code == 403 and recharge_count(shop) == 0


@pytest.mark.spec("RCH-6")
def test_the_records_equal_the_rest_list(shop):
    http = console(shop)
    ids = [recharge_id_of(submit(http, amount, channel))
           for amount, channel in (("10.00", "wechat"), ("20.50", "qq"), ("30.00", "netbank"))]
    shop.payer_acts({"code_url": shop.row(ids[1])["code_url"]}, "pay")
    shop.wait_state(ids[1], "paid")
    listed = rest(shop).send("GET", f"/api/v1/accounts/{shop.uin}/recharges").json()
    for state, expected in ((None, listed["items"]),
                            ("paid", [i for i in listed["items"] if i["state"] == "paid"])):
        page = http.get("/console/recharges", params={"state": state} if state else {}).text
        shown = re.findall(r'<tr data-recharge="(\d+)">\s*<td><a [^>]*>(\w+)</a></td>\s*'
                           r'<td data-amount>¥([\d,.]+)</td>\s*<td data-channel="(\w+)">.*?'
                           r'data-state="(\w+)"', page, re.DOTALL)
        assert shown == [(str(i["id"]), i["out_trade_no"], i["amount"], i["channel"], i["state"])
                         for i in expected]
    assert 'data-total="3"' in http.get("/console/recharges").text
    bad = http.get("/console/recharges", params={"state": "bogus"})
    assert bad.status_code == 400 and 'data-error-field="state"' in bad.text


def test_another_accounts_recharge_is_not_shown(shop):
    other = accounts_new(shop)
    recharge = shop.create(100, uin=other)
    http = console(shop)
    assert http.get(f"/console/recharges/{recharge['id']}").status_code == 404  # as missing
    assert http.get("/console/recharges/x1").status_code == 400


def accounts_new(shop) -> int:
    from tests.helpers import new_account

    return new_account(shop.rt, "someone-else")


# ---------------------------------------------------------------- operators

@pytest.fixture
def operator(shop):
    from feecenter.auth import operator_sessions
    from feecenter.auth import service as auth
    from tests.test_console_ops import PASSWORD as OPS_PASSWORD
    from tests.test_console_ops import operator_client

    with transaction(shop.rt.engine) as conn:
        auth.create_operator(conn, shop.rt.clock, OPS, "alice")
        operator_sessions.set_password(conn, shop.rt.clock, OPS, "alice", OPS_PASSWORD)
    return operator_client(shop.rt)


def searched(page_html: str) -> list[str]:
    return re.findall(r'<tr data-recharge="(\d+)">', page_html)


@pytest.mark.spec("RCH-5")
def test_operators_search_recharges_and_read_the_notification_log(shop, operator):
    from tests.helpers import new_account

    other = new_account(shop.rt, "someone-else")
    paid = shop.create(10_00)
    shop.payer_acts(paid, "pay")
    paid = shop.wait_state(paid["id"], "paid")
    pending = shop.create(20_00, uin=other, payer="other-payer")
    everything = operator.get("/console/ops/recharges")
    assert everything.status_code == 200
    assert searched(everything.text) == [str(pending["id"]), str(paid["id"])]
    assert searched(operator.get("/console/ops/recharges", params={"uin": other}).text) == [
        str(pending["id"])]
    assert searched(operator.get("/console/ops/recharges", params={"state": "paid"}).text) == [
        str(paid["id"])]
    by_txn = operator.get("/console/ops/recharges",
                          params={"provider_txn_id": paid["provider_txn_id"]}).text
    assert searched(by_txn) == [str(paid["id"])]
    for params, field in (({"uin": "x"}, "uin"), ({"state": "bogus"}, "state")):
        bad = operator.get("/console/ops/recharges", params=params)
        assert bad.status_code == 400 and f'data-error-field="{field}"' in bad.text

    log = operator.get("/console/ops/recharges/notifications",
                       params={"recharge_id": paid["id"]})
    rest_log = rest_as_operator(shop).send(
        "GET", "/api/v1/ops/recharges/notifications", query={"recharge_id": paid["id"]}).json()
    shown = re.findall(r'data-notification="(\d+)" data-outcome="(\w+)"', log.text)
    assert shown == [(str(n["id"]), n["outcome"]) for n in rest_log["items"]]
    assert shown and shown[0][1] == "credited"


def rest_as_operator(shop):
    from starlette.testclient import TestClient

    from feecenter.api.app import create_app
    from feecenter.auth import service as auth
    from tests.rest_harness import Signed

    with transaction(shop.rt.engine) as conn:
        _, key = auth.create_operator(conn, shop.rt.clock, OPS, "recharge-ops")
    return Signed(shop.rt, TestClient(create_app(shop.rt)), key)


def test_a_customer_session_opens_no_operator_recharge_page(shop):
    http = console(shop)
    for path in ("/console/ops/recharges", "/console/ops/recharges/notifications"):
        response = http.get(path)
        assert response.status_code == 303 and "/console/ops/login" in response.headers["location"]
