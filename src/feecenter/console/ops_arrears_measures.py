"""The operator console's 欠费处置 (arrears measures, ARR-6) pages: the measures taken
(every account's, or one's), and on one account the four measures — take all
services offline, reclaim all resources, charge liquidated damages, set arrears
off against the cash it holds — each through a confirmation step.

Each calls what the REST operator endpoints call (api/arrears.py):
``arrears.measures.take_offline``, ``reclaim_all``, ``charge_damages``,
``set_off`` and ``list_measures``, which check that the actor is an operator;
the account's figures come from ``funds.balance_view``. A measure's form carries
an idempotency key made when the account's page is rendered, through the
confirmation to the POST (with the session's CSRF token), so submitting it twice
takes the measure once (docs/console.md, "Operator console").
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, Response

from feecenter.accounts import service as accounts
from feecenter.arrears import measures
from feecenter.console.i18n import N_
from feecenter.console.ops import OPS, OpsPage, ops_page, ops_render, posted, refused
from feecenter.console.web import csrf_refused
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, invalid
from feecenter.funds import service as funds
from feecenter.inputs import digits_id, plain_text
from feecenter.money import parse_yuan
from feecenter.present.text import time_text

router = APIRouter(prefix=OPS, include_in_schema=False)
LABELS = {"offline": N_("Take all services offline"),
          "reclaim": N_("Reclaim all resources (data not kept)"),
          "damages": N_("Charge liquidated damages"),
          "set_off": N_("Set arrears off against the account's cash")}
EFFECTS = {"offline": N_("Every running resource, prepaid and postpaid, is stopped now; "
                         "nothing is charged while stopped; data is kept. They restart "
                         "when the arrears are paid."),
           "reclaim": N_("Every resource is released now, without the recycle bin; its data "
                         "is deleted for good. Prepaid resources get no refund."),
           "damages": N_("The amount is taken from cash; what cash does not cover becomes "
                         "arrears."),
           "set_off": N_("Failed withdrawals are returned to cash, then the cash the account "
                         "holds repays its arrears, then its unrepaid advances.")}
LIST_SIZE = 100


def _shown(rows: list[dict]) -> list[dict]:
    return [{**m, "at_text": time_text(m["at"])} for m in rows]


@router.get("/arrears-measures")
def measures_page(request: Request, uin: str = "") -> HTMLResponse:
    """Every account's measures, newest first; with ``uin``, that account's."""
    current = ops_page(request)
    context = {"active": "arrears_measures", "uin": uin, "rows": [], "labels": LABELS}
    try:
        number = digits_id(uin, "uin") if uin.strip() else None
        with current.rt.engine.connect() as conn:
            rows = measures.list_measures(conn, current.actor, number, limit=LIST_SIZE)
    except FeeCenterError as exc:
        return refused(request, current, "ops/arrears_measures.html", exc, **context)
    context["rows"] = _shown(rows)
    return ops_render(request, "ops/arrears_measures.html", current, **context)


def _account_page(request: Request, current: OpsPage, uin_text: str, exc=None,
                  form: dict | None = None) -> HTMLResponse:
    """The account's figures, its measures and the four forms (a fresh key each);
    with ``exc``, its message next to the field it names."""
    form = {"reason": "", "amount": "", "measure": "", **(form or {}),
            "idempotency_key": "console-measure:" + secrets.token_urlsafe(18)}
    context = {"active": "arrears_measures", "form": form, "labels": LABELS,
               "effects": EFFECTS, "account": None, "rows": []}
    try:
        number = digits_id(uin_text, "uin")
        with current.rt.engine.connect() as conn:
            context["account"] = accounts.get_account(conn, current.actor, number)
            context["balance"] = funds.balance_view(conn, current.rt.clock, current.actor,
                                                    number)
            context["rows"] = _shown(measures.list_measures(conn, current.actor, number,
                                                            limit=LIST_SIZE))
    except FeeCenterError as missing:
        return refused(request, current, "ops/arrears_account.html", missing, **context)
    if exc is not None:
        return refused(request, current, "ops/arrears_account.html", exc, **context)
    return ops_render(request, "ops/arrears_account.html", current, **context)


@router.get("/accounts/{uin}/arrears-measures")
def account_measures(request: Request, uin: str) -> HTMLResponse:
    return _account_page(request, ops_page(request), uin)


def _checked(measure: str, reason: str, amount: str, key: str) -> dict:
    """The form's measure, checked as the service will check it; InvalidInput naming
    the field otherwise."""
    if measure not in LABELS:
        raise invalid("measure", "未知的欠费处置", "unknown arrears measure")
    if not key or len(key) > 128 or not key.isprintable():
        raise invalid("idempotency_key", "表单缺少幂等键，请重新打开账号的欠费处置页面",
                      "the form has no idempotency key; open the account's measures page again")
    out = {"measure": measure, "key": key, "reason": "", "amount_fen": None, "amount": amount}
    if measure != "set_off":
        out["reason"] = plain_text(reason, "reason", 200).strip()
        if not out["reason"]:
            raise invalid("reason", "必须填写处置原因", "a reason is required")
    if measure == "damages":
        out["amount_fen"] = parse_yuan(amount, "amount")
    return out


@router.get("/accounts/{uin}/arrears-measures/confirm")
def confirm_measure(request: Request, uin: str, measure: str = "", reason: str = "",
                    amount: str = "", idempotency_key: str = "") -> HTMLResponse:
    """The confirmation step: the measure as it will be taken; writes nothing."""
    current = ops_page(request)
    form = {"measure": measure, "reason": reason, "amount": amount}
    try:
        checked = _checked(measure, reason, amount, idempotency_key)
        with current.rt.engine.connect() as conn:
            number = digits_id(uin, "uin")
            account = accounts.get_account(conn, current.actor, number)
            view = funds.balance_view(conn, current.rt.clock, current.actor, number)
    except FeeCenterError as exc:
        return _account_page(request, current, uin, exc, form)
    return ops_render(request, "ops/arrears_measure_confirm.html", current,
                      active="arrears_measures", account=account, balance=view,
                      measure=checked, labels=LABELS, effects=EFFECTS)


_ACTIONS = {
    "offline": lambda conn, rt, actor, uin, m: measures.take_offline(
        conn, rt.clock, actor, uin, reason=m["reason"], key=m["key"]),
    "reclaim": lambda conn, rt, actor, uin, m: measures.reclaim_all(
        conn, rt.clock, actor, uin, reason=m["reason"], key=m["key"]),
    "damages": lambda conn, rt, actor, uin, m: measures.charge_damages(
        conn, rt.clock, actor, uin, amount=m["amount_fen"], reason=m["reason"], key=m["key"]),
    "set_off": lambda conn, rt, actor, uin, m: measures.set_off(
        conn, rt.clock, actor, uin, key=m["key"]),
}


@router.post("/accounts/{uin}/arrears-measures")
def take_measure(request: Request, uin: str, measure: Annotated[str, Form()] = "",
                 reason: Annotated[str, Form()] = "", amount: Annotated[str, Form()] = "",
                 idempotency_key: Annotated[str, Form()] = "",
                 csrf_token: Annotated[str, Form()] = "",
                 x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    current = ops_page(request)
    if not posted(current, csrf_token, x_csrf_token):
        return csrf_refused(request)
    rt = current.rt
    form = {"measure": measure, "reason": reason, "amount": amount}
    try:
        checked, number = _checked(measure, reason, amount, idempotency_key), digits_id(uin, "uin")
        with transaction(rt.engine) as conn:
            done = _ACTIONS[measure](conn, rt, current.actor, number, checked)
    except FeeCenterError as exc:
        return _account_page(request, current, uin, exc, form)
    with rt.engine.connect() as conn:
        account = accounts.get_account(conn, current.actor, number)
        view = funds.balance_view(conn, rt.clock, current.actor, number)
    return ops_render(request, "ops/arrears_measure_done.html", current,
                      active="arrears_measures", account=account, balance=view,
                      done={**done, "at_text": time_text(done["at"])}, labels=LABELS)
