"""The native REST API fuzzed from its own OpenAPI document (schemathesis, DESIGN §6).

Every operation in /openapi.json gets generated requests, valid and invalid,
signed with TC3 as an operator (/ops paths) or as a customer of a funded account with the
sample catalog. Whatever comes in: no 5xx, only the status codes and content
types the document lists, responses matching their schemas, and anything that
breaks the documented schema refused with a 4xx.

Bounded for CI by FEECENTER_FUZZ_EXAMPLES (examples per operation, default 25);
the long run is ``FEECENTER_FUZZ_EXAMPLES=500 scripts/test tests/test_rest_fuzz.py``.
"""

from __future__ import annotations

import json
import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.core import NotSet
from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.auth import service as auth
from feecenter.auth import tc3
from feecenter.runtime import Runtime
from tests.helpers import OPS, add_cash, load_sample_catalog, new_account

EXAMPLES = int(os.environ.get("FEECENTER_FUZZ_EXAMPLES", "25"))
HOST = "testserver"
CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.negative_data_rejection, checks.allow_header_conformance]


@pytest.fixture
def fuzzed(rt):
    """The app over a database with a catalog, a funded customer and both kinds of key."""
    load_sample_catalog(rt)
    uin = new_account(rt, "fuzz-co")
    add_cash(rt, uin, 100_000_00)
    with rt.engine.begin() as conn:
        _, ops_key = auth.create_operator(conn, rt.clock, OPS, "fuzz-ops")
        customer_key = auth.create_api_key(conn, rt.clock, OPS, uin)
    app = create_app(rt)
    return {"app": app, "client": TestClient(app, base_url=f"http://{HOST}"), "rt": rt,
            "uin": uin, "keys": {"operator": ops_key, "customer": customer_key}}


# The document does not depend on the database: read it once, from an app with none.
schema = schemathesis.openapi.from_dict(
    create_app(Runtime(engine=None, clock=None, settings=None)).openapi())


def _signed_send(fuzzed, case):
    """Send ``case`` signed over the exact bytes and query sent: as the operator on
    /ops paths, else as the customer (whose own uin most generated paths get)."""
    key = fuzzed["keys"]["operator" if "/ops/" in case.path else "customer"]
    if _even(case.path_parameters.get("uin")):
        case.path_parameters["uin"] = fuzzed["uin"]  # reach past "no such account"
    url = httpx.URL(f"http://{HOST}{case.formatted_path}", params=case.query or None)
    path, query = url.raw_path.decode().partition("?")[::2]  # as sent: percent-encoded
    body = _body_bytes(case.body)
    timestamp = int(fuzzed["rt"].clock.now().timestamp())
    headers = tc3.sign(key.secret_id, key.secret_key, method=case.method, host=HOST,
                       path=path, query=query, body=body, content_type="application/json",
                       timestamp=timestamp, service=tc3.SERVICE)
    return fuzzed["client"].request(case.method, url, content=body or None, headers=headers)


def _body_bytes(body) -> bytes:
    if isinstance(body, NotSet):
        return b""
    if isinstance(body, bytes):  # negative cases: bodies that are not JSON at all
        return body
    return json.dumps(body).encode()


def _even(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value % 2 == 0


@pytest.mark.slow
@pytest.mark.fuzz
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_rest_api_conforms_to_its_openapi_document(fuzzed, case):
    response = _signed_send(fuzzed, case)
    case.validate_response(response, checks=CHECKS)
