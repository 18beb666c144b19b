"""The console's 工单 pages (SRV-1..2, SET-3) on both backends, the app in-process: the
new-request form rendered from the kind's fields, filing with an attachment, field errors
in both languages with nothing written, HTML disguised as PDF refused, the detail with
history and attachments (downloaded as attachments with nosniff), withdrawing, the
readonly user refused, CSRF; the operator queue (kind, overdue filters), take, resolve
(the month credited) and reject; the customer's pages never name the operator who filed,
took, attached or resolved (平台运营人员 / Platform operator), the operator's do."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from feecenter.accounts.permissions import operator
from feecenter.auth import operator_sessions
from feecenter.auth import service as auth
from feecenter.db.engine import transaction
from feecenter.service_requests import service as srv
from feecenter.service_requests.tables import service_request_attachments, service_requests
from tests.helpers import OPS, balance, row_counts
from tests.test_console import csrf_of, logged_in, shop  # noqa: F401 - shop is a fixture
from tests.test_console_ops import PASSWORD, client, ops_log_in
from tests.test_service_requests import FEBRUARY, PDF, add_lines

NEW = "/console/service-requests/new"


@pytest.fixture
def claimable(rt, shop):  # noqa: F811
    add_lines(rt, shop, [2_000_000, 600_000], FEBRUARY)  # 2.6 fen -> 3 fen back
    return shop


def file_form(http, month="2026-02", note="", files=None, kind="precision_compensation"):
    token = csrf_of(http.get(NEW).text)
    return http.post(NEW, data={"csrf_token": token, "kind": kind, "field_month": month,
                                "field_note": note}, files=files or {})


def request_id_of(response) -> int:
    assert response.status_code == 303, response.text
    return int(re.fullmatch(r"/console/service-requests/(\d+)", response.headers["location"])[1])


@pytest.mark.spec("SRV-1")
def test_the_form_is_rendered_from_the_kinds_fields_in_both_languages(rt, claimable):
    http = logged_in(rt)
    zh = http.get(NEW)
    assert zh.status_code == 200 and 'data-kind="precision_compensation"' in zh.text
    assert "月份" in zh.text and 'name="field_month"' in zh.text and 'name="field_note"' in zh.text
    assert "处理时限：5 个工作日" in zh.text and 'type="file" name="attachments"' in zh.text
    assert '<a href="/console/service-requests" aria-current="page"' in zh.text
    http.cookies.set("fc_lang", "en", path="/console")
    en = http.get(NEW)
    assert "Precision difference compensation" in en.text and "Due within 5 working days" in en.text


@pytest.mark.spec("SRV-1", "SET-3")
def test_filing_with_an_attachment_shows_the_detail_with_history(rt, claimable):
    http = logged_in(rt)
    response = file_form(http, note="二月多扣", files={"attachments": ("账单.pdf", PDF,
                                                                      "application/pdf")})
    number = request_id_of(response)
    detail = http.get(f"/console/service-requests/{number}")
    assert detail.status_code == 200
    assert 'data-state="submitted"' in detail.text and "2026-02" in detail.text
    assert 'data-event="submitted"' in detail.text and "账单.pdf" in detail.text
    attachment = re.search(r'data-attachment="(\d+)"', detail.text)[1]
    got = http.get(f"/console/service-requests/{number}/attachments/{attachment}")
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["x-content-type-options"] == "nosniff"
    listed = http.get("/console/service-requests")
    assert f'data-request="{number}"' in listed.text


@pytest.mark.spec("SRV-1")
@pytest.mark.parametrize(("lang", "month", "field", "text"), [
    ("zh-CN", "", "fields.month", "月份：必填"),
    ("en", "2026-2", "fields.month", "month: a month must be YYYY-MM"),
    ("zh-CN", "2026-03", "fields.month", "只能申请已结束月份"),
])
def test_bad_fields_are_shown_next_to_the_field_and_nothing_is_written(rt, claimable, lang,
                                                                      month, field, text):
    http = logged_in(rt)
    http.cookies.set("fc_lang", lang, path="/console")
    response = file_form(http, month=month)
    assert response.status_code == 400
    assert f'data-error-field="{field}"' in response.text and text in response.text
    assert f'value="{month}"' in response.text  # the value is kept
    assert row_counts(rt, service_requests) == (0,)


@pytest.mark.spec("SRV-1")
def test_html_disguised_as_pdf_is_refused(rt, claimable):
    http = logged_in(rt)
    response = file_form(http, files={"attachments": (
        "invoice.pdf", b"<html><script>alert(1)</script></html>", "application/pdf")})
    assert response.status_code == 400 and 'data-error-field="attachment"' in response.text
    assert row_counts(rt, service_requests, service_request_attachments) == (0, 0)


def test_withdraw_readonly_and_csrf(rt, claimable):
    http = logged_in(rt)
    number = request_id_of(file_form(http))
    forged = http.post(f"/console/service-requests/{number}/withdraw", data={"csrf_token": "x"})
    assert forged.status_code == 403
    token = csrf_of(http.get(f"/console/service-requests/{number}").text)
    done = http.post(f"/console/service-requests/{number}/withdraw", data={"csrf_token": token})
    assert done.status_code == 303
    assert 'data-state="withdrawn"' in http.get(f"/console/service-requests/{number}").text
    readonly = logged_in(rt, "acme-readonly")
    assert readonly.get(f"/console/service-requests/{number}").status_code == 403
    assert readonly.get("/console/service-requests").status_code == 403


# ---------------------------------------------------------------- the operator console

@pytest.fixture
def ops_http(rt):
    with transaction(rt.engine) as conn:
        auth.create_operator(conn, rt.clock, OPS, "alice")
        operator_sessions.set_password(conn, rt.clock, OPS, "alice", PASSWORD)
    return logged_in_ops(rt)


def logged_in_ops(rt):
    http = client(rt)
    assert ops_log_in(http).status_code == 303
    return http


def ops_post(http, number: int, action: str, note: str = ""):
    token = csrf_of(http.get(f"/console/ops/service-requests/{number}").text)
    return http.post(f"/console/ops/service-requests/{number}/{action}",
                     data={"csrf_token": token, "note": note})


@pytest.mark.spec("SRV-2", "SET-3")
def test_the_operator_queue_take_and_resolve_credit_the_month(rt, claimable, ops_http):
    customer = logged_in(rt)
    number = request_id_of(file_form(customer))
    queue = ops_http.get("/console/ops/service-requests?kind=precision_compensation")
    assert queue.status_code == 200 and f'data-request="{number}"' in queue.text
    assert f'data-request="{number}"' not in ops_http.get(
        "/console/ops/service-requests?overdue=yes").text
    bad = ops_http.get("/console/ops/service-requests?uin=abc")
    assert bad.status_code == 400 and 'data-error-field="uin"' in bad.text
    cash = balance(rt, claimable).cash
    early = ops_post(ops_http, number, "resolve")  # the form is not shown yet: 409
    assert early.status_code == 409
    assert ops_post(ops_http, number, "take").status_code == 303
    assert ops_post(ops_http, number, "resolve", "已核对").status_code == 303
    detail = ops_http.get(f"/console/ops/service-requests/{number}")
    assert 'data-state="resolved"' in detail.text and "0.03" in detail.text
    assert balance(rt, claimable).cash == cash + 3
    seen = customer.get(f"/console/service-requests/{number}")
    assert 'data-event="resolved"' in seen.text and 'data-result-amount' in seen.text
    rt.clock.advance(days=30)
    overdue_none = logged_in_ops(rt).get("/console/ops/service-requests?overdue=yes")
    assert f'data-request="{number}"' not in overdue_none.text  # resolved: never overdue


@pytest.mark.spec("SRV-2")
def test_the_operator_rejects_with_a_reason_and_overdue_shows(rt, claimable, ops_http):
    number = request_id_of(file_form(logged_in(rt)))
    rt.clock.advance(days=10)
    ops_http = logged_in_ops(rt)
    overdue = ops_http.get("/console/ops/service-requests?overdue=yes")
    assert f'data-request="{number}" data-overdue' in overdue.text
    empty = ops_post(ops_http, number, "reject", "  ")
    assert empty.status_code == 400 and 'data-error-field="reason"' in empty.text
    assert ops_post(ops_http, number, "reject", "资料不全").status_code == 303
    assert "资料不全" in logged_in(rt).get(f"/console/service-requests/{number}").text
    assert logged_in(rt).get("/console/ops/service-requests").status_code in (303, 307)


# ---------------------------------------------------------------- what customers see of operators

OPS_NAME = "zhou-ops-7"


@pytest.mark.spec("SRV-1", "SRV-2")
def test_the_customer_pages_never_name_the_operator_the_operator_pages_do(rt, claimable):
    with transaction(rt.engine) as conn:
        auth.create_operator(conn, rt.clock, OPS, OPS_NAME)
        operator_sessions.set_password(conn, rt.clock, OPS, OPS_NAME, PASSWORD)
    ops_http = client(rt)
    assert ops_log_in(ops_http, name=OPS_NAME).status_code == 303
    ops_label, staff = f"operator:{OPS_NAME}", operator(OPS_NAME)
    customer = logged_in(rt)
    number = request_id_of(file_form(customer, files={"attachments": ("账单.pdf", PDF,
                                                                      "application/pdf")}))
    assert ops_post(ops_http, number, "take").status_code == 303
    with transaction(rt.engine) as conn:
        srv.add_attachment(conn, rt.clock, staff, number, srv.Upload("核对.pdf", PDF))
    assert ops_post(ops_http, number, "resolve", "已核对").status_code == 303
    add_lines(rt, claimable, [1_800_000, 900_000], datetime(2026, 1, 12, 4, tzinfo=timezone.utc))
    with transaction(rt.engine) as conn:  # an operator files one for the customer
        on_behalf = srv.file_request(conn, rt.clock, staff, claimable, "precision_compensation",
                                     {"month": "2026-01"})["id"]

    ops_page = ops_http.get(f"/console/ops/service-requests/{number}")
    assert ops_page.status_code == 200 and ops_page.text.count(ops_label) == 3  # take, attach, resolve
    assert ops_label in ops_http.get(f"/console/ops/service-requests/{on_behalf}").text
    for lang, shown in (("zh-CN", "平台运营人员"), ("en", "Platform operator")):
        customer.cookies.set("fc_lang", lang, path="/console")
        pages = {path: customer.get(path) for path in (
            f"/console/service-requests/{number}", f"/console/service-requests/{on_behalf}",
            "/console/service-requests")}
        for path, page_ in pages.items():
            assert page_.status_code == 200, (path, page_.text)
            assert OPS_NAME not in page_.text and "operator:" not in page_.text, (lang, path)
        worked = pages[f"/console/service-requests/{number}"].text
        assert worked.count(f'<td data-col="by">{shown}</td>') == 3  # take, attach, resolve
        assert "账单.pdf" in worked and "核对.pdf" in worked and "已核对" in worked
        assert "data-result-amount" in worked
        by = re.findall(r'<tr data-event="(\w+)">.*?<td data-col="by">([^<]+)</td>', worked)
        assert [event for event, _ in by] == ["submitted", "taken", "attached", "resolved"]
        assert by[0][1].startswith("user:")  # the customer's own user stays named
        assert [who for _, who in by[1:]] == [shown] * 3
        filed_for = pages[f"/console/service-requests/{on_behalf}"].text
        assert re.findall(r'<td data-col="by">([^<]+)</td>', filed_for) == [shown]
