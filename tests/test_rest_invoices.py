"""Invoices on the native REST API (api/invoices.py; docs/invoices.md, "REST"): the
invoiceable amount with its parts and buckets, the title, the invoice emails, the
automatic issuing setting, the preview and the application (issued right after the
answer), the list and one invoice, the PDF and XML, reversals with their release and
rejection by operators, and the public verification (no signature, 429 beyond its
rate). Amounts are yuan strings; bad input is a 4xx naming the field, nothing written."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.auth import service as auth
from feecenter.invoices.tables import invoice_applications, invoice_reversals, invoices
from feecenter.service_requests.tables import service_requests
from tests.helpers import OPS, add_cash, buy, load_sample_catalog, new_account, pay, row_counts
from tests.rest_harness import HOST, RestShop, Signed
from tests.test_rest_strict_input import assert_refused

ENTITY = "上海示例云计算有限公司"
USCC = "91310000MA1FL4TQ9U"
SPECIAL = {"title_kind": "enterprise", "title": ENTITY, "tax_id": USCC,
           "address": "上海市浦东新区示例路 1 号", "phone": "021-12345678",
           "bank": "招商银行上海分行", "bank_account": "121900000000001"}


@pytest.fixture
def inv(rt) -> RestShop:
    """An enterprise account that bought and paid a month of cvm with cash (cloud
    services, 6 %), its API key and an operator's."""
    load_sample_catalog(rt)
    uin = new_account(rt, "inv-co", enterprise_name=ENTITY, uscc=USCC,
                      email="contact@example.com")
    add_cash(rt, uin, 100_000_00)
    pay(rt, uin, buy(rt, uin))
    with rt.engine.begin() as conn:
        _, ops_key = auth.create_operator(conn, rt.clock, OPS, "inv-ops")
        customer_key = auth.create_api_key(conn, rt.clock, OPS, uin)
    http = TestClient(create_app(rt), base_url=f"http://{HOST}")
    return RestShop(rt, uin, Signed(rt, http, customer_key), Signed(rt, http, ops_key))


def _path(shop: RestShop, tail: str) -> str:
    return f"/api/v1/accounts/{shop.uin}/{tail}"


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def _titled(shop: RestShop) -> None:
    ok(shop.customer.send("PUT", _path(shop, "invoice-title"), SPECIAL))


def _apply(shop: RestShop, key: str = "apply-1", **body) -> dict:
    _titled(shop)
    return ok(shop.customer.send("POST", _path(shop, "invoices"),
                                 {"kind": "ordinary", "request_key": key, **body}), 201)


def written(rt):
    return row_counts(rt, invoice_applications, invoices, invoice_reversals)


@pytest.mark.spec("INV-1")
def test_the_invoiceable_amount_is_the_cash_consumed_with_its_parts_and_buckets(inv):
    shown = ok(inv.customer.send("GET", _path(inv, "invoiceable")))
    assert shown["amount"] == shown["consumed"] != "0.00"
    assert shown["invoiced"] == shown["debt"] == shown["transferred_unspent"] == "0.00"
    assert shown["commercial"] == "0.00"
    assert len(shown["buckets"]) == 1
    bucket = shown["buckets"][0]
    assert bucket["rate_bp"] == 600 and bucket["available"] == shown["amount"]
    assert bucket["item_name"] == "信息技术服务*云服务费"


@pytest.mark.spec("INV-9", "INV-1")
def test_a_commercial_invoice_request_is_its_own_part_never_above_the_amount(inv):
    path = _path(inv, "service-requests")
    fields = {"account_id": str(inv.uin), "amount": "178.01", "title": "Acme Trading Limited",
              "address": "1 Queen's Road Central, Hong Kong", "region": "HK"}
    error = assert_refused(inv.customer.send("POST", path, {
        "kind": "commercial_invoice", "fields": fields}), 400, "fields.amount")
    assert "178.00" in error["message_zh"] and "178.00" in error["message_en"]
    assert row_counts(inv.rt, service_requests) == (0,)
    ok(inv.customer.send("POST", path, {"kind": "commercial_invoice",
                                        "fields": {**fields, "amount": "100.00"}}), 201)
    shown = ok(inv.customer.send("GET", _path(inv, "invoiceable")))
    assert (shown["amount"], shown["commercial"], shown["consumed"], shown["debt"]) == (
        "78.00", "100.00", "178.00", "0.00")


def test_the_title_emails_and_settings_round_trip(inv):
    assert ok(inv.customer.send("GET", _path(inv, "invoice-title")))["title"] is None
    title = ok(inv.customer.send("PUT", _path(inv, "invoice-title"), SPECIAL))["title"]
    assert title["title"] == ENTITY and title["special_ready"] is True
    emails = ok(inv.customer.send("GET", _path(inv, "invoice-emails")))["items"]
    assert [(e["email"], e["is_default"]) for e in emails] == [("contact@example.com", True)]
    added = ok(inv.customer.send("POST", _path(inv, "invoice-emails"),
                                 {"email": "invoices@example.com"}), 201)
    ok(inv.customer.send("POST", _path(inv, f"invoice-emails/{added['id']}/default")))
    emails = ok(inv.customer.send("GET", _path(inv, "invoice-emails")))["items"]
    assert [e["email"] for e in emails if e["is_default"]] == ["invoices@example.com"]
    left = ok(inv.customer.send("DELETE", _path(inv, f"invoice-emails/{added['id']}")))
    assert [e["email"] for e in left["items"] if e["is_default"]] == ["contact@example.com"]
    settings = ok(inv.customer.send("PUT", _path(inv, "invoice-settings"),
                                    {"auto_issue": True, "auto_issue_kind": "special"}))
    assert settings == ok(inv.customer.send("GET", _path(inv, "invoice-settings")))
    assert settings["auto_issue"] is True and settings["auto_issue_kind"] == "special"


@pytest.mark.spec("INV-3")
def test_a_title_of_another_company_is_refused_naming_the_field(inv):
    other = {**SPECIAL, "title": "北京另一家公司有限公司"}
    assert_refused(inv.customer.send("PUT", _path(inv, "invoice-title"), other), 400, "title")
    assert ok(inv.customer.send("GET", _path(inv, "invoice-title")))["title"] is None


@pytest.mark.parametrize("body, field", [
    ({"kind": "ordinary", "amount": "1.234"}, "amount"),
    ({"kind": "ordinary", "amount": 10}, "amount"),
    ({"kind": "golden"}, "kind"),
    ({"kind": "ordinary", "extra": 1}, "extra"),
])
def test_bad_previews_are_400_naming_the_field(inv, body, field):
    _titled(inv)
    assert_refused(inv.customer.send("POST", _path(inv, "invoices/preview"), body), 400, field)


@pytest.mark.spec("INV-4")
def test_the_preview_splits_the_tax_of_the_tax_inclusive_amount(inv):
    _titled(inv)
    shown = ok(inv.customer.send("POST", _path(inv, "invoices/preview"),
                                 {"kind": "ordinary", "amount": "10.60"}))
    assert shown["amount"] == "10.60"
    [invoice] = shown["invoices"]
    [line] = invoice["lines"]
    assert (line["amount"], line["net_amount"], line["tax_amount"]) == ("10.60", "10.00", "0.60")
    assert line["tax_code"] == "3040205"


@pytest.mark.spec("INV-5")
def test_applying_needs_a_key_issues_after_the_answer_and_downloads(inv):
    _titled(inv)
    before = written(inv.rt)
    assert_refused(inv.customer.send("POST", _path(inv, "invoices"), {"kind": "ordinary"}),
                   400, "request_key")
    assert written(inv.rt) == before
    applied = _apply(inv, amount="10.60")
    again = _apply(inv, amount="10.60")  # the same key: the same application
    assert again["application_id"] == applied["application_id"]
    [invoice] = applied["invoices"]
    assert invoice["amount"] == "10.60" and invoice["tax_amount"] == "0.60"
    shown = ok(inv.customer.send("GET", _path(inv, f"invoices/{invoice['id']}")))
    assert shown["state"] == "issued"  # the background task ran after the answer
    assert len(shown["invoice_number"]) == 20 and shown["email"] == "contact@example.com"
    listed = ok(inv.customer.send("GET", _path(inv, "invoices"), query={"limit": "5"}))
    assert listed["total"] == 1 and listed["items"][0]["id"] == invoice["id"]
    pdf = inv.customer.send("GET", _path(inv, f"invoices/{invoice['id']}/download"),
                            query={"format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-disposition"].startswith("attachment")
    xml = inv.customer.send("GET", _path(inv, f"invoices/{invoice['id']}/download"),
                            query={"format": "xml"})
    assert xml.status_code == 200 and b"<" in xml.content[:100]
    assert_refused(inv.customer.send("GET", _path(inv, f"invoices/{invoice['id']}/download"),
                                     query={"format": "doc"}), 400, "format")
    left = ok(inv.customer.send("GET", _path(inv, "invoiceable")))
    assert left["invoiced"] == "10.60"


def test_an_unknown_invoice_is_404_and_the_operator_queue_is_operators_only(inv):
    assert_refused(inv.customer.send("GET", _path(inv, "invoices/999999")), 404, None)
    assert_refused(inv.customer.send("GET", "/api/v1/ops/invoices"), 403, None)
    assert_refused(inv.customer.send("GET", "/api/v1/ops/invoice-reversals"), 403, None)
    _apply(inv, amount="1.06")
    queue = ok(inv.operator.send("GET", "/api/v1/ops/invoices", query={"state": "issued"}))
    assert queue["total"] == 1 and queue["items"][0]["flagged"] is False
    flagged = ok(inv.operator.send("GET", "/api/v1/ops/invoices", query={"flagged": "true"}))
    assert flagged["total"] == 0


@pytest.mark.spec("INV-6")
def test_a_reversal_is_released_by_an_operator_into_a_red_invoice(inv):
    [invoice] = _apply(inv, amount="10.60")["invoices"]
    path = _path(inv, f"invoices/{invoice['id']}/reversal")
    assert_refused(inv.customer.send("POST", path, {"treatment": "none", "reason": "nonsense",
                                                    "explanation": "x"}), 400, "reason")
    reversal = ok(inv.customer.send("POST", path, {
        "treatment": "none", "reason": "wrong_details", "explanation": "抬头地址有误"}), 201)
    assert reversal["state"] == "submitted" and reversal["invoice_id"] == invoice["id"]
    assert_refused(inv.customer.send("POST", path, {
        "treatment": "none", "reason": "wrong_details", "explanation": "again"}), 409, None)
    mine = ok(inv.customer.send("GET", _path(inv, "invoice-reversals")))["items"]
    assert [r["id"] for r in mine] == [reversal["id"]]
    queue = ok(inv.operator.send("GET", "/api/v1/ops/invoice-reversals",
                                 query={"state": "submitted"}))
    assert [r["id"] for r in queue["items"]] == [reversal["id"]]
    released = ok(inv.operator.send(
        "POST", f"/api/v1/ops/invoice-reversals/{reversal['id']}/release"))
    assert released["state"] == "released" and released["red_invoice_id"]
    blue = ok(inv.customer.send("GET", _path(inv, f"invoices/{invoice['id']}")))
    assert blue["state"] == "reversed"
    red = ok(inv.customer.send("GET", _path(inv, f"invoices/{released['red_invoice_id']}")))
    assert red["kind"] == "red" and red["amount"] == "-10.60" and red["state"] == "issued"
    assert ok(inv.customer.send("GET", _path(inv, "invoiceable")))["invoiced"] == "0.00"


@pytest.mark.spec("INV-6")
def test_a_deducted_invoice_waits_for_its_red_letter_number_and_a_reversal_can_be_rejected(inv):
    [invoice] = _apply(inv, amount="2.12")["invoices"]
    reversal = ok(inv.customer.send("POST", _path(inv, f"invoices/{invoice['id']}/reversal"), {
        "treatment": "deducted", "reason": "wrong_details", "explanation": "已抵扣"}), 201)
    assert reversal["state"] == "red_letter_pending"
    number_path = _path(inv, f"invoice-reversals/{reversal['id']}/red-letter-number")
    assert_refused(inv.customer.send("PUT", number_path, {"red_letter_no": "12"}), 400,
                   "red_letter_no")
    given = ok(inv.customer.send("PUT", number_path, {"red_letter_no": "31000000000000000001"}))
    assert given["state"] == "submitted" and given["red_letter_no"] == "31000000000000000001"
    reject = f"/api/v1/ops/invoice-reversals/{reversal['id']}/reject"
    assert_refused(inv.operator.send("POST", reject, {"reason": ""}), 400, "reason")
    rejected = ok(inv.operator.send("POST", reject, {"reason": "红字确认单编号不符"}))
    assert rejected["state"] == "rejected" and rejected["reject_reason"] == "红字确认单编号不符"
    assert ok(inv.customer.send("GET", _path(inv, f"invoices/{invoice['id']}")))["state"] == \
        "issued"


@pytest.mark.spec("INV-8")
def test_anyone_verifies_an_issued_invoice_from_the_next_day_and_is_rate_limited(inv):
    [invoice] = _apply(inv, amount="10.60")["invoices"]
    shown = ok(inv.customer.send("GET", _path(inv, f"invoices/{invoice['id']}")))
    inv.rt.clock.advance(days=1)
    public = inv.customer.http  # no signature
    wanted = {"invoice_code": shown["invoice_code"], "invoice_number": shown["invoice_number"],
              "issued_on": shown["issued_at"][:10], "amount": "10.60",
              "check_last6": shown["check_code"][-6:]}
    assert_refused(public.post("/api/v1/invoice-verifications",
                               json={**wanted, "invoice_code": "12"}), 400, "invoice_code")
    answer = ok(public.post("/api/v1/invoice-verifications", json=wanted))
    assert answer["valid"] is True and answer["amount"] == "10.60"
    wrong = ok(public.post("/api/v1/invoice-verifications",
                           json={**wanted, "amount": "10.61"}))
    assert wrong["valid"] is False
    statuses = [public.post("/api/v1/invoice-verifications", json=wanted).status_code
                for _ in range(12)]
    assert statuses[-1] == 429 and set(statuses) <= {200, 429}
    inv.rt.clock.advance(minutes=2)
    assert public.post("/api/v1/invoice-verifications", json=wanted).status_code == 200


def test_the_openapi_document_lists_the_invoice_routes_and_the_429(inv):
    document = inv.customer.http.get("/openapi.json").json()
    paths = document["paths"]
    assert "429" in paths["/api/v1/invoice-verifications"]["post"]["responses"]
    assert "/api/v1/accounts/{uin}/invoices/{invoice_id}/download" in paths
    assert "/api/v1/ops/invoice-reversals/{reversal_id}/release" in paths


@pytest.mark.spec("ACC-2")
def test_a_readonly_user_is_refused_and_an_operator_reads_the_account(inv):
    from feecenter.accounts import service as accounts
    from feecenter.db.engine import transaction

    with transaction(inv.rt.engine) as conn:
        accounts.add_user(conn, inv.rt.clock, OPS, inv.uin, "inv-readonly", "readonly")
        key = auth.create_api_key(conn, inv.rt.clock, OPS, inv.uin, "inv-readonly")
    readonly = Signed(inv.rt, inv.customer.http, key)
    for method, tail, body in (("GET", "invoiceable", None), ("GET", "invoices", None),
                               ("PUT", "invoice-title", SPECIAL),
                               ("POST", "invoices", {"kind": "ordinary", "request_key": "r"})):
        assert_refused(readonly.send(method, _path(inv, tail), body), 403, None)
    assert written(inv.rt) == (0, 0, 0)
    assert ok(inv.operator.send("GET", _path(inv, "invoiceable")))["amount"] != "0.00"
