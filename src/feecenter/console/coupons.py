"""The console's 优惠券 (coupons) page: the account's coupons with their state, value,
what is left, their restrictions (CPN-3) and, for one that can pay nothing now,
why — the coupon domain's own reasons, as the payment preview gives them; and
redeeming a code (CPN-2).

The page calls what REST calls (api/coupons.py): ``coupons.list_coupons``,
``coupons.redeem``, and ``coupons.unusable_reasons`` for the reasons; they check
the FINANCE permission (ACC-2).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from feecenter.console.i18n import N_
from feecenter.console.web import PREFIX, Page, csrf_refused, lang_of, message, page, render
from feecenter.coupons import rules
from feecenter.coupons import service as coupons
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, PermissionDenied
from feecenter.inputs import page_number
from feecenter.present.text import time_text

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE_SIZE = 20
STATE_LABELS = {rules.UNUSED: N_("Usable"), rules.USED: N_("Used"), rules.EXPIRED: N_("Expired")}
PAY_MODES = {rules.PREPAID: N_("Prepaid orders"), rules.POSTPAID: N_("Postpaid settlement")}
ORDER_KINDS = {"new": N_("New purchase"), "renew": N_("Renewal"), "upgrade": N_("Upgrade")}



def _shown(coupon: dict, reasons: dict[int, rules.Reason]) -> dict:
    return {**coupon, "valid_from_text": time_text(coupon["valid_from"]),
            "valid_until_text": time_text(coupon["valid_until"]),
            "reason": reasons.get(coupon["id"])}


def _listing(current: Page, state: str, page_text: str) -> dict:
    actor, rt = current.session.actor, current.rt
    number = page_number(page_text or "1")
    with rt.engine.connect() as conn:
        found = coupons.list_coupons(conn, rt.clock, actor, actor.uin, coupons.CouponQuery(
            state=state or None, offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE))
        reasons = coupons.unusable_reasons(conn, rt.clock, actor, actor.uin,
                                           [c["id"] for c in found["items"]])
    return {"items": [_shown(c, reasons) for c in found["items"]], "total": found["total"],
            "page": number, "pages": max(1, -(-found["total"] // PAGE_SIZE))}


def _coupon_page(request: Request, status: int = 200, **extra) -> HTMLResponse:
    current = page(request)
    state = request.query_params.get("state", "").strip()
    context = {"state": state, "items": [], "total": 0, "page": 1, "pages": 1}
    try:
        context.update(_listing(current, state, request.query_params.get("page", "1")))
    except FeeCenterError as exc:
        status = exc.http_status
        context.update(error=message(exc, lang_of(request)), field=exc.field,
                       denied=isinstance(exc, PermissionDenied))
    return render(request, "coupons.html", status=status, session=current.session,
                  active="coupons", states=rules.STATES, state_labels=STATE_LABELS,
                  pay_modes=PAY_MODES, order_kinds=ORDER_KINDS, **{**context, **extra})


@router.get("/coupons")
def coupon_list(request: Request) -> HTMLResponse:
    redeemed = request.query_params.get("redeemed", "")
    return _coupon_page(request, redeemed=redeemed if redeemed.isdigit() else None)


@router.post("/coupons/redeem")
def redeem(request: Request, code: Annotated[str, Form()] = "",
           csrf_token: Annotated[str, Form()] = "",
           x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """Redeem a code into a coupon of the account (once, CPN-2)."""
    current = page(request)
    if not current.session.csrf_ok(csrf_token or x_csrf_token):
        return csrf_refused(request)
    actor, rt = current.session.actor, current.rt
    try:
        with transaction(rt.engine) as conn:
            coupon_id = coupons.redeem(conn, rt.clock, actor, actor.uin, code)
    except FeeCenterError as exc:
        return _coupon_page(request, exc.http_status, code_error=message(exc, lang_of(request)),
                            code=code)
    return RedirectResponse(f"{PREFIX}/coupons?redeemed={coupon_id}", 303)
