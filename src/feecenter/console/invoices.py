"""发票 (invoices, INV-1..9) in the console.

- /console/invoices: the invoiceable amount with its parts (consumed, invoiced,
  commercial invoices, transfers, invoice debt) and buckets (selling entity × tax category); the
  invoice debt (欠票) shown first when there is one, since it blocks withdrawal;
  the application form (kind, amount, email) leading to its preview (invoices,
  lines and tax), confirmed by a second form; the invoices with their state and
  PDF/XML links; the reversals (退票) with the red-letter number form.
- /console/invoices/{id}: one invoice, its lines and the reversal form.
- /console/invoices/title: the title, the invoice emails and automatic issuing.
- /invoice-verification: the public verification (INV-8), no login.

Each handler calls the services REST calls (``feecenter.invoices``) with the
logged-in user; the services check the FINANCE permission and the input; a
refusal is shown next to the field it names, nothing written. Applying starts
issuing right after the answer (a background task), as REST does. Every form
carries the CSRF token; the application carries an idempotency key made when
its preview was rendered, so a second submit applies once.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from feecenter.console.i18n import N_
from feecenter.console.web import (PREFIX, SECURITY_HEADERS, Page, csrf_refused, form_key,
                                   lang_of, page, page_error, render, submit)
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, invalid
from feecenter.invoices import (documents, invoiceable, issuing, reversals, service, titles,
                                verification)
from feecenter.present.service_requests import download_headers
from feecenter.present.text import time_text

router = APIRouter(prefix=PREFIX, include_in_schema=False)
public_router = APIRouter(include_in_schema=False)
PATH = f"{PREFIX}/invoices"
PAGE_SIZE = 20
VERIFY_CSRF_COOKIE = "fc_verify_csrf"

KIND_LABELS = {"ordinary": N_("Digital ordinary VAT invoice"),
               "special": N_("Digital special VAT invoice"), "red": N_("Red invoice")}
STATE_LABELS = {"applied": N_("Applied"), "issuing": N_("Issuing"), "issued": N_("Issued"),
                "reversed": N_("Reversed")}
REVERSAL_STATE_LABELS = {"submitted": N_("Under review"),
                         "red_letter_pending": N_("Red letter pending"),
                         "released": N_("Released"), "rejected": N_("Rejected")}
TREATMENT_LABELS = {"deducted": N_("Deducted"), "booked": N_("Booked"),
                    "none": N_("Neither deducted nor booked")}
REASON_LABELS = {"wrong_details": N_("Wrong details"),
                 "invoice_debt": N_("Invoice debt after a refund or downgrade")}
TITLE_KIND_LABELS = {"personal": N_("Personal"), "enterprise": N_("Enterprise")}
LABELS = {"kinds": KIND_LABELS, "state_labels": STATE_LABELS,
          "reversal_states": REVERSAL_STATE_LABELS, "treatments": TREATMENT_LABELS,
          "reasons": REASON_LABELS, "title_kinds": TITLE_KIND_LABELS}


def whole(text: str, field: str) -> int:
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= 18):
        raise invalid(field, "编号须为整数", "the number must be a whole number")
    return int(text)


def _shown_invoice(view: dict) -> dict:
    return {**view, "applied_text": time_text(view.get("applied_at")),
            "issued_text": time_text(view.get("issued_at"))}


def _shown_reversal(view: dict) -> dict:
    return {**view, "submitted_text": time_text(view.get("submitted_at")),
            "due_text": time_text(view.get("due_at"))}


def _render(request: Request, current: Page, template: str, status: int = 200,
            **context) -> HTMLResponse:
    return render(request, template, status=status, session=current.session,
                  active="invoices", **LABELS, **context)


def _refusal(request: Request, exc: FeeCenterError) -> tuple[int, dict]:
    found = page_error(request, exc)
    return found.pop("status"), found


# ---------------------------------------------------------------- the main page

def _overview(current: Page, page_number: int) -> dict:
    actor, rt = current.session.actor, current.rt
    with rt.engine.connect() as conn:
        amount = invoiceable.invoiceable(conn, actor, actor.uin)
        found = service.list_invoices(conn, actor, actor.uin,
                                      offset=(page_number - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        emails = titles.list_emails(conn, actor, actor.uin)
        title = titles.get_title(conn, actor, actor.uin)
        mine = reversals.list_reversals(conn, rt.clock, actor, actor.uin)
    by_invoice = {r["invoice_id"]: r for r in mine}
    return {"invoiceable": amount, "invoices": [_shown_invoice(i) for i in found["items"]],
            "total": found["total"], "page": page_number,
            "pages": max(1, -(-found["total"] // PAGE_SIZE)), "emails": emails, "title": title,
            "reversals": [_shown_reversal(r) for r in mine], "reversal_of": by_invoice}


def _main_page(request: Request, current: Page, status: int = 200, page_number: int = 1,
               **extra) -> HTMLResponse:
    context = {"invoiceable": None, "invoices": [], "total": 0, "page": 1, "pages": 1,
               "emails": [], "title": None, "reversals": [], "reversal_of": {},
               "form": {"kind": "ordinary", "amount": "", "email": ""},
               "error": None, "field": None, "denied": False,
               "applied": request.query_params.get("applied")}
    try:
        context.update(_overview(current, page_number))
    except FeeCenterError as exc:
        if "error" not in extra:
            status, found = _refusal(request, exc)
            context.update(found)
    context.update(extra)
    return _render(request, current, "invoices.html", status, **context)


@router.get("/invoices")
def invoices_page(request: Request, page_number: str = "1") -> HTMLResponse:
    current = page(request)
    try:
        number = whole(page_number, "page_number")
    except FeeCenterError as exc:
        status, found = _refusal(request, exc)
        return _main_page(request, current, status, **found)
    return _main_page(request, current, page_number=number)


def _application_form(kind: str, amount: str, email: str) -> dict:
    return {"kind": kind, "amount": amount.strip(), "email": email}


@router.post("/invoices/preview")
def preview(request: Request, kind: Annotated[str, Form()] = "",
            amount: Annotated[str, Form()] = "", email: Annotated[str, Form()] = "",
            csrf_token: Annotated[str, Form()] = "",
            x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """The invoices, lines and tax the application would make, with the confirm form."""
    current = page(request)
    if not current.session.csrf_ok(csrf_token or x_csrf_token):
        return csrf_refused(request)
    actor, rt = current.session.actor, current.rt
    form = _application_form(kind, amount, email)
    try:
        with rt.engine.connect() as conn:
            shown = service.preview(conn, actor, actor.uin, kind=kind,
                                    amount=form["amount"] or None)
    except FeeCenterError as exc:
        status, found = _refusal(request, exc)
        return _main_page(request, current, status, form=form, **found)
    return _render(request, current, "invoice_preview.html", preview=shown, form=form,
                   key=uuid.uuid4().hex)


@router.post("/invoices/apply")
def apply(request: Request, tasks: BackgroundTasks, kind: Annotated[str, Form()] = "",
          amount: Annotated[str, Form()] = "", email: Annotated[str, Form()] = "",
          request_key: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
          x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """Apply as previewed; issuing starts right after the answer (INV-5)."""
    form = _application_form(kind, amount, email)

    def change(conn, clock, actor, uin):
        key = form_key(request_key, "发票页面", "the invoices page")
        return service.apply(conn, clock, actor, uin, kind=kind, amount=form["amount"] or None,
                             email=email or None, request_key=f"console:{key[:56]}")

    def refused(current: Page, exc: FeeCenterError) -> HTMLResponse:
        status, found = _refusal(request, exc)
        return _main_page(request, current, status, form=form, **found)

    def done(current: Page, result: dict) -> Response:
        rt = current.rt
        tasks.add_task(issuing.issue_invoices, rt.engine, rt.clock, rt.settings,
                       [invoice["id"] for invoice in result["invoices"]])
        return RedirectResponse(f"{PATH}?applied={result['application_id']}", 303)
    return submit(request, csrf_token or x_csrf_token, change, refused, done)


# ---------------------------------------------------------------- one invoice, reversal

def _detail(request: Request, current: Page, invoice_id: str, status: int = 200,
            **extra) -> HTMLResponse:
    actor, rt = current.session.actor, current.rt
    context = {"invoice": None, "reversal": None, "error": None, "field": None,
               "denied": False, "key": uuid.uuid4().hex,
               "form": {"treatment": "none", "red_letter_no": "", "reason": "wrong_details",
                        "explanation": ""}}
    try:
        number = whole(invoice_id, "invoice_id")
        with rt.engine.connect() as conn:
            context["invoice"] = _shown_invoice(service.get_invoice(conn, actor, actor.uin,
                                                                    number))
            context["reversal"] = next(
                (_shown_reversal(r) for r in reversals.list_reversals(conn, rt.clock, actor,
                                                                      actor.uin)
                 if r["invoice_id"] == number), None)
    except FeeCenterError as exc:
        if "error" not in extra:
            status, found = _refusal(request, exc)
            context.update(found)
    context.update(extra)
    return _render(request, current, "invoice.html", status, **context)


@router.get("/invoices/title")
def title_page(request: Request) -> HTMLResponse:
    return _title_page(request, page(request))


@router.get("/invoices/{invoice_id}")
def invoice_page(request: Request, invoice_id: str) -> HTMLResponse:
    return _detail(request, page(request), invoice_id)


@router.get("/invoices/{invoice_id}/download")
def download(request: Request, invoice_id: str, format: str = "pdf") -> Response:  # noqa: A002
    current = page(request)
    actor, rt = current.session.actor, current.rt
    try:
        with rt.engine.connect() as conn:
            filename, content_type, content = documents.download(
                conn, actor, actor.uin, whole(invoice_id, "invoice_id"), format)
    except FeeCenterError as exc:
        status, found = _refusal(request, exc)
        return _detail(request, current, invoice_id, status, **found)
    headers = download_headers({"filename": filename, "content_type": content_type})
    return Response(content, media_type=headers.pop("Content-Type"), headers=headers)


@router.post("/invoices/{invoice_id}/reversal")
def submit_reversal(request: Request, invoice_id: str, treatment: Annotated[str, Form()] = "",
                    red_letter_no: Annotated[str, Form()] = "",
                    reason: Annotated[str, Form()] = "",
                    explanation: Annotated[str, Form()] = "",
                    request_key: Annotated[str, Form()] = "",
                    csrf_token: Annotated[str, Form()] = "",
                    x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """退票 (INV-6): cannot be withdrawn once submitted; one per invoice."""
    form = {"treatment": treatment, "red_letter_no": red_letter_no.strip(), "reason": reason,
            "explanation": explanation.strip()}

    def change(conn, clock, actor, uin):
        form_key(request_key, "发票详情页面", "the invoice's page")
        return reversals.submit(conn, clock, actor, uin, whole(invoice_id, "invoice_id"),
                                treatment=treatment, red_letter_no=form["red_letter_no"] or None,
                                reason=reason, explanation=form["explanation"])

    def refused(current: Page, exc: FeeCenterError) -> HTMLResponse:
        status, found = _refusal(request, exc)
        return _detail(request, current, invoice_id, status, form=form, **found)
    return submit(request, csrf_token or x_csrf_token, change, refused,
                  lambda _, view: RedirectResponse(f"{PATH}/{view['invoice_id']}", 303))


@router.post("/invoices/reversals/{reversal_id}/red-letter")
def red_letter(request: Request, reversal_id: str, red_letter_no: Annotated[str, Form()] = "",
               csrf_token: Annotated[str, Form()] = "",
               x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """The red-letter confirmation number a deducted invoice's reversal waits for."""
    def change(conn, clock, actor, uin):
        return reversals.set_red_letter_no(conn, clock, actor, uin,
                                           whole(reversal_id, "reversal_id"),
                                           red_letter_no.strip())

    def refused(current: Page, exc: FeeCenterError) -> HTMLResponse:
        status, found = _refusal(request, exc)
        return _main_page(request, current, status, **found)
    return submit(request, csrf_token or x_csrf_token, change, refused,
                  lambda _, view: RedirectResponse(f"{PATH}#reversals", 303))


# ---------------------------------------------------------------- title, emails, settings

def _title_page(request: Request, current: Page, status: int = 200, **extra) -> HTMLResponse:
    actor = current.session.actor
    context = {"title": None, "emails": [], "settings": None, "error": None, "field": None,
               "denied": False, "form": None}
    try:
        with current.rt.engine.connect() as conn:
            context.update(title=titles.get_title(conn, actor, actor.uin),
                           emails=titles.list_emails(conn, actor, actor.uin),
                           settings=titles.get_settings(conn, actor, actor.uin))
    except FeeCenterError as exc:
        if "error" not in extra:
            status, found = _refusal(request, exc)
            context.update(found)
    context.update(extra)
    if context["form"] is None:
        context["form"] = dict(context["title"] or {"title_kind": "enterprise"})
    return _render(request, current, "invoice_title.html", status, **context)


def _title_change(request: Request, csrf: str | None, change, form: dict | None = None):
    def refused(current: Page, exc: FeeCenterError) -> HTMLResponse:
        status, found = _refusal(request, exc)
        return _title_page(request, current, status, form=form, **found)
    return submit(request, csrf, change, refused,
                  lambda _, __: RedirectResponse(f"{PATH}/title", 303))


TITLE_FIELDS = ("title_kind", "title", "tax_id", "address", "phone", "bank", "bank_account")


@router.post("/invoices/title")
def set_title(request: Request, title_kind: Annotated[str, Form()] = "",
              title: Annotated[str, Form()] = "", tax_id: Annotated[str, Form()] = "",
              address: Annotated[str, Form()] = "", phone: Annotated[str, Form()] = "",
              bank: Annotated[str, Form()] = "", bank_account: Annotated[str, Form()] = "",
              csrf_token: Annotated[str, Form()] = "",
              x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """The one title (INV-3); an enterprise title with the special-invoice details."""
    values = dict(zip(TITLE_FIELDS, (title_kind, title, tax_id, address, phone, bank,
                                     bank_account)))
    fields = {k: (v.strip() or None) for k, v in values.items()}

    def change(conn, clock, actor, uin):
        return titles.set_title(conn, clock, actor, uin, fields)
    return _title_change(request, csrf_token or x_csrf_token, change, values)


@router.post("/invoices/emails")
def add_email(request: Request, email: Annotated[str, Form()] = "",
              make_default: Annotated[str, Form()] = "",
              csrf_token: Annotated[str, Form()] = "",
              x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    def change(conn, clock, actor, uin):
        return titles.add_email(conn, clock, actor, uin, email.strip(),
                                make_default=make_default == "yes")
    return _title_change(request, csrf_token or x_csrf_token, change)


@router.post("/invoices/emails/{email_id}/{action}")
def change_email(request: Request, email_id: str, action: str,
                 csrf_token: Annotated[str, Form()] = "",
                 x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """default: make it the default; remove: delete it."""
    def change(conn, clock, actor, uin):
        number = whole(email_id, "email_id")
        if action == "default":
            return titles.set_default_email(conn, clock, actor, uin, number)
        if action == "remove":
            return titles.remove_email(conn, clock, actor, uin, number)
        raise invalid("action", "不支持的操作", "unknown action")
    return _title_change(request, csrf_token or x_csrf_token, change)


@router.post("/invoices/settings")
def set_settings(request: Request, auto_issue: Annotated[str, Form()] = "",
                 auto_issue_kind: Annotated[str, Form()] = "ordinary",
                 csrf_token: Annotated[str, Form()] = "",
                 x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """自动开票 on or off (INV-5)."""
    def change(conn, clock, actor, uin):
        if auto_issue not in ("on", "off"):
            raise invalid("auto_issue", "请选择开启或关闭自动开票",
                          "choose automatic issuing on or off")
        return titles.set_settings(conn, clock, actor, uin, auto_issue == "on",
                                   auto_issue_kind)
    return _title_change(request, csrf_token or x_csrf_token, change)


# ---------------------------------------------------------------- public verification

def _verify_page(request: Request, status: int = 200, **context) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    base = {"form": {"invoice_code": "", "invoice_number": "", "issued_on": "", "amount": "",
                     "check_last6": ""}, "result": None, "error": None, "field": None}
    response = render(request, "invoice_verification.html", status=status, csrf=token,
                      **{**base, **context})
    response.set_cookie(VERIFY_CSRF_COOKIE, token, path="/invoice-verification",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")
    response.headers.update(SECURITY_HEADERS)
    return response


@public_router.get("/invoice-verification")
def verification_form(request: Request) -> HTMLResponse:
    return _verify_page(request)


VERIFY_FIELDS = ("invoice_code", "invoice_number", "issued_on", "amount", "check_last6")


@public_router.post("/invoice-verification")
def verify(request: Request, invoice_code: Annotated[str, Form()] = "",
           invoice_number: Annotated[str, Form()] = "", issued_on: Annotated[str, Form()] = "",
           amount: Annotated[str, Form()] = "", check_last6: Annotated[str, Form()] = "",
           csrf_token: Annotated[str, Form()] = "") -> Response:
    """INV-8: anyone checks an invoice; the same service and rate limit as REST."""
    sent = request.cookies.get(VERIFY_CSRF_COOKIE, "")
    if not (sent and csrf_token and secrets.compare_digest(sent.encode(), csrf_token.encode())):
        return csrf_refused(request)
    form = {k: v.strip() for k, v in zip(VERIFY_FIELDS, (invoice_code, invoice_number,
                                                         issued_on, amount, check_last6))}
    rt = request.app.state.runtime
    client = request.client.host if request.client else "unknown"
    try:
        with transaction(rt.engine) as conn:
            result = verification.verify(conn, rt.clock, client, **form)
    except FeeCenterError as exc:
        return _verify_page(request, exc.http_status, form=form,
                            error=exc.message_zh if lang_of(request) == "zh-CN"
                            else exc.message_en, field=exc.field)
    return _verify_page(request, form=form, result=result)
