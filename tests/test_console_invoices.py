"""发票 in the console (console/invoices.py, console/ops_invoices.py; docs/invoices.md,
"Console"): the invoiceable amount with its parts and buckets, the title, emails and
automatic issuing, applying through the preview (lines and tax) with the form's
idempotency key, the records with their PDF/XML, a reversal released by an operator,
the red-letter pending list, and the public verification page. Every form needs the
CSRF token; a refusal is shown naming the field, nothing written."""

from __future__ import annotations

import re

import pytest

from feecenter.auth import operator_sessions, sessions
from feecenter.auth import service as auth
from feecenter.db.engine import transaction
from feecenter.invoices.tables import invoice_applications, invoice_reversals, invoices
from tests.helpers import (OPS, add_cash, buy, load_sample_catalog, new_account, pay, row_counts,
                           run_threads)
from tests.test_console_ops import (CUSTOMER_PASSWORD, PASSWORD, USCC, client, csrf_of,
                                    customer_client, operator_client, with_cookie)

ENTITY = "上海示例云计算有限公司"
TITLE = {"title_kind": "enterprise", "title": ENTITY, "tax_id": USCC,
         "address": "上海市浦东新区示例路 1 号", "phone": "021-12345678",
         "bank": "招商银行上海分行", "bank_account": "121900000000001"}


@pytest.fixture
def world(rt):
    """acme-cloud (enterprise) paid a month of cvm with cash; its owner and operator
    alice have console passwords."""
    load_sample_catalog(rt)
    with transaction(rt.engine) as conn:
        auth.create_operator(conn, rt.clock, OPS, "alice")
        operator_sessions.set_password(conn, rt.clock, OPS, "alice", PASSWORD)
    uin = new_account(rt, "acme-cloud", enterprise_name=ENTITY, uscc=USCC,
                      email="contact@example.com")
    add_cash(rt, uin, 10_000_00)
    pay(rt, uin, buy(rt, uin))
    with transaction(rt.engine) as conn:
        sessions.set_password(conn, rt.clock, OPS, uin, None, CUSTOMER_PASSWORD)
    return uin


def written(rt):
    return row_counts(rt, invoice_applications, invoices, invoice_reversals)


def _post(http, path: str, page: str, **data):
    return http.post(path, data={"csrf_token": csrf_of(http.get(page).text), **data})


def _set_title(http):
    response = _post(http, "/console/invoices/title", "/console/invoices/title", **TITLE)
    assert response.status_code == 303, response.text


def _apply(http, amount: str = "10.60") -> str:
    """Preview, then confirm; the invoices page after it."""
    _set_title(http)
    preview = _post(http, "/console/invoices/preview", "/console/invoices", kind="ordinary",
                    amount=amount, email="contact@example.com")
    assert preview.status_code == 200, preview.text
    key = re.search(r'name="request_key" value="([^"]+)"', preview.text).group(1)
    confirm = {"csrf_token": csrf_of(preview.text), "request_key": key, "kind": "ordinary",
               "amount": amount, "email": "contact@example.com"}
    done = http.post("/console/invoices/apply", data=confirm)
    assert done.status_code == 303, done.text
    again = http.post("/console/invoices/apply", data=confirm)  # a second submit
    assert again.status_code == 303 and again.headers["location"] == done.headers["location"]
    return http.get(done.headers["location"]).text


def _invoice_id(html: str) -> int:
    return int(re.search(r'<tr data-invoice="(\d+)"', html).group(1))


@pytest.mark.spec("INV-1")
def test_the_page_shows_the_invoiceable_amount_its_parts_and_buckets(rt, world):
    html = customer_client(rt).get("/console/invoices").text
    assert "可开票金额" in html and 'data-part="consumed"' in html
    assert 'data-bucket="' in html and "信息技术服务*云服务费" in html
    assert "data-invoice-debt" not in html  # no debt: no banner
    assert 'href="/console/invoices"' in html  # the menu item


@pytest.mark.spec("INV-9", "INV-1")
def test_the_page_shows_commercial_invoices_as_their_own_part(rt, world):
    from feecenter.accounts.permissions import SYSTEM
    from feecenter.service_requests import service as srv

    with transaction(rt.engine) as conn:  # ¥178.00 consumed, ¥100.00 requested
        srv.file_request(conn, rt.clock, SYSTEM, world, "commercial_invoice", {
            "account_id": str(world), "amount": "100.00", "title": "Acme Trading Limited",
            "address": "1 Queen's Road Central, Hong Kong", "region": "HK"})
    http = customer_client(rt)
    html = http.get("/console/invoices").text
    assert re.search(r'<dt>商业发票</dt><dd data-part="commercial">¥100\.00</dd>', html), html
    assert 'data-invoiceable="7800"' in html
    http.cookies.set("fc_lang", "en", path="/console")
    assert "<dt>Commercial invoices</dt>" in http.get("/console/invoices").text


@pytest.mark.spec("INV-4", "INV-5")
def test_apply_through_the_preview_once_and_download_the_issued_pdf(rt, world):
    http = customer_client(rt)
    _set_title(http)
    preview = _post(http, "/console/invoices/preview", "/console/invoices", kind="ordinary",
                    amount="10.60", email="contact@example.com")
    assert 'data-line="' in preview.text and "¥0.60" in preview.text  # 6 % of 10.60
    assert written(rt)[0] == 0  # a preview writes nothing
    html = _apply(http)
    assert written(rt)[:2] == (1, 1)
    invoice_id = _invoice_id(html)
    assert 'data-state="issued"' in html and "已开具" in html
    pdf = http.get(f"/console/invoices/{invoice_id}/download?format=pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-disposition"].startswith("attachment")


@pytest.mark.parametrize("data, field", [
    ({"kind": "ordinary", "amount": "1.234"}, "amount"),
    ({"kind": "golden", "amount": "1.00"}, "kind"),
])
def test_a_bad_application_is_shown_naming_the_field(rt, world, data, field):
    http = customer_client(rt)
    _set_title(http)
    response = _post(http, "/console/invoices/preview", "/console/invoices", **data)
    assert response.status_code == 400
    assert f'data-error-field="{field}"' in response.text
    assert written(rt)[0] == 0


def test_forms_without_the_csrf_token_are_refused(rt, world):
    http = customer_client(rt)
    for path, data in (("/console/invoices/title", TITLE),
                       ("/console/invoices/preview", {"kind": "ordinary"}),
                       ("/console/invoices/apply", {"kind": "ordinary", "request_key": "k"}),
                       ("/console/invoices/settings", {"auto_issue": "on"})):
        assert http.post(path, data={**data, "csrf_token": "stale"}).status_code == 403
    assert written(rt)[0] == 0


def test_an_application_without_its_key_is_refused_naming_it(rt, world):
    http = customer_client(rt)
    _set_title(http)
    response = _post(http, "/console/invoices/apply", "/console/invoices", kind="ordinary",
                     amount="1.00")
    assert response.status_code == 400
    assert 'data-error-field="idempotency_key"' in response.text


@pytest.mark.spec("INV-3")
def test_the_title_emails_and_automatic_issuing(rt, world):
    http = customer_client(rt)
    other = _post(http, "/console/invoices/title", "/console/invoices/title",
                  **{**TITLE, "title": "北京另一家公司有限公司"})
    assert other.status_code == 400 and 'data-error-field="title"' in other.text
    _set_title(http)
    added = _post(http, "/console/invoices/emails", "/console/invoices/title",
                  email="invoices@example.com", make_default="yes")
    assert added.status_code == 303
    html = http.get("/console/invoices/title").text
    assert 'data-email="invoices@example.com"' in html and ENTITY in html
    assert _post(http, "/console/invoices/settings", "/console/invoices/title",
                 auto_issue="on", auto_issue_kind="ordinary").status_code == 303
    html = http.get("/console/invoices/title").text
    assert re.search(r'<option value="on" selected>', html)


@pytest.mark.spec("INV-6")
def test_a_reversal_released_by_an_operator_shows_reversed(rt, world):
    http = customer_client(rt)
    invoice_id = _invoice_id(_apply(http))
    page = f"/console/invoices/{invoice_id}"
    detail = http.get(page).text
    key = re.search(r'name="request_key" value="([^"]+)"', detail).group(1)
    refused = http.post(f"{page}/reversal", data={
        "csrf_token": csrf_of(detail), "request_key": key, "treatment": "none",
        "reason": "wrong_details", "explanation": ""})
    assert refused.status_code == 400 and 'data-error-field="explanation"' in refused.text
    done = http.post(f"{page}/reversal", data={
        "csrf_token": csrf_of(detail), "request_key": key, "treatment": "none",
        "reason": "wrong_details", "explanation": "抬头地址有误"})
    assert done.status_code == 303
    ops = operator_client(rt)
    queue = ops.get("/console/ops/invoice-reversals?state=submitted").text
    reversal_id = re.search(r'<tr data-reversal="(\d+)"', queue).group(1)
    released = ops.post(f"/console/ops/invoice-reversals/{reversal_id}/release",
                        data={"csrf_token": csrf_of(queue), "state": "submitted"})
    assert released.status_code == 303
    html = http.get("/console/invoices").text
    assert f'<tr data-invoice="{invoice_id}"' in html and "已红冲" in html
    assert 'data-state="reversed"' in html


@pytest.mark.spec("INV-6")
def test_the_operator_rejects_with_a_reason_and_sees_the_red_letter_pending_list(rt, world):
    http = customer_client(rt)
    invoice_id = _invoice_id(_apply(http))
    detail = http.get(f"/console/invoices/{invoice_id}").text
    key = re.search(r'name="request_key" value="([^"]+)"', detail).group(1)
    http.post(f"/console/invoices/{invoice_id}/reversal", data={
        "csrf_token": csrf_of(detail), "request_key": key, "treatment": "deducted",
        "reason": "wrong_details", "explanation": "已抵扣"})
    ops = operator_client(rt)
    pending = ops.get("/console/ops/invoice-reversals?state=red_letter_pending").text
    reversal_id = re.search(r'<tr data-reversal="(\d+)"', pending).group(1)
    assert "红字待发起" in pending
    empty = ops.post(f"/console/ops/invoice-reversals/{reversal_id}/reject",
                     data={"csrf_token": csrf_of(pending), "reason": ""})
    assert empty.status_code == 400 and 'data-error-field="reason"' in empty.text
    ops.post(f"/console/ops/invoice-reversals/{reversal_id}/reject",
             data={"csrf_token": csrf_of(pending), "reason": "未提供红字确认单"})
    html = http.get("/console/invoices").text
    assert "未提供红字确认单" in html and 'data-state="rejected"' in html


def test_the_operator_invoice_queue_lists_invoices_and_is_operators_only(rt, world):
    _apply(customer_client(rt))
    html = operator_client(rt).get("/console/ops/invoices").text
    assert 'data-invoice="' in html and "已开具" in html
    assert operator_client(rt).get("/console/ops/invoices?flagged=maybe").status_code == 400
    assert customer_client(rt).get("/console/ops/invoices").status_code == 303  # to login


@pytest.mark.spec("INV-8")
def test_the_public_verification_page_needs_no_login(rt, world):
    http = customer_client(rt)
    invoice_id = _invoice_id(_apply(http))
    detail = http.get(f"/console/invoices/{invoice_id}").text
    number = re.search(r"\b(\d{20})\b", detail).group(1)
    rt.clock.advance(days=1)
    public = client(rt)
    form = public.get("/invoice-verification")
    assert form.status_code == 200 and "发票查验" in form.text
    bad = public.post("/invoice-verification", data={
        "csrf_token": csrf_of(form.text), "invoice_code": "1", "invoice_number": number,
        "issued_on": "2026-01-01", "amount": "10.60", "check_last6": "123456"})
    assert bad.status_code == 400 and 'data-error-field="invoice_code"' in bad.text
    assert public.post("/invoice-verification", data={"csrf_token": "x"}).status_code == 403
    issued_on = re.search(r"<dt>已开具</dt><dd>(\d{4}-\d{2}-\d{2})", detail)
    code = re.search(r"<dt>发票代码</dt><dd>(\d{12})</dd>", detail).group(1)
    check = re.search(r"<dt>校验码</dt><dd>(\d{20})</dd>", detail).group(1)
    form = public.get("/invoice-verification")  # a new token with its cookie
    good = public.post("/invoice-verification", data={
        "csrf_token": csrf_of(form.text), "invoice_code": code, "invoice_number": number,
        "issued_on": issued_on.group(1), "amount": "10.60", "check_last6": check[-6:]})
    assert good.status_code == 200 and 'data-valid="yes"' in good.text, good.text


@pytest.mark.postgres_only
@pytest.mark.spec("INV-5")
def test_eight_concurrent_confirms_of_one_preview_apply_once_and_issue_once(rt, world):
    http = customer_client(rt)
    _set_title(http)
    preview = _post(http, "/console/invoices/preview", "/console/invoices", kind="ordinary",
                    amount="2.12", email="contact@example.com")
    key = re.search(r'name="request_key" value="([^"]+)"', preview.text).group(1)
    confirm = {"csrf_token": csrf_of(preview.text), "request_key": key, "kind": "ordinary",
               "amount": "2.12", "email": "contact@example.com"}
    cookie = http.cookies.get("fc_session")
    answers = []

    def submit(_):
        response = with_cookie(rt, "fc_session", cookie).post("/console/invoices/apply",
                                                              data=confirm)
        answers.append((response.status_code, response.headers.get("location")))

    assert run_threads(8, submit) == []
    assert len(set(answers)) == 1 and answers[0][0] == 303
    assert written(rt)[:2] == (1, 1)
    html = http.get("/console/invoices").text
    assert html.count('<tr data-invoice="') == 1 and 'data-state="issued"' in html


@pytest.mark.spec("INV-7")
def test_invoice_debt_is_shown_first_saying_it_blocks_withdrawal(rt, world):
    from feecenter.accounts.permissions import SYSTEM
    from feecenter.orders import service as orders
    from feecenter.resources import service as resources

    http = customer_client(rt)
    _apply(http, amount="")  # all of it
    rt.clock.advance(days=1)  # inside the no-reason refund window
    with rt.engine.connect() as conn:
        [resource] = resources.list_resources(conn, SYSTEM, world)
    with transaction(rt.engine) as conn:
        orders.refund_resource(conn, rt.clock, SYSTEM, world, resource["id"],
                               key="refund")
    http = customer_client(rt)  # a day later: a new session
    html = http.get("/console/invoices").text
    assert "data-invoice-debt=" in html and "将阻止提现" in html
    assert html.index("data-invoice-debt") < html.index("data-invoiceable")
    http.cookies.set("fc_lang", "en", path="/console")
    assert "blocks withdrawal" in http.get("/console/invoices").text
