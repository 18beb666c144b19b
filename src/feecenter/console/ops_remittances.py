"""The operator console's corporate-remittance pages (RMT-2, RMT-3, RMT-6, RMT-7):
import a bank statement (MT940 or camt.053 upload -> the import's summary, or the
refusal with the line or element and the reason), the imports, and the queues —
unassigned (assign to an account), pending, held (release), review failed,
flagged, not ours, legacy (RMT-10: what forms left of each transfer, and the
refund of that remainder to the payer, RMT-11), refunded.

Thin adapters: the file is parsed and imported by
``remittances.statement_import.import_statement`` inside one database transaction, so a
file refused half-way (the parser raises while reading, docs/statements.md)
leaves nothing behind; ``operator_queue``, ``list_imports``, ``assign`` and
``release`` (and ``cases.legacy_remainders`` / ``cases.refund_legacy_remainder``)
check that the caller is an operator and audit under its name.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from feecenter.console.i18n import N_
from feecenter.console.ops import OPS, OpsPage, ops_page, ops_render, posted, refused
from feecenter.console.remittance import STATE_LABELS, shown
from feecenter.console.web import csrf_refused, lang_of
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, invalid
from feecenter.inputs import digits_id, page_number
from feecenter.present.text import time_text
from feecenter.remittances import cases
from feecenter.remittances import service as remittances
from feecenter.remittances import statements
from feecenter.remittances import statement_import

router = APIRouter(prefix=OPS, include_in_schema=False)
PATH = OPS + "/remittances"
PER_PAGE = 50
IMPORTS_SHOWN = 50
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # also the body guard's limit (api/strict.py); bigger: the CLI
QUEUE_LABELS = {"unassigned": N_("Unassigned"), "pending": N_("Pending"),
                "held": N_("Held"), "review_failed": N_("Review failed"),
                "flagged": N_("Flagged"), "not_ours": N_("Not ours"),
                "legacy": N_("Legacy remittances"), "refunded": N_("Refunded to the payer")}


def _context(**extra) -> dict:
    return {"active": "remittances", "queues": remittances.QUEUES, "queue_labels": QUEUE_LABELS,
            "state_labels": STATE_LABELS, **extra}


# ---------------------------------------------------------------- queues

@router.get("/remittances")
def queue(request: Request, queue: str = "unassigned", page: str = "1") -> HTMLResponse:
    return _queue_page(request, ops_page(request), queue, page)


def _queue_page(request: Request, current: OpsPage, name: str, page: str = "1",
                exc: FeeCenterError | None = None, **extra) -> HTMLResponse:
    context = _context(queue=name, rows=[], total=0, page_number=1, pages=1, **extra)
    try:
        number = page_number(page)
        with current.rt.engine.connect() as conn:
            listed = remittances.operator_queue(conn, current.actor, name,
                                                offset=(number - 1) * PER_PAGE, limit=PER_PAGE)
            legacy = cases.legacy_remainders(conn, current.actor, [
                r["id"] for r in listed["items"] if r["state"] == "legacy"])
    except FeeCenterError as error:
        return refused(request, current, "ops/remittances.html", error, **context)
    lang = lang_of(request)
    context.update(rows=[{**shown(r, lang), "legacy": legacy.get(r["id"])}
                         for r in listed["items"]], total=listed["total"],
                   page_number=number, pages=max(1, -(-listed["total"] // PER_PAGE)))
    if exc is not None:
        return refused(request, current, "ops/remittances.html", exc, **context)
    return ops_render(request, "ops/remittances.html", current, **context)


@router.post("/remittances/{remittance_id}/assign")
def assign(request: Request, remittance_id: str, uin: Annotated[str, Form()] = "",
           queue: Annotated[str, Form()] = "unassigned",
           csrf_token: Annotated[str, Form()] = "",
           x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """Give an unassigned (or held, account unknown) record to the account ``uin``."""
    return _act(request, remittance_id, queue, csrf_token, x_csrf_token, uin)


@router.post("/remittances/{remittance_id}/release")
def release(request: Request, remittance_id: str,
            queue: Annotated[str, Form()] = "held", csrf_token: Annotated[str, Form()] = "",
            x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """Let a held CNY record of a known account go on to payer verification."""
    return _act(request, remittance_id, queue, csrf_token, x_csrf_token, None)


@router.post("/remittances/{remittance_id}/refund-remainder")
def refund_remainder(request: Request, remittance_id: str,
                     holder: Annotated[str, Form()] = "", bank_account: Annotated[str, Form()] = "",
                     bank: Annotated[str, Form()] = "", branch: Annotated[str, Form()] = "",
                     location: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
                     csrf_token: Annotated[str, Form()] = "",
                     x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """Refund to its payer what no legacy form claimed of a legacy transfer (RMT-10,
    RMT-11), with the payout details the operator collected; the queue shows the
    refusal (the field named) or the transfer with nothing left."""
    current = ops_page(request)
    if not posted(current, csrf_token, x_csrf_token):
        return csrf_refused(request)
    rt = current.rt
    try:
        number = digits_id(remittance_id, "remittance_id")
        with transaction(rt.engine) as conn:
            cases.refund_legacy_remainder(
                conn, rt.clock, current.actor, number, reason=reason,
                payout={"holder": holder, "bank_account": bank_account, "bank": bank,
                        "branch": branch, "location": location})
    except FeeCenterError as exc:
        return _queue_page(request, current, "legacy", exc=exc, failed=remittance_id)
    return RedirectResponse(f"{PATH}?queue=legacy&done={number}", 303)


def _act(request: Request, remittance_id: str, queue_name: str, csrf_token: str,
         x_csrf_token: str | None, uin: str | None) -> Response:
    current = ops_page(request)
    if not posted(current, csrf_token, x_csrf_token):
        return csrf_refused(request)
    rt = current.rt
    back = queue_name if queue_name in remittances.QUEUES else "unassigned"
    try:
        number = digits_id(remittance_id, "remittance_id")
        with transaction(rt.engine) as conn:
            if uin is None:
                done = remittances.release(conn, rt.clock, current.actor, number)
            else:
                done = remittances.assign(conn, rt.clock, current.actor, number,
                                          digits_id(uin, "uin"))
    except FeeCenterError as exc:
        return _queue_page(request, current, back, exc=exc, failed=remittance_id)
    return RedirectResponse(f"{PATH}?queue={back}&done={done['id']}", 303)


# ---------------------------------------------------------------- imports

def _imports_page(request: Request, current: OpsPage, status: int = 200,
                  exc: FeeCenterError | None = None, **extra) -> HTMLResponse:
    context = _context(**{"imports": [], "summary": None, "max_mb": MAX_UPLOAD_BYTES // 1048576,
                          **extra})
    try:
        with current.rt.engine.connect() as conn:
            rows = remittances.list_imports(conn, current.actor, limit=IMPORTS_SHOWN)
    except FeeCenterError as error:
        return refused(request, current, "ops/remittance_imports.html", error, **context)
    context["imports"] = [{**r, "imported_at": time_text(r["imported_at"])} for r in rows]
    if exc is not None:
        context["line"] = exc.details.get("line") if isinstance(exc.details, dict) else None
        context["element"] = exc.details.get("element") if isinstance(exc.details, dict) else None
        return refused(request, current, "ops/remittance_imports.html", exc, **context)
    return ops_render(request, "ops/remittance_imports.html", current, status, **context)


@router.get("/remittances/imports")
def imports(request: Request) -> HTMLResponse:
    return _imports_page(request, ops_page(request))


@router.post("/remittances/imports")
async def import_statement(request: Request) -> Response:
    form = await request.form(max_files=1, max_fields=5)
    file = form.get("statement")
    data = await file.read(MAX_UPLOAD_BYTES + 1) if isinstance(file, UploadFile) else b""
    name = file.filename if isinstance(file, UploadFile) else ""
    return await run_in_threadpool(_import, request, form, data, name or "")


def _import(request: Request, form: FormData, data: bytes, filename: str) -> Response:
    """Parse and import the file in one transaction: all of it, or nothing."""
    current = ops_page(request)
    token = form.get("csrf_token")
    if not posted(current, token if isinstance(token, str) else "", None):
        return csrf_refused(request)
    rt = current.rt
    try:
        if not data:
            raise invalid("statement", "请选择对账单文件（MT940 或 camt.053）",
                          "choose a statement file (MT940 or camt.053)")
        if len(data) > MAX_UPLOAD_BYTES:
            raise invalid("statement", f"文件超过 {MAX_UPLOAD_BYTES // 1048576} MB，请用命令行导入",
                          f"the file is over {MAX_UPLOAD_BYTES // 1048576} MB: import it "
                          "with the command line")
        fmt = statements.parse(data).format  # the header says which
        with transaction(rt.engine) as conn:  # a refusal while reading rolls it all back
            summary = statement_import.import_statement(conn, rt.clock, current.actor, data,
                                                         fmt=fmt)
    except FeeCenterError as exc:
        return _imports_page(request, current, exc=exc, filename=_printable(filename))
    return _imports_page(request, current, summary=summary, filename=_printable(filename),
                         format=fmt)


def _printable(text: str) -> str:
    return "".join(ch for ch in text[:200] if ch.isprintable())
