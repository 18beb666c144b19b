"""The operator console's invoice pages (INV-5, INV-6): the invoice queue across
accounts (by state; the flagged ones, not issued 30 minutes after applying,
first filter), and the reversal review (退票审核): the queue by state, including
the red-letter pending list (红字待发起), with release (the red invoice, issued
right after the answer as REST does) and reject with a reason.

Each calls what REST calls (``invoices.service.ops_invoices``,
``invoices.reversals.queue/release/reject``), which check that the caller is an
operator. Every form carries the operator session's CSRF token.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from feecenter.console.invoices import (KIND_LABELS, REASON_LABELS, REVERSAL_STATE_LABELS,
                                        STATE_LABELS, TREATMENT_LABELS, whole)
from feecenter.console.ops import OPS, ops_page, ops_render, posted, refused
from feecenter.console.web import csrf_refused
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, invalid
from feecenter.invoices import issuing, reversals, service
from feecenter.present.text import time_text

router = APIRouter(prefix=OPS, include_in_schema=False)
LIMIT = 100
FLAGGED = {"": None, "yes": True, "no": False}
LABELS = {"kinds": KIND_LABELS, "state_labels": STATE_LABELS,
          "reversal_states": REVERSAL_STATE_LABELS, "treatments": TREATMENT_LABELS,
          "reasons": REASON_LABELS}


@router.get("/invoices")
def invoice_queue(request: Request, state: str = "", flagged: str = "") -> HTMLResponse:
    current = ops_page(request)
    context = {"active": "invoices", "state": state, "flagged": flagged, "rows": [],
               "total": 0, "limit": LIMIT, **LABELS}
    try:
        if flagged not in FLAGGED:
            raise invalid("flagged", "是否超时的取值无效", "flagged must be yes or no")
        with current.rt.engine.connect() as conn:
            found = service.ops_invoices(conn, current.rt.clock, current.actor,
                                         state=state or None, flagged=FLAGGED[flagged],
                                         offset=0, limit=LIMIT)
    except FeeCenterError as exc:
        return refused(request, current, "ops/invoices.html", exc, **context)
    context.update(rows=[{**i, "applied_text": time_text(i.get("applied_at")),
                          "issued_text": time_text(i.get("issued_at"))}
                         for i in found["items"]], total=found["total"])
    return ops_render(request, "ops/invoices.html", current, **context)


def _reversal_page(request: Request, current, state: str, exc=None) -> HTMLResponse:
    context = {"active": "invoice_reversals", "state": state, "rows": [], "total": 0,
               "limit": LIMIT, **LABELS}
    try:
        with current.rt.engine.connect() as conn:
            found = reversals.queue(conn, current.rt.clock, current.actor,
                                    state=state or None, offset=0, limit=LIMIT)
        context.update(rows=[{**r, "submitted_text": time_text(r.get("submitted_at")),
                              "due_text": time_text(r.get("due_at"))}
                             for r in found["items"]], total=found["total"])
    except FeeCenterError as error:
        return refused(request, current, "ops/invoice_reversals.html", error, **context)
    if exc is not None:
        return refused(request, current, "ops/invoice_reversals.html", exc, **context)
    return ops_render(request, "ops/invoice_reversals.html", current, **context)


@router.get("/invoice-reversals")
def reversal_queue(request: Request, state: str = "") -> HTMLResponse:
    return _reversal_page(request, ops_page(request), state)


@router.post("/invoice-reversals/{reversal_id}/{action}")
def decide(request: Request, tasks: BackgroundTasks, reversal_id: str, action: str,
           reason: Annotated[str, Form()] = "", state: Annotated[str, Form()] = "",
           csrf_token: Annotated[str, Form()] = "",
           x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """release (the red invoice; the amount invoiceable again) or reject with a reason."""
    current = ops_page(request)
    if not posted(current, csrf_token, x_csrf_token):
        return csrf_refused(request)
    rt = current.rt
    try:
        number = whole(reversal_id, "reversal_id")
        with transaction(rt.engine) as conn:
            if action == "release":
                view = reversals.release(conn, rt.clock, current.actor, number)
            elif action == "reject":
                view = reversals.reject(conn, rt.clock, current.actor, number, reason.strip())
            else:
                raise invalid("action", "不支持的操作", "unknown action")
    except FeeCenterError as exc:
        return _reversal_page(request, current, state, exc)
    if view.get("red_invoice_id"):
        tasks.add_task(issuing.issue_invoices, rt.engine, rt.clock, rt.settings,
                       [view["red_invoice_id"]])
    back = urlencode({"state": state}) if state in REVERSAL_STATE_LABELS else ""
    return RedirectResponse(f"{OPS}/invoice-reversals?{back}", 303)
