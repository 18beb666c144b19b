"""Identical signed requests (docs/api.md, "Authentication"): the compat endpoint answers them inside the
timestamp window as Tencent's server does (the official SDK sends them: TC3 has
no nonce), money-moving actions stay safe by their own semantics, and the native
API refuses a replay only of a request carrying a signed X-FC-Nonce."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select
from tencentcloud.billing.v20180709 import billing_client, models
from tencentcloud.common import abstract_client, credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from feecenter.auth import service as auth
from feecenter.auth import tc3
from feecenter.auth.tables import used_signatures
from feecenter.cli.client import ApiError, FeeCenterClient
from feecenter.errors import AuthFailed
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.orders.rules import order_no
from feecenter.orders.tables import orders as orders_table
from feecenter.orders.tables import payments
from tests.helpers import (OPS, add_cash, assert_reconciled, balance, buy, load_sample_catalog,
                           new_account, row_counts)

CVM_MEDIUM_MONTH = 178_00  # sample catalog, S5.MEDIUM4 prepaid, one month


def owner_key(rt, uin):
    with rt.engine.begin() as conn:
        return auth.create_api_key(conn, rt.clock, OPS, uin)


def sdk(address, key) -> billing_client.BillingClient:
    http = HttpProfile(protocol="http", endpoint=address, reqTimeout=10)
    return billing_client.BillingClient(credential.Credential(key.secret_id, key.secret_key), "",
                                        ClientProfile(httpProfile=http))


@pytest.fixture
def frozen_sdk_clock(monkeypatch):
    """The SDK signs every request with this one second: identical requests, identical
    signatures (the server keeps the real clock)."""
    second = int(time.time())
    monkeypatch.setattr(abstract_client, "time", SimpleNamespace(time=lambda: second))
    return second


@pytest.mark.spec("XTR-5")
def test_twenty_identical_sdk_balance_calls_all_succeed(live_server, frozen_sdk_clock):
    rt, address = live_server
    uin = new_account(rt, "sdk-burst")
    add_cash(rt, uin, 5_00)
    client = sdk(address, owner_key(rt, uin))
    answers = [client.DescribeAccountBalance(models.DescribeAccountBalanceRequest())
               for _ in range(20)]
    assert [(a.Uin, a.CashAccountBalance) for a in answers] == [(uin, 5_00)] * 20
    assert len({a.RequestId for a in answers}) == 20


@pytest.mark.spec("XTR-5")
def test_two_actions_with_the_same_body_in_the_same_second_are_both_answered(
        live_server, frozen_sdk_clock):
    """The SDK signs neither X-TC-Action nor anything but the body: both signatures are equal."""
    rt, address = live_server
    uin = new_account(rt, "sdk-two-actions")
    client = sdk(address, owner_key(rt, uin))
    assert client.DescribeAccountBalance(models.DescribeAccountBalanceRequest()).Uin == uin
    request = models.DescribeDealsByCondRequest()
    request.from_json_string("{}")  # the same body, {}, as DescribeAccountBalance's
    try:
        client.DescribeDealsByCond(request)
    except TencentCloudSDKException as exc:  # answered: a parameter error is fine, auth is not
        assert not exc.get_code().startswith("AuthFailure"), exc


@pytest.mark.spec("XTR-5", "ORD-3")
def test_an_identical_pay_deals_request_pays_once_and_answers_the_first_payment(
        live_server, frozen_sdk_clock):
    rt, address = live_server
    load_sample_catalog(rt)
    uin = new_account(rt, "sdk-pay-twice")
    add_cash(rt, uin, 500_00)
    (order_id,) = buy(rt, uin)
    with rt.engine.connect() as conn:
        created = conn.execute(select(orders_table.c.created_at)
                               .where(orders_table.c.id == order_id)).scalar_one()
    number = order_no(order_id, created)
    client = sdk(address, owner_key(rt, uin))
    request = models.PayDealsRequest()
    request.from_json_string(json.dumps({"OrderIds": [number]}))

    first = client.PayDeals(request)
    written = row_counts(rt, ledger_transactions, statement_entries, payments)
    again = client.PayDeals(request)  # byte for byte the same signed request

    assert first.OrderIds == [number] and len(first.ResourceIds) == 1
    assert (again.OrderIds, again.ResourceIds, again.BigDealIds) == (
        first.OrderIds, first.ResourceIds, first.BigDealIds)
    assert row_counts(rt, ledger_transactions, statement_entries, payments) == written
    assert balance(rt, uin).cash == 500_00 - CVM_MEDIUM_MONTH
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(payments)).scalar_one() == 1
    assert_reconciled(rt)


@pytest.mark.spec("XTR-5", "ORD-3")
def test_an_identical_pay_deals_by_big_deal_never_pays_twice(live_server, frozen_sdk_clock):
    """Whatever the repeat answers (the first payment, or nothing left to pay), it moves no
    money and writes nothing."""
    rt, address = live_server
    load_sample_catalog(rt)
    uin = new_account(rt, "sdk-bigdeal-twice")
    add_cash(rt, uin, 1_000_00)
    first_id, _ = buy(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"),
                      ("cvm", "S5.MEDIUM4", 1, "ap-shanghai"))
    with rt.engine.connect() as conn:
        created = conn.execute(select(orders_table.c.created_at)
                               .where(orders_table.c.id == first_id)).scalar_one()
    client = sdk(address, owner_key(rt, uin))
    request = models.PayDealsRequest()
    request.from_json_string(json.dumps({"BigDealIds": [order_no(first_id, created)]}))
    assert len(client.PayDeals(request).OrderIds) == 2
    written = row_counts(rt, ledger_transactions, statement_entries, payments)
    try:
        client.PayDeals(request)  # byte for byte the same signed request
    except TencentCloudSDKException as exc:
        assert not exc.get_code().startswith(("AuthFailure", "InternalError")), exc
    assert row_counts(rt, ledger_transactions, statement_entries, payments) == written
    assert balance(rt, uin).cash == 1_000_00 - 2 * CVM_MEDIUM_MONTH
    assert_reconciled(rt)


# ---------------------------------------------------------------- the native API's nonce

def rest_client(rt, address, uin, **kw) -> FeeCenterClient:
    key = owner_key(rt, uin)
    return FeeCenterClient(f"http://{address}", key.secret_id, key.secret_key, **kw)


def test_without_a_nonce_identical_rest_requests_are_answered(live_server):
    rt, address = live_server
    uin = new_account(rt, "rest-no-nonce")
    second = time.time()
    client = rest_client(rt, address, uin, clock=lambda: second, nonce=None)
    path = f"/api/v1/accounts/{uin}/balance"
    assert [client.get(path)["uin"] for _ in range(3)] == [uin] * 3


def test_a_replayed_nonce_is_refused_and_a_fresh_one_is_not(live_server):
    rt, address = live_server
    uin = new_account(rt, "rest-nonce")
    path = f"/api/v1/accounts/{uin}/balance"
    replaying = rest_client(rt, address, uin, nonce=lambda: "nonce-0001")
    assert replaying.get(path)["uin"] == uin
    with pytest.raises(ApiError) as err:
        replaying.get(path)
    error = err.value.body["error"]
    assert (err.value.status, error["code"], error["details"]["reason"]) == (
        401, "AuthFailed", "SignatureFailure")
    assert "replay" in error["message_en"] and "重放" in error["message_zh"]
    # the nonce is the key's: another key may use the same one; fresh nonces always pass
    assert rest_client(rt, address, uin, nonce=lambda: "nonce-0001").get(path)["uin"] == uin
    fresh = rest_client(rt, address, uin)
    assert [fresh.get(path)["uin"] for _ in range(3)] == [uin] * 3


def test_a_nonce_must_be_signed_and_well_formed(live_server):
    rt, address = live_server
    uin = new_account(rt, "rest-nonce-form")
    path = f"/api/v1/accounts/{uin}/balance"
    unsigned = rest_client(rt, address, uin, nonce=None)
    with pytest.raises(ApiError) as err:  # sent, but not among SignedHeaders
        unsigned.post(f"/api/v1/accounts/{uin}/api-keys", {}, X_FC_Nonce="nonce-unsigned")
    assert err.value.body["error"]["details"]["reason"] == "InvalidAuthorization"
    assert "x-fc-nonce" in err.value.body["error"]["message_en"]
    short = rest_client(rt, address, uin, nonce=lambda: "abc")
    with pytest.raises(ApiError) as err:
        short.get(path)
    assert err.value.body["error"]["details"]["reason"] == "InvalidAuthorization"
    assert "X-FC-Nonce" in err.value.body["error"]["message_en"]
    with rt.engine.connect() as conn:  # the refused key creation wrote nothing
        assert len(auth.list_api_keys(conn, OPS, uin)) == 2


def test_nonces_are_forgotten_after_twice_the_window(rt):
    """A nonce row outlives every timestamp that could replay it, and no longer."""
    uin = new_account(rt, "nonce-purge")
    key = owner_key(rt, uin)

    def call(nonce):
        stamp = int(rt.clock.now().timestamp())
        headers = tc3.sign(key.secret_id, key.secret_key, method="GET", host="h", path="/p",
                           query="", body=b"", content_type="application/json",
                           timestamp=stamp, nonce=nonce)
        request = auth.SignedRequest("GET", "/p", "", {k.lower(): v for k, v in headers.items()},
                                     b"")
        return auth.authenticate(rt.engine, rt.clock, request, window_s=300)

    def stored():
        with rt.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(used_signatures)).scalar_one()

    call("nonce-a-0001")
    rt.clock.advance(seconds=300)
    call("nonce-b-0001")
    assert stored() == 2
    rt.clock.advance(seconds=301)  # nonce-a is 601 s old: no timestamp inside ±300 s replays it
    call("nonce-c-0001")
    assert stored() == 2
    with pytest.raises(AuthFailed) as err:
        call("nonce-b-0001")
    assert err.value.reason == "SignatureFailure"
