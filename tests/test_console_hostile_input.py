"""Hostile console requests are refused with a 4xx, never a 500, and write nothing:
a NUL byte in a resource id (PostgreSQL cannot compare it as text), and a page
number thousands of digits long (``int`` refuses those with a ValueError)."""

from __future__ import annotations

import pytest

from tests.test_console import csrf_of, logged_in, shop  # noqa: F401 - shop is a fixture

HUGE = "9" * 5000


@pytest.mark.parametrize("path", ["/console/coupons", "/console/messages", "/console/orders",
                                  "/console/remittance", "/console/renewal",
                                  "/console/transactions", "/console/bills"])
def test_a_page_number_thousands_of_digits_long_is_refused(rt, shop, path):  # noqa: F811
    http = logged_in(rt)
    for query in (f"page={HUGE}", f"after={HUGE}"):
        response = http.get(f"{path}?{query}")
        assert response.status_code in (200, 400), (query, response.status_code)
        if response.status_code == 200:  # the page shows the error next to its field
            assert 'data-error-field="page"' in response.text or "page" in response.text


def test_a_nul_byte_in_a_resource_path_or_form_is_a_field_error_not_a_500(rt, shop):  # noqa: F811
    http = logged_in(rt)
    for path in ("/console/resources/%00", "/console/resources/%00/refund"):
        assert http.get(path).status_code in (400, 404), path
    token = csrf_of(http.get("/console/resources").text)
    for action, data in (("refund", {"idempotency_key": "k1"}), ("renew", {"months": "1"}),
                         ("upgrade", {"spec_item": "S5.LARGE8"})):
        response = http.post(f"/console/resources/a%00b/{action}",
                             data={"csrf_token": token, **data})
        assert response.status_code in (400, 404), (action, response.status_code)
    response = http.post("/console/resources/move", data={
        "csrf_token": token, "resource_id": "a\x00b", "project_id": "1"})
    assert response.status_code in (400, 404), response.status_code


def test_a_nul_byte_in_the_renewal_forms_is_a_field_error_not_a_500(rt, shop):  # noqa: F811
    http = logged_in(rt)
    token = csrf_of(http.get("/console/renewal").text)
    for path, data in (("/console/renewal/auto-renew", {"resource_id": "a\x00b",
                                                         "auto_renew": "on"}),
                       ("/console/renewal/period", {"resource_id": "a\x00b", "months": "1"}),
                       ("/console/renewal/renew", {"resource_id": "a\x00b",
                                                   "idempotency_key": "k\x00"}),
                       ("/console/renewal/settings", {"auto_renew_default": "\x00",
                                                      "unified_day": "\x00"}),
                       ("/console/recycle-bin/a%00b/restore", {"months": "1",
                                                               "idempotency_key": "k"})):
        response = http.post(path, data={"csrf_token": token, **data})
        assert response.status_code in (400, 404), (path, response.status_code)
    for query in ("within=%00", "product=%00", "project=%00", "auto=%00", "tab=%00"):
        assert http.get(f"/console/renewal?{query}").status_code == 400, query


def test_a_nul_byte_in_the_statistic_period_form_is_a_field_error_not_a_500(rt, shop):  # noqa: F811
    http = logged_in(rt)
    token = csrf_of(http.get("/console/bills").text)
    for data in ({"acknowledged": "\x00", "acknowledgement_version": "\x00"},
                 {"acknowledged": "on", "acknowledgement_version": "x" * 5000}):
        response = http.post("/console/bills/statistic-period", data={"csrf_token": token, **data})
        assert response.status_code == 400, response.status_code
        assert 'data-error-field="acknowledge' in response.text
