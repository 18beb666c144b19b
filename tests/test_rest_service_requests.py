"""Service requests over the native REST API (SRV-1..2, SET-3): the kinds, filing with
bad input refused naming the field, multipart attachment upload (type sniffed, never the
client's word), downloads served as attachments with nosniff, the operators' queue,
take, resolve (credits the month once) and reject; a customer never sees an operator's
name on a request, its history or its attachments, operators do."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from feecenter.auth import tc3
from feecenter.service_requests.tables import service_request_attachments, service_requests
from tests.helpers import balance, row_counts
from tests.rest_harness import HOST, rest_shop  # noqa: F401 - fixture
from tests.test_service_requests import FEBRUARY, PDF, add_lines


def upload(client, request_id: int, name: str, content: bytes,
           content_type: str = "application/pdf") -> httpx.Response:
    """A signed multipart upload: the signature covers the multipart body as sent."""
    built = httpx.Request("POST", f"http://{HOST}/api/v1/service-requests/{request_id}/attachments",
                          files={"file": (name, content, content_type)})
    body = built.read()
    headers = tc3.sign(client.key.secret_id, client.key.secret_key, method="POST", host=HOST,
                       path=built.url.raw_path.decode(), query="", body=body,
                       content_type=built.headers["content-type"],
                       timestamp=int(client.rt.clock.now().timestamp()), service=tc3.SERVICE)
    return client.http.request("POST", built.url, content=body, headers=headers)


@pytest.fixture
def filed(rest_shop):  # noqa: F811
    add_lines(rest_shop.rt, rest_shop.uin, [1_500_000, 1_000_000], FEBRUARY)  # 2.5 -> 3 fen
    response = rest_shop.customer.send(
        "POST", f"/api/v1/accounts/{rest_shop.uin}/service-requests",
        {"kind": "precision_compensation", "fields": {"month": "2026-02"}})
    assert response.status_code == 201, response.text
    return rest_shop, response.json()


@pytest.mark.spec("SRV-1")
def test_kinds_are_listed_with_their_fields(rest_shop):  # noqa: F811
    kinds = rest_shop.customer.send("GET", "/api/v1/service-request-kinds").json()["items"]
    assert kinds[0]["code"] == "precision_compensation"
    assert kinds[0]["fields"][0] == {"name": "month", "name_zh": "月份", "name_en": "month",
                                     "type": "month", "required": True}


@pytest.mark.spec("SRV-1")
@pytest.mark.parametrize(("fields", "field"), [
    ({"month": 202602}, "fields.month"),
    ({"month": "2026-13"}, "fields.month"),
    ({"month": "2026-02", "note": True}, "fields.note"),
    ({"month": "2026-02", "iban": "x"}, "fields.iban"),
])
def test_bad_fields_get_400_naming_the_field_and_write_nothing(rest_shop, fields, field):  # noqa: F811
    add_lines(rest_shop.rt, rest_shop.uin, [1_500_000], FEBRUARY)
    response = rest_shop.customer.send(
        "POST", f"/api/v1/accounts/{rest_shop.uin}/service-requests",
        {"kind": "precision_compensation", "fields": fields})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == field and error["message_zh"] and error["message_en"]
    assert row_counts(rest_shop.rt, service_requests) == (0,)


@pytest.mark.spec("SRV-1", "SRV-2", "SET-3")
def test_the_whole_life_over_rest(filed):
    shop, request = filed
    assert (request["state"], request["due_at"]) == ("submitted", "2026-03-10 00:00:00")
    mine = shop.customer.send("GET", f"/api/v1/accounts/{shop.uin}/service-requests").json()
    assert [r["id"] for r in mine["items"]] == [request["id"]]
    queue = shop.operator.send("GET", "/api/v1/ops/service-requests",
                               query={"kind": "precision_compensation", "overdue": "false"})
    assert [r["id"] for r in queue.json()["items"]] == [request["id"]]
    assert shop.customer.send("GET", "/api/v1/ops/service-requests").status_code == 403
    rid = request["id"]
    assert shop.customer.send("POST", f"/api/v1/ops/service-requests/{rid}/take").status_code == 403
    assert shop.operator.send("POST", f"/api/v1/ops/service-requests/{rid}/take").json()[
        "state"] == "processing"
    before = balance(shop.rt, shop.uin).cash
    done = shop.operator.send("POST", f"/api/v1/ops/service-requests/{rid}/resolve",
                              {"note": "已核对"})
    assert done.status_code == 200 and done.json()["result"]["amount"] == "0.03"
    assert balance(shop.rt, shop.uin).cash == before + 3
    again = shop.operator.send("POST", f"/api/v1/ops/service-requests/{rid}/resolve", {})
    assert again.status_code == 409
    seen = shop.customer.send("GET", f"/api/v1/service-requests/{rid}").json()
    assert [e["event"] for e in seen["events"]] == ["submitted", "taken", "resolved"]
    assert balance(shop.rt, shop.uin).cash == before + 3


@pytest.mark.spec("SRV-2")
def test_reject_needs_a_reason_and_withdraw_only_while_submitted(filed):
    shop, request = filed
    rid = request["id"]
    empty = shop.operator.send("POST", f"/api/v1/ops/service-requests/{rid}/reject",
                               {"reason": "   "})
    assert empty.status_code == 400 and empty.json()["error"]["field"] == "reason"
    withdrawn = shop.customer.send("POST", f"/api/v1/service-requests/{rid}/withdraw")
    assert withdrawn.json()["state"] == "withdrawn"
    late = shop.operator.send("POST", f"/api/v1/ops/service-requests/{rid}/reject",
                              {"reason": "重复"})
    assert late.status_code == 409


@pytest.mark.spec("SRV-1")
def test_attachments_upload_sniffed_and_download_as_attachment_with_nosniff(filed):
    shop, request = filed
    rid = request["id"]
    stored = upload(shop.customer, rid, "账单.pdf", PDF, content_type="text/html")
    assert stored.status_code == 201, stored.text
    assert stored.json()["content_type"] == "application/pdf"  # sniffed, not the client's
    got = shop.customer.send("GET", f"/api/v1/service-requests/{rid}/attachments/"
                                    f"{stored.json()['id']}")
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in got.headers["content-security-policy"]
    by_ops = shop.operator.send("GET", f"/api/v1/service-requests/{rid}/attachments/"
                                       f"{stored.json()['id']}")
    assert by_ops.status_code == 200


@pytest.mark.spec("SRV-1")
def test_html_disguised_as_pdf_and_oversize_files_are_refused(filed):
    shop, request = filed
    rid = request["id"]
    html = upload(shop.customer, rid, "invoice.pdf", b"<html><script>alert(1)</script>")
    assert html.status_code == 400 and html.json()["error"]["field"] == "attachment"
    huge = upload(shop.customer, rid, "big.pdf", b"%PDF-" + b"0" * (5 * 1024 * 1024))
    assert huge.status_code in (400, 413)
    assert huge.json()["error"]["field"] in ("attachment", "body")
    not_multipart = shop.customer.send("POST", f"/api/v1/service-requests/{rid}/attachments",
                                       {"file": "x"})
    assert not_multipart.status_code == 400 and not_multipart.json()["error"]["field"] == "file"
    assert row_counts(shop.rt, service_request_attachments) == (0,)


# ---------------------------------------------------------------- what customers see of operators

OPS_NAME = "rest-shop-ops"  # the operator's key (tests.rest_harness)
JANUARY = datetime(2026, 1, 12, 4, 0, tzinfo=timezone.utc)


@pytest.mark.spec("SRV-1", "SRV-2")
def test_a_customer_never_sees_the_operators_name_operators_do(filed):
    shop, own = filed
    ops_label = f"operator:{OPS_NAME}"
    add_lines(shop.rt, shop.uin, [1_800_000, 900_000], JANUARY)
    on_behalf = shop.operator.send(  # an operator files a request for the customer
        "POST", f"/api/v1/accounts/{shop.uin}/service-requests",
        {"kind": "precision_compensation", "fields": {"month": "2026-01"}})
    assert on_behalf.status_code == 201, on_behalf.text
    assert on_behalf.json()["created_by"] == ops_label
    rid = on_behalf.json()["id"]
    assert shop.operator.send("POST", f"/api/v1/ops/service-requests/{rid}/take").status_code == 200
    scan = upload(shop.operator, rid, "核对.pdf", PDF)
    assert scan.status_code == 201 and scan.json()["created_by"] == ops_label
    done = shop.operator.send("POST", f"/api/v1/ops/service-requests/{rid}/resolve",
                              {"note": "已核对"})
    assert done.status_code == 200 and done.json()["ended_by"] == ops_label
    mine = upload(shop.customer, own["id"], "账单.pdf", PDF)  # the customer's own user
    assert mine.status_code == 201
    user_label = own["created_by"]
    assert user_label.startswith("user:") and mine.json()["created_by"] == user_label

    ops_view = shop.operator.send("GET", f"/api/v1/service-requests/{rid}").json()
    assert (ops_view["created_by"], ops_view["taken_by"], ops_view["ended_by"]) == (
        ops_label, ops_label, ops_label)
    assert {e["actor"] for e in ops_view["events"]} == {ops_label}
    assert [a["created_by"] for a in ops_view["attachments"]] == [ops_label]
    queue = shop.operator.send("GET", "/api/v1/ops/service-requests", query={"state": "resolved"})
    assert [r["taken_by"] for r in queue.json()["items"]] == [ops_label]

    seen = shop.customer.send("GET", f"/api/v1/service-requests/{rid}")
    listed = shop.customer.send("GET", f"/api/v1/accounts/{shop.uin}/service-requests")
    assert seen.status_code == 200 and listed.status_code == 200
    for response in (seen, listed):
        assert OPS_NAME not in response.text and "operator:" not in response.text
    got = seen.json()
    assert (got["created_by"], got["taken_by"], got["ended_by"]) == (
        "operator", "operator", "operator")
    assert [(e["event"], e["actor"]) for e in got["events"]] == [
        ("submitted", "operator"), ("taken", "operator"), ("attached", "operator"),
        ("resolved", "operator")]
    assert [a["created_by"] for a in got["attachments"]] == ["operator"]
    assert got["reason"] == "已核对" and got["result"]["amount"] == "0.03"
    by_id = {r["id"]: r for r in listed.json()["items"]}
    assert by_id[rid]["created_by"] == "operator" and by_id[rid]["taken_by"] == "operator"
    assert by_id[own["id"]]["created_by"] == user_label  # the customer's users stay named
    own_seen = shop.customer.send("GET", f"/api/v1/service-requests/{own['id']}").json()
    assert {e["actor"] for e in own_seen["events"]} == {user_label}
    assert [a["created_by"] for a in own_seen["attachments"]] == [user_label]
