"""The native REST API fuzzed from its own OpenAPI document (schemathesis; docs/api.md, strict input).

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

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.core import NotSet

from feecenter.api.app import create_app
from feecenter.runtime import Runtime

EXAMPLES = int(os.environ.get("FEECENTER_FUZZ_EXAMPLES", "25"))
CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.negative_data_rejection, checks.allow_header_conformance]


# The document does not depend on the database: read it once, from an app with none.
schema = schemathesis.openapi.from_dict(
    create_app(Runtime(engine=None, clock=None, settings=None)).openapi())


def _signed_send(shop, case):
    """Send ``case`` as the operator on /ops paths, else as the customer (whose own
    uin most generated paths get)."""
    client = shop.operator if "/ops/" in case.path else shop.customer
    if _even(case.path_parameters.get("uin")):
        case.path_parameters["uin"] = shop.uin  # reach past "no such account"
    return client.send(case.method, case.formatted_path, _body_bytes(case.body),
                       query=case.query)


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
def test_rest_api_conforms_to_its_openapi_document(rest_shop, case):
    response = _signed_send(rest_shop, case)
    case.validate_response(response, checks=CHECKS)
