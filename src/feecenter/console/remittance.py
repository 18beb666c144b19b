"""The console's 对公汇款 (corporate remittance) page: the account's receiving
details (RMT-1/RMT-5), its remittance records (paged, state and reason in the
page's language, amounts in yuan), its registered payer names (register = sign
the third-party payment agreement; remove) and re-verification of a waiting or
review-failed record (RMT-5), with the result shown.

Each handler calls what REST calls: the ``remittances.service`` functions
(receiving_details, list_remittances, list_payers, register_payer, remove_payer,
request_reverification), which check the permissions (ACC-2: owner and finance
users). Legacy forms and refunds are 工单 (service requests): the page links
there.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from feecenter.console.i18n import N_
from feecenter.console.web import (PREFIX, Page, lang_of, page, page_error, render,
                                   submit)
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, invalid
from feecenter.inputs import digits_id, page_number
from feecenter.present.text import time_text
from feecenter.remittances import rules
from feecenter.remittances import service as remittances

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PATH = PREFIX + "/remittance"
PER_PAGE = 20
STATE_LABELS = {rules.CREDITED: N_("Credited"), rules.UNASSIGNED: N_("Unassigned"),
                rules.PENDING_SIGNATURE: N_("Pending signature"),
                rules.PENDING_CONFIRMATION: N_("Pending confirmation"),
                rules.REVIEW_FAILED: N_("Review failed"),
                rules.HELD: N_("Held for an operator"), rules.NOT_OURS: N_("Not ours"),
                rules.REFUNDED: N_("Refunded to the payer"),
                rules.LEGACY: N_("Credited by legacy forms")}


def reason_text(reason: str | None, lang: str) -> str:
    """The record's reason in the page's language: the service stores "中文 / English"."""
    if not reason:
        return ""
    zh, _, en = reason.partition(" / ")
    return (zh if lang == "zh-CN" else en or zh).strip()


def shown(row: dict, lang: str) -> dict:
    """A remittance record as the pages show it: times as text, the reason in one language."""
    return {**row, "reason_text": reason_text(row.get("reason"), lang),
            **{k: time_text(row.get(k)) for k in ("arrived_at", "credited_at", "updated_at",
                                                   "flagged_at")}}


# ---------------------------------------------------------------- the page

def _page(request: Request, current: Page, status: int = 200, number: int = 1,
          **extra) -> HTMLResponse:
    """Receiving details, payer names and one page of records; an actor who may not
    see them gets the service's refusal instead."""
    actor, rt = current.session.actor, current.rt
    lang = lang_of(request)
    context: dict = {"details": None, "payers": [], "items": [], "total": 0,
                     "page_number": number, "pages": 1, "payer_name": ""}
    try:
        with transaction(rt.engine) as conn:  # the first look allocates the account's code
            details = remittances.receiving_details(conn, rt.clock, actor, actor.uin)
            payers = remittances.list_payers(conn, actor, actor.uin)
            listed = remittances.list_remittances(conn, actor, actor.uin,
                                                  offset=(number - 1) * PER_PAGE, limit=PER_PAGE)
        context.update(details=details,
                       payers=[{**p, "signed_at": time_text(p["signed_at"])} for p in payers],
                       items=[shown(r, lang) for r in listed["items"]], total=listed["total"],
                       pages=max(1, -(-listed["total"] // PER_PAGE)))
    except FeeCenterError as exc:
        found = page_error(request, exc)
        status = found.pop("status")
        context.update(found)
    context.update(extra)
    return render(request, "remittance.html", status=status, session=current.session,
                  active="remittance", state_labels=STATE_LABELS,
                  reverifiable=rules.REVERIFIABLE, **context)


@router.get("/remittance")
def remittance_page(request: Request) -> HTMLResponse:
    """``page``: the records' page; ``checked``: a record just re-verified, whose
    result is shown above the lists."""
    current = page(request)
    query = request.query_params
    try:
        number = page_number(query.get("page", "1"))
        checked = query.get("checked")
        result = _checked(current, digits_id(checked, "checked")) if checked else None
    except FeeCenterError as exc:
        found = page_error(request, exc)
        return _page(request, current, found.pop("status"), **found)
    return _page(request, current, number=number, result=result)


def _checked(current: Page, remittance_id: int) -> dict:
    rt, actor = current.rt, current.session.actor
    with rt.engine.connect() as conn:
        row = remittances.get_remittance(conn, actor, remittance_id)
    return shown(row, lang_of(current.request))


# ---------------------------------------------------------------- payer names (RMT-4/5)

def _refused(request: Request, **kept):
    """A refusal: the page again with the message (and what was typed, ``kept``)."""
    def refused(current: Page, exc: FeeCenterError) -> HTMLResponse:
        found = page_error(request, exc)
        return _page(request, current, found.pop("status"), **kept, **found)
    return refused


@router.post("/remittance/payers")
def register(request: Request, payer_name: Annotated[str, Form()] = "",
             agree: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
             x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """Register a payer name: the user signs the third-party payment agreement by
    ticking its box; without the tick nothing is written."""
    def change(conn, clock, actor, uin):
        if agree != "1":
            raise invalid("agree", "请阅读并同意第三方付款协议",
                          "read and accept the third-party payment agreement")
        remittances.register_payer(conn, clock, actor, uin, payer_name)
    return submit(request, csrf_token or x_csrf_token, change,
                  _refused(request, payer_name=_kept(payer_name)),
                  lambda *_: RedirectResponse(f"{PATH}#payers", 303))


def _kept(text: str) -> str:
    """What was typed, shown again in the form (without what cannot be shown)."""
    return "".join(ch for ch in text[:200] if ch.isprintable())


@router.post("/remittance/payers/{payer_id}/remove")
def remove(request: Request, payer_id: str, csrf_token: Annotated[str, Form()] = "",
           x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    def change(conn, clock, actor, uin):
        remittances.remove_payer(conn, clock, actor, uin, digits_id(payer_id, "payer_id"))
    return submit(request, csrf_token or x_csrf_token, change, _refused(request),
                  lambda *_: RedirectResponse(f"{PATH}#payers", 303))


# ---------------------------------------------------------------- re-verification (RMT-5)

@router.post("/remittance/records/{remittance_id}/reverify")
def reverify(request: Request, remittance_id: str, csrf_token: Annotated[str, Form()] = "",
             x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """Ask for re-verification; the page then shows the record's result: credited, or
    review failed with the reason."""
    def change(conn, clock, actor, uin):
        number = digits_id(remittance_id, "remittance_id")
        remittances.request_reverification(conn, clock, actor, uin, number)
        return number
    return submit(request, csrf_token or x_csrf_token, change, _refused(request),
                  lambda _, number: RedirectResponse(f"{PATH}?checked={number}", 303))
