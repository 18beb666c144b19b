"""Hostile console requests are refused with a 4xx, never a 500, and write nothing:
a NUL byte in a path, a query or a form field (no database stores it as text), and a
page number thousands of digits long (``int`` refuses those with a ValueError)."""

from __future__ import annotations

import pytest

from tests.test_console import csrf_of, logged_in, shop  # noqa: F401 - shop is a fixture

HUGE = "9" * 5000


@pytest.mark.parametrize("path", ["/console/coupons", "/console/messages", "/console/orders",
                                  "/console/transactions", "/console/bills"])
def test_a_page_number_thousands_of_digits_long_is_refused(rt, shop, path):  # noqa: F811
    http = logged_in(rt)
    for query in (f"page={HUGE}", f"after={HUGE}"):
        response = http.get(f"{path}?{query}")
        assert response.status_code in (200, 400), (query, response.status_code)
        if response.status_code == 200:  # the page shows the error next to its field
            assert 'data-error-field="page"' in response.text or "page" in response.text


def test_a_nul_byte_in_a_path_a_query_or_a_form_is_a_400(rt, shop):  # noqa: F811
    http = logged_in(rt)
    assert http.get("/console/resources/%00/refund").status_code == 400
    assert http.get("/console/transactions?product=%00").status_code == 400
    token = csrf_of(http.get("/console/users").text)
    response = http.post("/console/users", data={"csrf_token": token, "login": "bad\x00name",
                                                  "role": "readonly"})
    assert response.status_code == 400
    assert "login" in response.text
    assert "bad" not in http.get("/console/users").text.split("csrf_token")[-1]
