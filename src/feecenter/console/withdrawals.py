"""The console's 提现 (withdrawal, WDR-1..7) page.

- /console/withdrawals: the withdrawable amount (可提现金额) with every part and the
  raw value even when negative (WDR-1, WDR-7); the money held by withdrawals under
  way (WDR-4: held, cannot be cancelled); the application form (amount; 原路提现 with
  the recharges it may take picked or not, or 线下提现 with the bank account); the
  records with their state and legs (提现中 / 失败待审核 / 已到账 / 已退回), a failed
  one with the link filing its failed-payout request (WDR-5, a 工单 of kind
  ``failed_payout``).
- POST /console/withdrawals/preview: the legs the application would make (channel,
  amount, arrival estimate), with the confirm form.
- POST /console/withdrawals/apply: applies as previewed.

Each handler calls what REST calls (api/withdrawals.py): ``withdrawals.service``
``withdrawable``, ``in_progress``, ``list_withdrawals``, ``preview``, ``apply``; the
services check the FINANCE permission (ACC-2) and the input, a refusal is shown next
to the field it names, nothing written. The confirm form carries an idempotency key
made when the preview was rendered, so a second submit applies once; every form
carries the CSRF token.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from feecenter.console.i18n import N_
from feecenter.console.recharge import CHANNEL_LABELS as RECHARGE_CHANNELS
from feecenter.console.web import (PREFIX, Page, csrf_refused, form_key, page, page_error,
                                   render, submit)
from feecenter.errors import FeeCenterError, invalid
from feecenter.inputs import digits_id
from feecenter.money import parse_yuan
from feecenter.present.text import time_text
from feecenter.recharges import service as recharges
from feecenter.withdrawals import sending, service

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PATH = f"{PREFIX}/withdrawals"
RECORDS_SHOWN = 50
PICKABLE = 50  # the newest paid recharges offered to pick from
# WDR-1's parts in the order the formula takes them, with the sign each is taken with
PARTS = (("cash", "", N_("Cash")),
         ("invoice_debt", "−", N_("Invoice debt")),
         ("unrepaid_advances", "−", N_("Unrepaid advances")),
         ("arrears", "−", N_("Arrears")),
         ("frozen_cash", "−", N_("Frozen money not covered by gift and income")),
         ("transferred_in_unspent", "−", N_("Transferred in by an agent or group admin")))
BRACKET = (("frozen", N_("Frozen")), ("gift", N_("Gift")), ("income", N_("Income transfers")))
ROUTE_LABELS = {"original": N_("Original route"), "offline": N_("Offline withdrawal")}
STATE_LABELS = {"in_progress": N_("Withdrawal under way"), "failed": N_("Failed, under review"),
                "paid": N_("Paid out"), "returned": N_("Returned to cash")}
LEG_STATE_LABELS = {"pending": N_("Waiting to be sent"), "sending": N_("Sending"),
                    "queued": N_("Waiting for the bank payout"),
                    "batched": N_("Sent to the bank"), "paid": N_("Paid out"),
                    "failed": N_("Failed"), "returned": N_("Returned to cash"),
                    "rerouted": N_("Paid offline instead")}
FINISHED_LEGS = ("paid", "returned", "rerouted")  # their money is no longer held here
CHANNEL_LABELS = {**RECHARGE_CHANNELS, "remittance": N_("Corporate remittance"),
                  "intl_card": N_("International card"), "bank": N_("Bank account"),
                  "offline": N_("Bank account")}
BANK_FIELDS = ("holder", "account_no", "bank", "branch")
LABELS = {"route_labels": ROUTE_LABELS, "state_labels": STATE_LABELS,
          "leg_states": LEG_STATE_LABELS, "channel_labels": CHANNEL_LABELS,
          "parts": PARTS, "bracket": BRACKET}


def shown_withdrawal(view: dict) -> dict:
    """A withdrawal with its times as text, its legs' estimates as dates."""
    return {**view, "applied_text": time_text(view.get("applied_at")),
            "finished_text": time_text(view.get("finished_at")),
            "legs": [shown_leg(leg) for leg in view.get("legs", [])]}


def shown_leg(leg: dict) -> dict:
    return {**leg, "estimate_from_text": when_text(leg.get("estimate_from")),
            "estimate_to_text": when_text(leg.get("estimate_to")),
            "settled_text": when_text(leg.get("settled_at"))}


def when_text(value: datetime | date | str | None) -> str | None:
    """A time in business time, a date (a working-day estimate) as YYYY-MM-DD."""
    if isinstance(value, datetime):
        return time_text(value)
    return value.isoformat() if isinstance(value, date) else value


def _render(request: Request, current: Page, template: str, status: int = 200,
            **context) -> HTMLResponse:
    return render(request, template, status=status, session=current.session,
                  active="withdrawals", **LABELS, **context)


# ---------------------------------------------------------------- the page

def _form(amount: str = "", route: str = "original", recharge_ids: list[str] | None = None,
          **bank: str) -> dict:
    return {"amount": amount.strip(), "route": route, "recharge_ids": recharge_ids or [],
            **{name: bank.get(name, "").strip() for name in BANK_FIELDS}}


def _overview(current: Page) -> dict:
    actor, rt = current.session.actor, current.rt
    with rt.engine.connect() as conn:
        view = service.withdrawable(conn, rt.clock, actor, actor.uin)  # checks FINANCE
        under_way = [service.get(conn, actor, w["id"])
                     for w in service.in_progress(conn, actor.uin)]
        records = service.list_withdrawals(conn, actor, actor.uin, limit=RECORDS_SHOWN)
        paid = recharges.list_recharges(conn, actor, actor.uin, state="paid", limit=PICKABLE)
    return {"view": view, "held": held(under_way),
            "records": [shown_withdrawal(w) for w in records],
            "pickable": [{**r, "paid_text": time_text(r.get("paid_at"))}
                         for r in paid["items"]]}


def held(under_way: list[dict]) -> int:
    """WDR-4: the money of unfinished withdrawals still held (legs neither paid nor
    returned; a leg paid offline instead holds on in its new bank leg)."""
    return sum(leg["amount"] for w in under_way for leg in w["legs"]
               if leg["state"] not in FINISHED_LEGS)


def _main_page(request: Request, current: Page, status: int = 200, **extra) -> HTMLResponse:
    context = {"view": None, "held": 0, "records": [], "pickable": [], "form": _form(),
               "error": None, "field": None, "denied": False,
               "applied": request.query_params.get("applied")}
    try:
        context.update(_overview(current))
    except FeeCenterError as exc:
        if "error" not in extra:
            found = page_error(request, exc)
            status = found.pop("status")
            context.update(found)
    context.update(extra)
    return _render(request, current, "withdrawals.html", status, **context)


@router.get("/withdrawals")
def withdrawals_page(request: Request) -> HTMLResponse:
    return _main_page(request, page(request))


# ---------------------------------------------------------------- preview and apply

def _amount(form: dict) -> int:
    if not form["amount"]:
        raise invalid("amount", "请输入提现金额", "enter the amount to withdraw")
    return parse_yuan(form["amount"], "amount")


def _picked(form: dict) -> list[int] | None:
    if form["route"] != "original" or not form["recharge_ids"]:
        return None
    return [digits_id(text, "recharge_ids") for text in form["recharge_ids"]]


def _bank(form: dict) -> dict | None:
    return {name: form[name] for name in BANK_FIELDS} if form["route"] == "offline" else None


FormText = Annotated[str, Form()]


@router.post("/withdrawals/preview")
def preview(request: Request, amount: FormText = "", route: FormText = "original",
            recharge_ids: Annotated[list[str] | None, Form()] = None,
            holder: FormText = "", account_no: FormText = "", bank: FormText = "",
            branch: FormText = "", csrf_token: FormText = "",
            x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """The legs the application would make, with their arrival estimates, and the
    confirm form; or the form again with the refusal."""
    current = page(request)
    if not current.session.csrf_ok(csrf_token or x_csrf_token):
        return csrf_refused(request)
    actor, rt = current.session.actor, current.rt
    form = _form(amount, route, recharge_ids, holder=holder, account_no=account_no, bank=bank,
                 branch=branch)
    try:
        fen = _amount(form)
        with rt.engine.connect() as conn:
            shown = service.preview(conn, rt.clock, actor, actor.uin, amount=fen, route=route,
                                    recharge_ids=_picked(form))
    except FeeCenterError as exc:
        found = page_error(request, exc)
        return _main_page(request, current, found.pop("status"), form=form, **found)
    shown = {**shown, "legs": [shown_leg(leg) for leg in shown["legs"]]}
    return _render(request, current, "withdrawal_preview.html", preview=shown, form=form,
                   key=uuid.uuid4().hex)


@router.post("/withdrawals/apply")
def apply(request: Request, amount: FormText = "", route: FormText = "original",
          recharge_ids: Annotated[list[str] | None, Form()] = None,
          holder: FormText = "", account_no: FormText = "", bank: FormText = "",
          branch: FormText = "", request_key: FormText = "", csrf_token: FormText = "",
          x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """Apply as previewed: the money is held at once and cannot be cancelled (WDR-4)."""
    form = _form(amount, route, recharge_ids, holder=holder, account_no=account_no, bank=bank,
                 branch=branch)

    def change(conn, clock, actor, uin):
        key = form_key(request_key, "提现页面", "the withdrawals page")
        return service.apply(conn, clock, actor, uin, amount=_amount(form), route=route,
                             key=f"console:{key[:56]}", recharge_ids=_picked(form),
                             bank=_bank(form))

    def refused(current: Page, exc: FeeCenterError) -> HTMLResponse:
        found = page_error(request, exc)
        return _main_page(request, current, found.pop("status"), form=form, **found)

    def done(current: Page, result: dict) -> Response:
        rt = current.rt  # the online legs go to their provider right after the answer
        send = BackgroundTask(sending.send_pending, rt.engine, rt.clock, rt.gateways,
                              withdrawal_id=result["id"])
        return RedirectResponse(f"{PATH}?applied={result['id']}", 303, background=send)
    return submit(request, csrf_token or x_csrf_token, change, refused, done)
