"""The operator console's account pages: search (UIN, name, verified name, USCC), one
account (profile, state, balances, credit, recent 收支明细 entries), adjustments
with a confirmation step, and credit limits.

Each calls what the REST operator endpoints and the CLI call:
``accounts.search_accounts``, ``accounts.get_account``, ``accounts.account_state``,
``funds.balance_view``, ``funds.list_transactions``, ``funds.adjust`` and
``funds.grant_credit``; they check that the actor is an operator. The
adjustment form carries an idempotency key made when the account page is
rendered, through the confirmation to the POST, so submitting it twice adjusts
once (docs/console.md, "Operator console").
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from feecenter.accounts import service as accounts
from feecenter.clock import parse_business_time
from feecenter.console.i18n import N_
from feecenter.console.ledger import TYPE_LABELS
from feecenter.console.ops import OPS, OpsPage, ops_page, ops_render, posted, refused
from feecenter.console.web import csrf_refused
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, invalid
from feecenter.funds import service as funds
from feecenter.inputs import digits_id, plain_text
from feecenter.money import format_yuan, parse_yuan
from feecenter.present.text import time_text

router = APIRouter(prefix=OPS, include_in_schema=False)
RECENT_ENTRIES = 20
SUB_ACCOUNTS = ("cash", "gift")
STATE_LABELS = {"normal": N_("Normal"), "arrears": N_("In arrears"),
                "restricted": N_("Restricted"), "cancelled": N_("Cancelled")}


# ---------------------------------------------------------------- search

@router.get("/")
def search(request: Request, q: str = "") -> HTMLResponse:
    current = ops_page(request)
    context = {"q": q, "found": None, "active": "accounts"}
    if not q:
        return ops_render(request, "ops/search.html", current, **context)
    try:
        with current.rt.engine.connect() as conn:
            context["found"] = accounts.search_accounts(conn, current.actor, q)
    except FeeCenterError as exc:
        return refused(request, current, "ops/search.html", exc, **context)
    return ops_render(request, "ops/search.html", current, **context)


# ---------------------------------------------------------------- one account

def _account_context(current: OpsPage, uin: int) -> dict:
    """The account, its state, balances, credit line and latest entries."""
    actor, rt = current.actor, current.rt
    with rt.engine.connect() as conn:
        account = accounts.get_account(conn, actor, uin)
        state = accounts.account_state(conn, rt.clock, uin)
        view = funds.balance_view(conn, rt.clock, actor, uin)
        entries = funds.list_transactions(conn, actor, uin,
                                          funds.StatementQuery(limit=RECENT_ENTRIES))["items"]
    return {"account": account, "state": state, "balance": view,
            "entries": [{**e, "created_at_text": time_text(e["created_at"])} for e in entries]}


def _account_page(request: Request, current: OpsPage, uin_text: str, exc=None,
                  form: dict | None = None, **extra) -> HTMLResponse:
    """The account page; with ``exc``, its message next to the field it names (status 400
    for bad input), the form as typed. An unknown account: 404."""
    form = {"sub_account": "cash", "amount": "", "reason": "", "credit_limit": "",
            "temp_credit": "0.00", "temp_credit_end": "", **(form or {}),
            "idempotency_key": "console-ops:" + secrets.token_urlsafe(18)}
    context = {"active": "accounts", "form": form, "uin_text": uin_text, "types": TYPE_LABELS,
               "state_labels": STATE_LABELS, **extra}
    try:
        context.update(_account_context(current, digits_id(uin_text, "uin")))
    except FeeCenterError as missing:
        return refused(request, current, "ops/account.html", missing, account=None, **context)
    form["credit_limit"] = form["credit_limit"] or format_yuan(context["balance"].credit_limit)
    if exc is not None:
        return refused(request, current, "ops/account.html", exc, **context)
    return ops_render(request, "ops/account.html", current, **context)


@router.get("/accounts/{uin}")
def account_page(request: Request, uin: str) -> HTMLResponse:
    current = ops_page(request)
    return _account_page(request, current, uin,
                         credit_saved=request.query_params.get("credit") == "saved")


# ---------------------------------------------------------------- adjustments

def _adjustment(sub_account: str, amount: str, reason: str, key: str) -> dict:
    """The form's adjustment, checked as ``funds.adjust`` will check it; InvalidInput
    naming the field otherwise."""
    if sub_account not in SUB_ACCOUNTS:
        raise invalid("sub_account", "只能调整现金或赠送账户", "only cash or gift can be adjusted")
    fen = parse_yuan(amount, "amount", allow_negative=True)
    reason = plain_text(reason, "reason", 200).strip()
    if not reason:
        raise invalid("reason", "必须填写调账原因", "a reason is required")
    if not key or len(key) > 128 or not key.isprintable():
        raise invalid("idempotency_key", "表单缺少幂等键，请重新打开账号页面",
                      "the form has no idempotency key; open the account page again")
    return {"sub_account": sub_account, "amount_fen": fen, "reason": reason, "key": key}


@router.get("/accounts/{uin}/adjust")
def confirm_adjustment(request: Request, uin: str, sub_account: str = "", amount: str = "",
                       reason: str = "", idempotency_key: str = "") -> HTMLResponse:
    """The confirmation step: the adjustment as it will be made; writes nothing."""
    current = ops_page(request)
    form = {"sub_account": sub_account, "amount": amount, "reason": reason}
    try:
        adjustment = _adjustment(sub_account, amount, reason, idempotency_key)
        with current.rt.engine.connect() as conn:
            account = accounts.get_account(conn, current.actor, digits_id(uin, "uin"))
    except FeeCenterError as exc:
        return _account_page(request, current, uin, exc, form)
    return ops_render(request, "ops/adjust_confirm.html", current, active="accounts",
                      account=account, adjustment=adjustment, form=form)


@router.post("/accounts/{uin}/adjust")
def adjust(request: Request, uin: str, sub_account: Annotated[str, Form()] = "",
           amount: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
           idempotency_key: Annotated[str, Form()] = "",
           csrf_token: Annotated[str, Form()] = "",
           x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    current = ops_page(request)
    if not posted(current, csrf_token, x_csrf_token):
        return csrf_refused(request)
    rt = current.rt
    form = {"sub_account": sub_account, "amount": amount, "reason": reason}
    try:
        adjustment, number = (_adjustment(sub_account, amount, reason, idempotency_key),
                              digits_id(uin, "uin"))
        with transaction(rt.engine) as conn:
            movement = funds.adjust(conn, rt.clock, current.actor, number,
                                    sub_account=adjustment["sub_account"],
                                    amount=adjustment["amount_fen"],
                                    reason=adjustment["reason"], key=adjustment["key"])
    except FeeCenterError as exc:
        return _account_page(request, current, uin, exc, form)
    with rt.engine.connect() as conn:
        account = accounts.get_account(conn, current.actor, number)
        view = funds.balance_view(conn, rt.clock, current.actor, number)
    return ops_render(request, "ops/adjusted.html", current, active="accounts", account=account,
                      adjustment=adjustment, movement=movement, balance=view)


# ---------------------------------------------------------------- credit (BAL-7)

@router.post("/accounts/{uin}/credit")
def set_credit(request: Request, uin: str, credit_limit: Annotated[str, Form()] = "",
               temp_credit: Annotated[str, Form()] = "0.00",
               temp_credit_end: Annotated[str, Form()] = "",
               csrf_token: Annotated[str, Form()] = "",
               x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    current = ops_page(request)
    if not posted(current, csrf_token, x_csrf_token):
        return csrf_refused(request)
    rt = current.rt
    form = {"credit_limit": credit_limit, "temp_credit": temp_credit,
            "temp_credit_end": temp_credit_end}
    try:
        number = digits_id(uin, "uin")
        end = (parse_business_time(temp_credit_end.strip(), "temp_credit_end")
               if temp_credit_end.strip() else None)
        with transaction(rt.engine) as conn:
            funds.grant_credit(
                conn, rt.clock, current.actor, number,
                credit_limit=parse_yuan(credit_limit, "credit_limit", allow_zero=True),
                temp_credit=parse_yuan(temp_credit or "0", "temp_credit", allow_zero=True),
                temp_credit_end=end)
    except FeeCenterError as exc:
        return _account_page(request, current, uin, exc, form)
    return RedirectResponse(f"{OPS}/accounts/{number}?credit=saved", 303)
