"""The console's 在线充值 (online recharge) pages: the amount and channel form, the
result page with the payment QR code (rendered server-side by ``segno`` as inline
SVG) and its live status (an htmx part polling every 2 s until the state is
final), and the recharge records.

Each handler calls what REST calls (api/recharges.py): ``recharges.create``,
``recharges.get`` and ``recharges.list_recharges``; they check the permissions
(ACC-2: owner and finance recharge). The status part only reads the recharge:
the provider's notification credits it (docs/recharge.md).
"""

from __future__ import annotations

from typing import Annotated

import segno
from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

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
from feecenter.errors import FeeCenterError, PermissionDenied, invalid
from feecenter.funds import service as funds
from feecenter.money import parse_yuan
from feecenter.present.text import time_text
from feecenter.recharges import rules
from feecenter.recharges import service as recharges
from feecenter.remittances import service as remittances

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PER_PAGE = 20
RECENT = 5  # the form page's latest recharges
TIMES = ("created_at", "expires_at", "paid_at", "ended_at")
STATE_LABELS = {rules.PENDING: N_("Waiting for payment"), rules.PAID: N_("Paid"),
                rules.FAILED: N_("Payment failed"), rules.CLOSED: N_("Closed")}
CHANNEL_LABELS = {rules.WECHAT: N_("WeChat Pay"), rules.QQ: N_("QQ Wallet"),
                  rules.NETBANK: N_("Online banking"), rules.INTL_CARD: N_("International card")}


def _page(request: Request, current: Page, template: str, status: int = 200,
          **context) -> HTMLResponse:
    return render(request, template, status=status, session=current.session, active="recharge",
                  state_labels=STATE_LABELS, channel_labels=CHANNEL_LABELS, **context)


def _shown(row: dict) -> dict:
    return {**row, **{k: time_text(row.get(k)) for k in TIMES}}


# ---------------------------------------------------------------- the form

def _form_page(request: Request, current: Page, status: int = 200, **extra) -> HTMLResponse:
    """The form and the latest recharges; an actor who may not recharge sees why."""
    actor, rt = current.session.actor, current.rt
    context: dict = {"recent": [], "channels": rules.ENABLED_CHANNELS,
                     "form": {"amount": "", "channel": rules.WECHAT, "intl": False}}
    try:
        with rt.engine.connect() as conn:
            listed = recharges.list_recharges(conn, actor, actor.uin, limit=RECENT)
        context["recent"] = [_shown(r) for r in listed["items"]]
        with transaction(rt.engine) as conn:  # RMT-5 (the first look allocates the code)
            context["details"] = remittances.receiving_details(conn, rt.clock, actor, actor.uin)
    except PermissionDenied as exc:
        found = page_error(request, exc)
        status = found.pop("status")
        context.update(found)
    return _page(request, current, "recharge.html", status, **{**context, **extra})


@router.get("/recharge")
def recharge_form(request: Request) -> HTMLResponse:
    return _form_page(request, page(request))


@router.post("/recharge")
def recharge(request: Request, amount: Annotated[str, Form()] = "",
             channel: Annotated[str, Form()] = "",
             international_card: Annotated[str, Form()] = "",
             csrf_token: Annotated[str, Form()] = "",
             x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """Create the recharge as REST does (RCH-2/RCH-3 checked by the service), then show
    its QR code; a refusal is shown next to the field it names, nothing written."""
    current = page(request)
    if not current.session.csrf_ok(csrf_token or x_csrf_token):
        return csrf_refused(request)
    actor, rt = current.session.actor, current.rt
    form = {"amount": amount.strip(), "channel": channel.strip(), "intl": bool(international_card)}
    try:
        if not form["amount"]:
            raise invalid("amount", "请输入充值金额", "enter the amount to recharge")
        new = recharges.NewRecharge(amount=parse_yuan(form["amount"], "amount"),
                                    channel=form["channel"], intl_card=form["intl"])
        made = recharges.create(rt.engine, rt.clock, actor, actor.uin, new,
                                rt.gateways)
    except FeeCenterError as exc:
        found = page_error(request, exc)
        return _form_page(request, current, found.pop("status"), form=form, **found)
    return RedirectResponse(f"{PREFIX}/recharges/{made['id']}", 303)


# ---------------------------------------------------------------- one recharge: QR code, status

def qr_svg(code_url: str) -> Markup:
    """The payment code as inline SVG (segno; no script, no external image)."""
    svg = segno.make(code_url, error="m").svg_inline(scale=5, title=None)
    return Markup(svg.replace("<svg ", '<svg role="img" data-qr ', 1))


def _status(current: Page, recharge_id: str) -> dict:
    """The recharge (ACC-2 through ``recharges.get``); once paid, the balance after it."""
    actor, rt = current.session.actor, current.rt
    number = _whole(recharge_id)
    with rt.engine.connect() as conn:
        row = recharges.get(conn, actor, number)  # another account's: refused (ACC-2)
        balance = (funds.balance_view(conn, rt.clock, actor, actor.uin)
                   if row["state"] == rules.PAID else None)
    return {"recharge": _shown(row), "balance": balance,
            "final": row["state"] != rules.PENDING}


def _whole(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise invalid("recharge_id", "充值记录编号须为整数", "the recharge id must be a whole number")
    return int(text)


def _detail(request: Request, recharge_id: str, template: str) -> HTMLResponse:
    current = page(request)
    try:
        context = _status(current, recharge_id)
    except FeeCenterError as exc:
        found = page_error(request, exc)
        return _page(request, current, "recharge_made.html", found.pop("status"),
                     recharge=None, **found)
    code_url = context["recharge"]["code_url"]
    qr = qr_svg(code_url) if code_url and not context["final"] else None
    payer_page = code_url if code_url and code_url.startswith(("http://", "https://")) else None
    return _page(request, current, template, qr=qr, payer_page=payer_page, **context)


@router.get("/recharges/{recharge_id}")
def recharge_detail(request: Request, recharge_id: str) -> HTMLResponse:
    return _detail(request, recharge_id, "recharge_made.html")


@router.get("/recharges/{recharge_id}/status")
def recharge_status(request: Request, recharge_id: str) -> HTMLResponse:
    """The status part alone: htmx polls it every 2 s while the recharge is pending."""
    return _detail(request, recharge_id, "_recharge_status.html")


# ---------------------------------------------------------------- the records

@router.get("/recharges")
def recharge_records(request: Request, state: str = "", page_number: str = "1") -> HTMLResponse:
    current = page(request)
    actor, rt = current.session.actor, current.rt
    context: dict = {"items": [], "total": 0, "state": state, "page_number": 1, "pages": 1}
    status = 200
    try:
        number = max(1, int(page_number)) if page_number.isdigit() and len(page_number) < 7 else 1
        with rt.engine.connect() as conn:
            listed = recharges.list_recharges(conn, actor, actor.uin, state=state or None,
                                              offset=(number - 1) * PER_PAGE, limit=PER_PAGE)
        context.update(items=[_shown(r) for r in listed["items"]], total=listed["total"],
                       page_number=number, pages=max(1, -(-listed["total"] // PER_PAGE)))
    except FeeCenterError as exc:
        found = page_error(request, exc)
        status = found.pop("status")
        context.update(found)
    return _page(request, current, "recharges.html", status, states=rules.STATES, **context)
