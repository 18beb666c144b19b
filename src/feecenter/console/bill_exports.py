"""下载中心 (the download center, BIL-7) in the console: request an export of a month's
bill (month, level, format), the account's exports with their state and progress
(htmx asks for the list again every 2 s while one is queued or running), and the
signed download link of each finished one.

The page calls the services REST calls (``bills.exports``) with the logged-in
user; the service checks the finance permission and the input, and a refusal is
shown next to the field it names. A request starts its export right after the
answer (a background task), as on REST. ``install`` (console.web) includes
``router`` before the other bill pages and the console's catch-all route.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from feecenter.bills import exports
from feecenter.clock import business_date
from feecenter.console.i18n import N_
from feecenter.console.web import PREFIX, Page, csrf_refused, lang_of, message, page, render
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, PermissionDenied
from feecenter.present.bill_exports import progress_percent
from feecenter.present.text import time_text

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PATH = f"{PREFIX}/bills/downloads"

LEVEL_LABELS = {
    "overview": N_("Overview (L0)"), "product": N_("By product (L1)"),
    "project": N_("By project (L1)"), "region": N_("By region (L1)"),
    "pay_mode": N_("By pay mode (L1)"), "tag": N_("By tag (L1)"),
    "resources": N_("By resource (L2)"), "lines": N_("Bill lines (L3)")}
FORMAT_LABELS = {"csv": N_("CSV"), "xlsx": N_("Excel (XLSX)"), "focus": N_("FinOps FOCUS (CSV)")}
STATE_LABELS = {"queued": N_("Queued"), "running": N_("Exporting"), "done": N_("Ready"),
                "failed": N_("Failed"), "expired": N_("Expired")}
ACTIVE = ("queued", "running")


def _listing(current: Page) -> dict:
    """The account's exports as shown, with their links; ``polling`` while one runs."""
    actor, rt = current.session.actor, current.rt
    with rt.engine.connect() as conn:
        rows = exports.list_exports(conn, actor, actor.uin)
    settings = (exports.export_settings(rt.settings)
                if any(row["state"] == "done" for row in rows) else None)
    shown = [{**row, "created_text": time_text(row["created_at"]),
              "expires_text": time_text(row["expires_at"]), "percent": progress_percent(row),
              "link": exports.download_url(row, exports.LINK_TTL, now=rt.clock.now(),
                                           settings=settings) if row["state"] == "done" else None}
             for row in rows]
    return {"exports": shown, "polling": any(row["state"] in ACTIVE for row in rows)}


def _page(request: Request, current: Page, status: int = 200, **extra) -> HTMLResponse:
    rt = current.rt
    context = {"form": {"month": business_date(rt.clock.now()).strftime("%Y-%m"),
                        "level": "lines", "fmt": "csv", "tag_key": ""},
               "exports": [], "polling": False, "denied": None, "error": None, "field": None}
    try:
        context.update(_listing(current))
    except PermissionDenied as exc:
        context["denied"], status = message(exc, lang_of(request)), exc.http_status
    context.update(extra)
    return render(request, "bill_exports.html", status=status, session=current.session,
                  active="bill_downloads", key=uuid.uuid4().hex, levels=LEVEL_LABELS,
                  formats=FORMAT_LABELS, state_labels=STATE_LABELS, **context)


@router.get("/bills/downloads")
def downloads(request: Request) -> HTMLResponse:
    return _page(request, page(request))


@router.get("/bills/downloads/list")
def downloads_list(request: Request) -> HTMLResponse:
    """The exports table alone, for htmx's polling."""
    current = page(request)
    try:
        context = _listing(current)
    except PermissionDenied:
        return Response(status_code=204)
    return render(request, "_bill_exports.html", session=current.session,
                  state_labels=STATE_LABELS, levels=LEVEL_LABELS, formats=FORMAT_LABELS,
                  **context)


@router.post("/bills/downloads")
def request_export(request: Request, tasks: BackgroundTasks,
                   month: Annotated[str, Form()] = "", level: Annotated[str, Form()] = "",
                   fmt: Annotated[str, Form()] = "", tag_key: Annotated[str, Form()] = "",
                   request_key: Annotated[str, Form()] = "",
                   csrf_token: Annotated[str, Form()] = "",
                   x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """Request the export as REST does; then back to the list (303), where it shows
    its progress. A refusal is shown next to the field it names, nothing written."""
    current = page(request)
    if not current.session.csrf_ok(csrf_token or x_csrf_token):
        return csrf_refused(request)
    actor, rt = current.session.actor, current.rt
    form = {"month": month.strip(), "level": level, "fmt": fmt, "tag_key": tag_key.strip()}
    try:
        with transaction(rt.engine) as conn:
            row = exports.request_export(conn, rt.clock, actor, actor.uin, form["month"],
                                         level, fmt, tag_key=form["tag_key"] or None,
                                         request_key=request_key or None)
    except FeeCenterError as exc:
        return _page(request, current, exc.http_status, form=form,
                     error=message(exc, lang_of(request)), field=exc.field)
    if row["state"] == "queued":
        tasks.add_task(exports.process_export, rt.engine, rt.clock, row["id"],
                       exports.export_settings(rt.settings))
    return RedirectResponse(f"{PATH}?requested={row['id']}", 303)
