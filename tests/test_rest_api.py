"""The native REST API (/api/v1) served for real, called with signed requests.

The server runs on the test's FixedClock and the clients sign with its time
(``signing_time``): no test here depends on the real date.
"""

import pytest

from feecenter.auth import service as auth
from feecenter.cli.client import ApiError, FeeCenterClient
from feecenter.db.engine import transaction
from tests.helpers import OPS, add_cash, new_account


def signing_time(rt, offset_s: float = 0):
    """The client's clock: the test's clock (the server's), ``offset_s`` seconds off."""
    return lambda: rt.clock.now().timestamp() + offset_s


def operator_client(rt, address):
    with transaction(rt.engine) as conn:
        _, key = auth.create_operator(conn, rt.clock, OPS, "ops-api")
    return FeeCenterClient(f"http://{address}", key.secret_id, key.secret_key,
                           clock=signing_time(rt))


def customer_client(rt, address, uin, login=None):
    with transaction(rt.engine) as conn:
        key = auth.create_api_key(conn, rt.clock, OPS, uin, login)
    return FeeCenterClient(f"http://{address}", key.secret_id, key.secret_key,
                           clock=signing_time(rt))


@pytest.mark.spec("ACC-1", "BAL-1", "BAL-2", "BAL-5")
def test_operator_creates_account_and_adjusts_customer_sees_it(live_server_on_test_clock):
    rt, address = live_server_on_test_clock
    ops = operator_client(rt, address)
    uin = ops.post("/api/v1/ops/accounts", {"name": "rest-co", "personal_name": "李四",
                                            "email": "li@example.cn"})["uin"]
    result = ops.post(f"/api/v1/ops/accounts/{uin}/adjustments",
                      {"sub_account": "cash", "amount": "88.80", "reason": "线下补款"},
                      Idempotency_Key="adj-1")
    assert result["balance"]["cash"] == "88.80" and result["created"] is True
    later = FeeCenterClient(ops.base_url, ops.secret_id, ops.secret_key,
                            clock=signing_time(rt, 1))  # a new signature: not a replay
    again = later.post(f"/api/v1/ops/accounts/{uin}/adjustments",
                     {"sub_account": "cash", "amount": "88.80", "reason": "线下补款"},
                     Idempotency_Key="adj-1")
    assert again["txn_id"] == result["txn_id"] and again["created"] is False
    customer = customer_client(rt, address, uin)
    assert customer.get(f"/api/v1/accounts/{uin}/balance")["available"] == "88.80"
    profile = customer.get(f"/api/v1/accounts/{uin}")
    assert profile["realname_state"] == "personal" and profile["entity_name"] == "李四"
    assert profile["state"] == "normal"
    page = customer.get(f"/api/v1/accounts/{uin}/transactions", "type=adj_refund")
    assert page["total"] == 1 and page["items"][0]["amount"] == "88.80"
    audit = ops.get("/api/v1/ops/audit", f"uin={uin}")
    assert {a["action"] for a in audit} >= {"create_account", "adjust"}


@pytest.mark.spec("ACC-2")
def test_customers_cannot_use_operator_endpoints_or_other_accounts(live_server_on_test_clock):
    rt, address = live_server_on_test_clock
    uin_a, uin_b = new_account(rt, "api-a"), new_account(rt, "api-b")
    client_b = customer_client(rt, address, uin_b)
    for call in (lambda: client_b.get(f"/api/v1/accounts/{uin_a}/balance"),
                 lambda: client_b.get(f"/api/v1/accounts/{uin_a}/transactions"),
                 lambda: client_b.post(f"/api/v1/ops/accounts/{uin_b}/adjustments",
                                       {"sub_account": "cash", "amount": "1.00", "reason": "x",
                                        "idempotency_key": "k"})):
        with pytest.raises(ApiError) as err:
            call()
        assert err.value.status == 403


@pytest.mark.spec("ACC-2")
def test_sub_user_roles(live_server_on_test_clock):
    rt, address = live_server_on_test_clock
    uin = new_account(rt, "roles")
    owner = customer_client(rt, address, uin)
    owner.post(f"/api/v1/accounts/{uin}/users", {"login": "fin", "role": "finance"})
    owner.post(f"/api/v1/accounts/{uin}/users", {"login": "adm", "role": "admin"})
    finance = customer_client(rt, address, uin, "fin")
    admin = customer_client(rt, address, uin, "adm")
    assert finance.get(f"/api/v1/accounts/{uin}/balance")["cash"] == "0.00"
    with pytest.raises(ApiError) as err:
        admin.get(f"/api/v1/accounts/{uin}/balance")
    assert err.value.status == 403 and "finance" in err.value.body["error"]["message_en"]
    with pytest.raises(ApiError) as err:
        finance.post(f"/api/v1/accounts/{uin}/users", {"login": "x", "role": "readonly"})
    assert err.value.status == 403
    admin.post(f"/api/v1/accounts/{uin}/users", {"login": "viewer", "role": "readonly"})
    logins = [u["login"] for u in owner.get(f"/api/v1/accounts/{uin}/users")]
    assert logins == ["roles", "fin", "adm", "viewer"]


def test_signature_checks(live_server_on_test_clock):
    rt, address = live_server_on_test_clock
    uin = new_account(rt, "sig")
    good = customer_client(rt, address, uin)
    path = f"/api/v1/accounts/{uin}/balance"
    bad_secret = FeeCenterClient(good.base_url, good.secret_id, "z" * 32,
                                 clock=signing_time(rt))
    with pytest.raises(ApiError) as err:
        bad_secret.get(path)
    assert err.value.status == 401 and err.value.body["error"]["code"] == "AuthFailed"
    stale = FeeCenterClient(good.base_url, good.secret_id, good.secret_key,
                            clock=signing_time(rt, -3600))
    with pytest.raises(ApiError) as err:
        stale.get(path)
    assert "expired" in err.value.body["error"]["message_en"]
    replaying = FeeCenterClient(good.base_url, good.secret_id, good.secret_key,
                                clock=signing_time(rt), nonce=lambda: "the-same-nonce")
    replaying.get(path)
    with pytest.raises(ApiError) as err:
        replaying.get(path)  # the same signed nonce again: a replay
    assert "replay" in err.value.body["error"]["message_en"]


def test_disabled_key_is_refused(live_server_on_test_clock):
    rt, address = live_server_on_test_clock
    uin = new_account(rt, "disable-me")
    owner = customer_client(rt, address, uin)
    spare = customer_client(rt, address, uin)
    owner.post(f"/api/v1/api-keys/{spare.secret_id}/disable")
    with pytest.raises(ApiError) as err:
        spare.get(f"/api/v1/accounts/{uin}/balance")
    assert err.value.status == 401


def test_bad_input_names_the_field_and_writes_nothing(live_server_on_test_clock):
    rt, address = live_server_on_test_clock
    ops = operator_client(rt, address)
    uin = new_account(rt, "bad-input")
    add_cash(rt, uin, 100)
    for amount in ("1.234", "-0", "abc", "123456789012345.00"):
        with pytest.raises(ApiError) as err:
            ops.post(f"/api/v1/ops/accounts/{uin}/adjustments",
                     {"sub_account": "cash", "amount": amount, "reason": "r",
                      "idempotency_key": f"bad-{amount}"})
        assert err.value.status == 400 and err.value.body["error"]["field"] == "amount"
    with pytest.raises(ApiError) as err:
        ops.post(f"/api/v1/ops/accounts/{uin}/adjustments",
                 {"sub_account": "coins", "amount": "1.00", "reason": "r", "idempotency_key": "x"})
    assert err.value.status == 400 and err.value.body["error"]["field"] == "sub_account"
    with pytest.raises(ApiError) as err:
        ops.post("/api/v1/ops/accounts", {"name": "ent", "enterprise_name": "E", "uscc": "123"})
    assert err.value.body["error"]["field"] == "uscc"
    with pytest.raises(ApiError) as err:
        ops.post("/api/v1/ops/accounts/424242/adjustments",
                 {"sub_account": "cash", "amount": "1.00", "reason": "r", "idempotency_key": "y"})
    assert err.value.status == 404 and err.value.body["error"]["field"] == "uin"
    page = ops.get(f"/api/v1/accounts/{uin}/transactions")
    assert page["total"] == 1  # only the set-up top-up


@pytest.mark.spec("BAL-7")
def test_operator_grants_credit(live_server_on_test_clock):
    rt, address = live_server_on_test_clock
    ops = operator_client(rt, address)
    uin = new_account(rt, "credit-api")
    add_cash(rt, uin, 10_000)
    view = ops.put(f"/api/v1/ops/accounts/{uin}/credit",
                   {"credit_limit": "500.00", "temp_credit": "100.00",
                    "temp_credit_end": "2099-01-01 00:00:00"})
    assert view["credit_amount"] == "600.00" and view["credit_balance"] == "700.00"
    assert ops.get("/api/v1/ops/reconcile")["clean"] is True


def test_openapi_is_served(live_server_on_test_clock):
    import json
    import urllib.request

    _, address = live_server_on_test_clock
    with urllib.request.urlopen(f"http://{address}/openapi.json", timeout=60) as resp:
        spec = json.loads(resp.read())
    assert "/api/v1/accounts/{uin}/balance" in spec["paths"]
