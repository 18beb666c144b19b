"""The operator console's 工单 pages: the queue across accounts (filter by kind,
state, overdue, UIN; earliest due first) and one request with its history,
attachments and the actions: take, resolve (runs the kind's action, e.g. the
precision-difference credit, under the operator), reject with a reason.

Each calls what REST calls (``service_requests.service``: queue, get_request,
take, resolve, reject), which check that the caller is an operator.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from feecenter.console.ops import OPS, OpsPage, ops_page, ops_render, posted, refused
from feecenter.console.service_requests import EVENT_LABELS, whole
from feecenter.console.web import csrf_refused
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, invalid
from feecenter.inputs import digits_id
from feecenter.present.service_requests import download_headers, request_json
from feecenter.service_requests import rules
from feecenter.service_requests import service as srv
from feecenter.service_requests.kinds import KINDS

router = APIRouter(prefix=OPS, include_in_schema=False)
LIMIT = 100
OVERDUE_CHOICES = {"": None, "yes": True, "no": False}


def _context(**extra) -> dict:
    return {"active": "service_requests", "kinds": list(KINDS.values()), "states": rules.STATES,
            "state_names": rules.STATE_NAMES, "event_labels": EVENT_LABELS, **extra}


@router.get("/service-requests")
def queue(request: Request, kind: str = "", state: str = "", overdue: str = "",
          uin: str = "") -> HTMLResponse:
    current = ops_page(request)
    context = _context(kind=kind, state=state, overdue=overdue, uin=uin, rows=[], total=0,
                       limit=LIMIT)
    try:
        if overdue not in OVERDUE_CHOICES:
            raise invalid("overdue", "是否逾期的取值无效", "overdue must be yes or no")
        with current.rt.engine.connect() as conn:
            page = srv.queue(conn, current.rt.clock, current.actor, kind=kind or None,
                             state=state or None, overdue=OVERDUE_CHOICES[overdue],
                             uin=digits_id(uin, "uin") if uin.strip() else None, limit=LIMIT)
    except FeeCenterError as exc:
        return refused(request, current, "ops/service_requests.html", exc, **context)
    context.update(rows=[request_json(r) for r in page["items"]], total=page["total"])
    return ops_render(request, "ops/service_requests.html", current, **context)


def _detail(request: Request, current: OpsPage, request_id: str, exc=None) -> HTMLResponse:
    context = _context(item=None, kind=None)
    try:
        with current.rt.engine.connect() as conn:
            found = srv.get_request(conn, current.rt.clock, current.actor,
                                    whole(request_id, "request_id"))
        context.update(item=request_json(found), kind=KINDS.get(found["kind"]))
    except FeeCenterError as error:
        return refused(request, current, "ops/service_request.html", error, **context)
    if exc is not None:
        return refused(request, current, "ops/service_request.html", exc, **context)
    return ops_render(request, "ops/service_request.html", current, **context)


@router.get("/service-requests/{request_id}")
def detail(request: Request, request_id: str) -> HTMLResponse:
    return _detail(request, ops_page(request), request_id)


@router.post("/service-requests/{request_id}/{action}")
def act(request: Request, request_id: str, action: str,
        note: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
        x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """take, resolve (with an optional note) or reject (with a reason)."""
    current = ops_page(request)
    if not posted(current, csrf_token, x_csrf_token):
        return csrf_refused(request)
    rt = current.rt
    try:
        number = whole(request_id, "request_id")
        with transaction(rt.engine) as conn:
            if action == "take":
                srv.take(conn, rt.clock, current.actor, number)
            elif action == "resolve":
                srv.resolve(conn, rt.clock, current.actor, number, note.strip() or None)
            elif action == "reject":
                srv.reject(conn, rt.clock, current.actor, number, note)
            else:
                raise invalid("action", "不支持的操作", "unknown action")
    except FeeCenterError as exc:
        return _detail(request, current, request_id, exc)
    return RedirectResponse(f"{OPS}/service-requests/{number}", 303)


@router.get("/service-requests/{request_id}/attachments/{attachment_id}")
def download(request: Request, request_id: str, attachment_id: str) -> Response:
    current = ops_page(request)
    try:
        with current.rt.engine.connect() as conn:
            row = srv.get_attachment(conn, current.actor, whole(request_id, "request_id"),
                                     whole(attachment_id, "attachment_id"))
    except FeeCenterError as exc:
        return refused(request, current, "ops/service_request.html", exc,
                       **_context(item=None, kind=None))
    headers = download_headers(row)
    return Response(bytes(row["content"]), media_type=headers.pop("Content-Type"),
                    headers=headers)
