"""The native REST API in-process for tests that sign their own requests.

``rest_shop``: the app over a database with the sample catalog, a funded
customer and two signed clients, the customer's and an operator's. ``Signed``
signs each request over the bytes and the percent-encoded path actually sent,
with the test's clock (registered as a plugin in conftest.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx
import pytest
from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.auth import service as auth
from feecenter.auth import tc3
from tests.helpers import OPS, add_cash, load_sample_catalog, new_account

HOST = "testserver"


class Signed:
    def __init__(self, rt, http: TestClient, key):
        self.rt, self.http, self.key = rt, http, key

    def send(self, method: str, path: str, body: bytes | dict | list | None = None,
             query: dict | None = None) -> httpx.Response:
        data = body if isinstance(body, bytes) else (
            b"" if body is None else json.dumps(body).encode())
        url = httpx.URL(f"http://{HOST}{path}")
        if query:  # given apart (schemathesis); a query in ``path`` is kept as written
            url = url.copy_merge_params(query)
        raw_path, _, raw_query = url.raw_path.decode().partition("?")
        headers = tc3.sign(self.key.secret_id, self.key.secret_key, method=method, host=HOST,
                           path=raw_path, query=raw_query, body=data,
                           content_type="application/json",
                           timestamp=int(self.rt.clock.now().timestamp()), service=tc3.SERVICE)
        return self.http.request(method, url, content=data or None, headers=headers)


@dataclass
class RestShop:
    rt: object
    uin: int
    customer: Signed
    operator: Signed


@pytest.fixture
def rest_shop(rt) -> RestShop:
    load_sample_catalog(rt)
    uin = new_account(rt, "rest-shop")
    add_cash(rt, uin, 100_000_00)
    with rt.engine.begin() as conn:
        _, ops_key = auth.create_operator(conn, rt.clock, OPS, "rest-shop-ops")
        customer_key = auth.create_api_key(conn, rt.clock, OPS, uin)
    http = TestClient(create_app(rt), base_url=f"http://{HOST}")
    return RestShop(rt, uin, Signed(rt, http, customer_key), Signed(rt, http, ops_key))
