"""Strict input on the native REST API (docs/api.md, "Strict input"): every refusal a 4xx naming the
field in Chinese and English, nothing written, never a 500; and an OpenAPI
document that says what the server does."""

from __future__ import annotations


import json

import httpx
import pytest
from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.catalog import service as catalog
from feecenter.ledger.tables import ledger_transactions
from feecenter.orders.tables import orders as orders_table
from feecenter.runtime import Runtime
from tests.helpers import OPS, row_counts

HUGE = "99999999999999999999"  # beyond BIGINT


@pytest.fixture
def shop(rest_shop):
    return rest_shop.rt, rest_shop.uin, rest_shop.customer, rest_shop.operator


def written(rt) -> tuple[int, ...]:
    return row_counts(rt, ledger_transactions, orders_table)


def assert_refused(response: httpx.Response, status: int, field: str | None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message_zh"] and error["message_en"]
    if field is not None:
        assert error["field"] == field, error
    return error


@pytest.mark.spec("ACC-2")
@pytest.mark.parametrize("path, field", [
    (f"/api/v1/accounts/{HUGE}/balance", "uin"),
    ("/api/v1/accounts/{uin}/coupons/" + HUGE, "coupon_id"),
    ("/api/v1/accounts/{uin}/resources?project_id=" + HUGE, "project_id"),
    ("/api/v1/accounts/{uin}/transactions?limit=" + HUGE, "limit"),
    ("/api/v1/accounts/{uin}/transactions?offset=-1", "offset"),
    ("/api/v1/accounts/１２/balance", "uin"),          # full-width digits
    ("/api/v1/accounts/{uin}/coupons/١", "coupon_id"),  # Arabic-Indic one
    ("/api/v1/accounts/{uin}/coupons/+1", "coupon_id"),
    ("/api/v1/accounts/{uin}/coupons/1_0", "coupon_id"),
    ("/api/v1/accounts/{uin}/quote?product=cvm&item=S5.MEDIUM4&region=ap-guangzhou"
     "&pay_mode=prepaid&months=" + HUGE, "months"),
])
def test_out_of_range_and_non_ascii_integers_in_paths_and_queries_are_400(shop, path, field):
    rt, uin, customer, _ = shop
    response = customer.send("GET", path.replace("{uin}", str(uin)))
    assert_refused(response, 400, field)


def test_operator_queries_are_bounded(shop):
    rt, _, _, ops = shop
    assert_refused(ops.send("GET", "/api/v1/ops/reconcile?uin=-3" + HUGE), 400, "uin")
    assert_refused(ops.send("GET", "/api/v1/ops/audit?limit=0"), 400, "limit")
    assert ops.send("GET", "/api/v1/ops/reconcile").json()["clean"] is True


BUY = {"product": "cvm", "region": "ap-guangzhou", "spec_item": "S5.MEDIUM4"}


@pytest.mark.spec("ORD-1")
@pytest.mark.parametrize("item, field", [
    ({**BUY, "months": "1"}, "items.0.months"),     # a string is not an integer
    ({**BUY, "months": True}, "items.0.months"),    # nor is a boolean
    ({**BUY, "count": 1.0}, "items.0.count"),       # nor a float
    ({**BUY, "project_id": int(HUGE)}, "items.0.project_id"),
    ({**BUY, "product": 5}, "items.0.product"),     # a number is not a string
    ({**BUY, "product": ""}, "items.0.product"),
    ({**BUY, "colour": "red"}, "items.0.colour"),   # unknown fields are refused
])
def test_purchase_bodies_are_typed_exactly(shop, item, field):
    rt, uin, customer, _ = shop
    before = written(rt)
    assert_refused(customer.send("POST", f"/api/v1/accounts/{uin}/orders", {"items": [item]}),
                   400, field)
    assert written(rt) == before


def test_a_duplicated_json_key_is_refused_not_read_as_the_last(shop):
    rt, uin, _, ops = shop
    before = written(rt)
    body = (b'{"sub_account": "cash", "amount": "5.00", "amount": "50000.00", '
            b'"reason": "dup", "idempotency_key": "dup-1"}')
    error = assert_refused(ops.send("POST", f"/api/v1/ops/accounts/{uin}/adjustments", body),
                           400, "amount")
    assert "duplicate" in error["message_en"]
    assert written(rt) == before


def test_a_boolean_is_not_a_discount(shop):
    rt, uin, _, ops = shop
    response = ops.send("PUT", f"/api/v1/ops/accounts/{uin}/discounts", {"discount_bp": True})
    assert_refused(response, 400, "discount_bp")


def test_an_oversized_body_is_413_and_reads_nothing(shop):
    rt, uin, customer, _ = shop
    body = {"name": "x" * (2 * 1024 * 1024)}
    assert_refused(customer.send("POST", f"/api/v1/accounts/{uin}/projects", body), 413, "body")


@pytest.mark.spec("ORD-1")
def test_an_order_above_the_money_cap_is_refused(shop):
    rt, uin, customer, _ = shop
    with rt.engine.begin() as conn:  # an absurd contract price an operator may still set
        catalog.set_contract_price(conn, rt.clock, OPS, uin, product="cvm", item="S5.MEDIUM4",
                                   pay_mode="prepaid", unit_price=6_000_000_000 * 10**8)
    before = written(rt)
    response = customer.send("POST", f"/api/v1/accounts/{uin}/orders",
                             {"items": [{**BUY, "count": 1000, "months": 36}]})
    assert_refused(response, 400, "amount")
    assert written(rt) == before


def test_the_openapi_document_lists_the_real_errors_and_no_422():
    app = create_app(Runtime(engine=None, clock=None, settings=None))
    document = TestClient(app).get("/openapi.json").json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert "422" not in codes, (method, path)
            assert {"400", "401", "403", "404"} <= codes, (method, path)
            if method != "get":
                assert {"402", "409", "413"} <= codes, (method, path)
    purchase = document["components"]["schemas"]["PurchaseItem"]["properties"]
    assert purchase["months"]["minimum"] == 1 and purchase["months"]["maximum"] == 60
    assert purchase["product"]["minLength"] == 1


def test_allow_names_every_method_of_the_path():
    client = TestClient(create_app(Runtime(engine=None, clock=None, settings=None)))
    options = client.options("/api/v1/accounts/1/users")
    assert options.status_code == 204 and options.headers["allow"] == "GET, OPTIONS, POST"
    deleted = client.delete("/api/v1/accounts/1/users")
    assert deleted.status_code == 405 and deleted.headers["allow"] == "GET, OPTIONS, POST"
    assert deleted.json()["error"]["code"] == "MethodNotAllowed"
    assert client.options("/api/v1/accounts/1/coupons/redeem").headers["allow"] == "OPTIONS, POST"


def test_an_oversized_compat_body_is_refused_in_tencents_envelope(shop):
    rt, _, customer, _ = shop
    response = customer.send("POST", "/", b'{"x": "' + b"x" * (2 * 1024 * 1024) + b'"}')
    error = response.json()["Response"]["Error"]
    assert error["Code"] == "RequestSizeLimitExceeded" and response.json()["Response"]["RequestId"]


@pytest.mark.parametrize("path, body, field", [
    ("/api/v1/accounts/{uin}/postpaid-resources",
     {"product": "\x00", "region": "ap-guangzhou", "spec_item": "S5.MEDIUM4"}, "product"),
    ("/api/v1/accounts/{uin}/projects", {"name": "a\udc80b"}, "name"),   # a lone surrogate
    ("/api/v1/accounts/{uin}/orders", {"items": [{**BUY, "resource_name": "x\ny"}]},
     "items.0.resource_name"),
])
def test_control_characters_and_lone_surrogates_are_400_not_a_database_error(shop, path, body,
                                                                             field):
    rt, uin, customer, _ = shop
    before = written(rt)
    data = json.dumps(body).encode()  # json escapes them: \u0000, \udc80
    response = customer.send("POST", path.replace("{uin}", str(uin)), data)
    assert_refused(response, 400, field)
    assert written(rt) == before


def test_a_control_character_in_a_path_or_query_is_400(shop):
    rt, uin, customer, _ = shop
    assert_refused(customer.send("GET", f"/api/v1/accounts/{uin}/orders/12%00"), 400, "path")
    assert_refused(customer.send("GET", f"/api/v1/accounts/{uin}/resources",
                                 query={"product": "cvm\x00"}), 400, "product")
