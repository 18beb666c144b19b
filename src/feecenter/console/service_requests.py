"""The console's 工单 (service request) pages: the account's requests (filter by
state), the new-request form rendered from the chosen kind's fields (with
attachments, one multipart post), a request's detail with its history and
attachments (download, add more, withdraw).

Each handler calls what REST calls (api/service_requests.py): the
``service_requests.service`` functions, which check the permissions (ACC-2: the
owner and finance users). Attachments are served as downloads of their sniffed
type (``present.service_requests.download_headers``), never rendered.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from feecenter.console.i18n import N_
from feecenter.console.web import (
    PREFIX,
    Page,
    csrf_refused,
    page,
    page_error,
    render,
)
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, invalid
from feecenter.present.service_requests import download_headers, request_json
from feecenter.service_requests import rules
from feecenter.service_requests import service as srv
from feecenter.service_requests.kinds import KINDS

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PER_PAGE = 20
EVENT_LABELS = {"submitted": N_("Submitted"), "taken": N_("Taken by an operator"),
                "resolved": N_("Resolved"), "rejected": N_("Rejected"),
                "withdrawn": N_("Withdrawn"), "overdue": N_("Past its due time"),
                "attached": N_("Attachment added")}
FORM_LIMITS = {"max_files": rules.MAX_ATTACHMENTS, "max_fields": 40}


def _page(request: Request, current: Page, template: str, status: int = 200,
          **context) -> HTMLResponse:
    return render(request, template, status=status, session=current.session,
                  active="service_requests", states=rules.STATES,
                  state_names=rules.STATE_NAMES, event_labels=EVENT_LABELS, **context)


def whole(text: str, field: str) -> int:
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= 18):
        raise invalid(field, "编号须为整数", "the number must be a whole number")
    return int(text)


# ---------------------------------------------------------------- the list

@router.get("/service-requests")
def request_list(request: Request, state: str = "", page_number: str = "1") -> HTMLResponse:
    current = page(request)
    actor, rt = current.session.actor, current.rt
    context: dict = {"items": [], "total": 0, "state": state, "page_number": 1, "pages": 1}
    status = 200
    try:
        number = max(1, int(page_number)) if page_number.isdigit() and len(page_number) < 7 else 1
        with rt.engine.connect() as conn:
            listed = srv.list_requests(conn, rt.clock, actor, actor.uin, state=state or None,
                                       offset=(number - 1) * PER_PAGE, limit=PER_PAGE)
        context.update(items=[request_json(r) for r in listed["items"]], total=listed["total"],
                       page_number=number, pages=max(1, -(-listed["total"] // PER_PAGE)))
    except FeeCenterError as exc:
        found = page_error(request, exc)
        status = found.pop("status")
        context.update(found)
    return _page(request, current, "service_requests.html", status, **context)


# ---------------------------------------------------------------- the new request form

def _form_page(request: Request, current: Page, kind_code: str, status: int = 200,
               values: dict | None = None, **extra) -> HTMLResponse:
    kind = KINDS.get(kind_code) or next(iter(KINDS.values()))
    return _page(request, current, "service_request_new.html", status, kinds=list(KINDS.values()),
                 kind=kind, values=values or {}, max_bytes_mb=rules.MAX_ATTACHMENT_BYTES // 1048576,
                 **extra)


@router.get("/service-requests/new")
def new_request_form(request: Request, kind: str = "") -> HTMLResponse:
    """The form; a field of the kind named in the query is filled in (the 提现 page's
    link to a failed payout's request names its withdrawal)."""
    known = KINDS.get(kind)
    values = {f.name: request.query_params[f.name][:200] for f in known.fields
              if f.name in request.query_params} if known else {}
    return _form_page(request, page(request), kind, values=values)


@router.post("/service-requests/new")
async def new_request(request: Request) -> Response:
    form = await request.form(**FORM_LIMITS)
    uploads = [await _upload(f) for f in form.getlist("attachments")
               if isinstance(f, UploadFile) and (f.filename or f.size)]
    return await run_in_threadpool(_file, request, form, uploads)


async def _upload(file: UploadFile) -> srv.Upload:
    return srv.Upload(file.filename or "", await file.read(rules.MAX_ATTACHMENT_BYTES + 1))


def _file(request: Request, form: FormData, uploads: list[srv.Upload]) -> Response:
    """File the request as REST does; a refusal is shown next to the field it names,
    the values kept, nothing written."""
    current = page(request)
    if not current.session.csrf_ok(_text(form, "csrf_token")):
        return csrf_refused(request)
    actor, rt = current.session.actor, current.rt
    kind_code = _text(form, "kind")
    kind = KINDS.get(kind_code)
    values = {f.name: _field_value(form, f) for f in kind.fields} if kind else {}
    try:
        with transaction(rt.engine) as conn:
            made = srv.file_request(conn, rt.clock, actor, actor.uin, kind_code, values,
                                    tuple(uploads))
    except FeeCenterError as exc:
        found = page_error(request, exc)
        return _form_page(request, current, kind_code, found.pop("status"), values=values,
                          **found)
    return RedirectResponse(f"{PREFIX}/service-requests/{made['id']}", 303)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _field_value(form: FormData, field: rules.Field):
    """A form's text as the field's JSON value: a checkbox is true or false."""
    if field.type == rules.BOOLEAN:
        return _text(form, f"field_{field.name}") == "1"
    return _text(form, f"field_{field.name}")


# ---------------------------------------------------------------- one request

def _detail(request: Request, current: Page, request_id: str, status: int = 200,
            **extra) -> HTMLResponse:
    actor, rt = current.session.actor, current.rt
    try:
        with rt.engine.connect() as conn:
            found = srv.get_request(conn, rt.clock, actor, whole(request_id, "request_id"))
    except FeeCenterError as exc:
        error = page_error(request, exc)
        return _page(request, current, "service_request.html", error.pop("status"), item=None,
                     **error)
    kind = KINDS.get(found["kind"])
    return _page(request, current, "service_request.html", status, item=request_json(found),
                 kind=kind, **extra)


@router.get("/service-requests/{request_id}")
def request_detail(request: Request, request_id: str) -> HTMLResponse:
    return _detail(request, page(request), request_id)


@router.post("/service-requests/{request_id}/withdraw")
async def withdraw(request: Request, request_id: str) -> Response:
    form = await request.form(max_files=0, max_fields=5)
    return await run_in_threadpool(_act, request, form, request_id, None)


@router.post("/service-requests/{request_id}/attachments")
async def attach(request: Request, request_id: str) -> Response:
    form = await request.form(max_files=1, max_fields=5)
    file = form.get("attachment")
    upload = await _upload(file) if isinstance(file, UploadFile) else srv.Upload("", b"")
    return await run_in_threadpool(_act, request, form, request_id, upload)


def _act(request: Request, form: FormData, request_id: str,
         upload: srv.Upload | None) -> Response:
    """Withdraw (``upload`` None) or attach a file, then back to the detail page."""
    current = page(request)
    if not current.session.csrf_ok(_text(form, "csrf_token")):
        return csrf_refused(request)
    actor, rt = current.session.actor, current.rt
    try:
        number = whole(request_id, "request_id")
        with transaction(rt.engine) as conn:
            if upload is None:
                srv.withdraw(conn, rt.clock, actor, number)
            else:
                srv.add_attachment(conn, rt.clock, actor, number, upload)
    except FeeCenterError as exc:
        found = page_error(request, exc)
        return _detail(request, current, request_id, found.pop("status"), **found)
    return RedirectResponse(f"{PREFIX}/service-requests/{number}", 303)


@router.get("/service-requests/{request_id}/attachments/{attachment_id}")
def download(request: Request, request_id: str, attachment_id: str) -> Response:
    current = page(request)
    actor, rt = current.session.actor, current.rt
    try:
        with rt.engine.connect() as conn:
            row = srv.get_attachment(conn, actor, whole(request_id, "request_id"),
                                     whole(attachment_id, "attachment_id"))
    except FeeCenterError as exc:
        found = page_error(request, exc)
        return _page(request, current, "service_request.html", found.pop("status"), item=None,
                     **found)
    headers = download_headers(row)
    return Response(bytes(row["content"]), media_type=headers.pop("Content-Type"),
                    headers=headers)
