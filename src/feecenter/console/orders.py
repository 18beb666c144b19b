"""The console's 订单 (orders) pages: the list (state filter, pages), one order,
the merged payment of selected orders with the service's dry-run preview, and
voiding an unpaid order.

Each handler calls the functions REST calls (api/orders.py): ``orders.list_orders``,
``orders.get_order``, ``orders.preview_payment``, ``orders.pay`` and
``orders.void_order``; they check the permissions. The pay form carries an
idempotency key made when the form is rendered, so a second submit of the same
form returns the first payment (docs/console.md, "Orders").
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from feecenter.console.i18n import N_
from feecenter.console.web import (PREFIX, Page, form_key, lang_of, message, page, render,
                                   submit)
from feecenter.coupons import rules as coupon_rules
from feecenter.coupons import service as coupons
from feecenter.errors import FeeCenterError, PermissionDenied, invalid
from feecenter.inputs import page_number
from feecenter.orders import service as orders
from feecenter.orders.rules import parse_order_ref
from feecenter.present.orders import order_json

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE_SIZE = 20
MONEY = ("list_amount", "amount", "paid_coupon", "paid_gift", "paid_cash", "paid_credit",
         "refunded_gift", "refunded_cash")
STATE_LABELS = {"unpaid": N_("Unpaid"), "paid": N_("Paid, awaiting delivery"),
                "delivered": N_("Delivered"), "delivery_failed": N_("Delivery failed"),
                "refunded": N_("Refunded"), "expired": N_("Expired"), "voided": N_("Voided")}
KIND_LABELS = {"new": N_("New purchase"), "renew": N_("Renewal"), "upgrade": N_("Upgrade"),
               "downgrade": N_("Downgrade"), "refund": N_("Refund")}
AUTO, PICK = "auto", "pick"  # coupon choice: the best of the account's, or the ones ticked


def _shown(order: dict) -> dict:
    """An order for a template: the REST view (order number, times in business time)
    with its money in fen (``fen``) for the ``yuan`` filter."""
    return {**order_json(order), "fen": {k: order.get(k) or 0 for k in MONEY}}


def _page(request: Request, current: Page, template: str, status: int = 200,
          **context) -> HTMLResponse:
    return render(request, template, status=status, session=current.session, active="orders",
                  state_labels=STATE_LABELS, kind_labels=KIND_LABELS, **context)


def _error_page(request: Request, current: Page, exc: FeeCenterError, template: str = "orders.html",
                **context) -> HTMLResponse:
    """The page again with the service's message in the page's language, next to the
    field it names; the error's own status (400, 403, 404, 409 …)."""
    return _page(request, current, template, exc.http_status,
                 error=message(exc, lang_of(request)), field=exc.field,
                 denied=isinstance(exc, PermissionDenied), **context)


# ---------------------------------------------------------------- list

@router.get("/orders")
def order_list(request: Request, state: str = "") -> HTMLResponse:
    current = page(request)
    page_text = request.query_params.get("page", "1")
    context = {"state": state, "states": orders.STATES, "items": [], "total": 0, "page": 1,
               "pages": 1}
    try:
        number = page_number(page_text)
        context["page"] = number
        with current.rt.engine.connect() as conn:
            found = orders.list_orders(conn, current.session.actor, current.session.actor.uin,
                                       orders.OrderQuery(states=(state,) if state else (),
                                                         offset=(number - 1) * PAGE_SIZE,
                                                         limit=PAGE_SIZE))
    except FeeCenterError as exc:
        return _error_page(request, current, exc, **context)
    context.update(items=[_shown(o) for o in found["items"]], total=found["total"],
                   pages=max(1, -(-found["total"] // PAGE_SIZE)))
    return _page(request, current, "orders.html", **context)



# ---------------------------------------------------------------- payment

def _order_ids(values: list[str]) -> list[int]:
    if not values:
        raise invalid("order_ids", "请至少选择一个订单", "select at least one order")
    return [parse_order_ref(v) for v in values]


def _coupon_choice(mode: str, values: list[str]) -> list[int] | None:
    """None: the best of the account's coupons (ORD-3); a list: only those ([]: none)."""
    if mode == AUTO:
        return None
    if mode != PICK:
        raise invalid("coupons", "优惠券选择无效", "unknown coupon choice")
    if not all(v.isascii() and v.isdigit() and len(v) <= 12 for v in values):
        raise invalid("coupon_ids", "优惠券 ID 须为整数", "coupon ids must be whole numbers")
    return [int(v) for v in values]


def _payment_context(current: Page, order_refs: list[str], mode: str,
                     coupon_refs: list[str]) -> dict:
    """The selected orders, the account's usable coupons and the service's preview."""
    actor, rt = current.session.actor, current.rt
    context = {"order_refs": order_refs, "mode": mode, "picked": set(coupon_refs),
               "selected": [], "coupons": [], "plan": None, "key": secrets.token_urlsafe(24)}
    order_ids = _order_ids(order_refs)
    chosen = _coupon_choice(mode, coupon_refs)
    with rt.engine.connect() as conn:
        context["selected"] = [_shown(o) for o in orders.get_orders(conn, actor, actor.uin,
                                                                      order_ids)]
        context["coupons"] = coupons.list_coupons(
            conn, rt.clock, actor, actor.uin, coupons.CouponQuery(
                state=coupon_rules.UNUSED, pay_mode=coupon_rules.PREPAID, limit=100))["items"]
        context["plan"] = orders.preview_payment(conn, rt.clock, actor, actor.uin, order_ids,
                                                 coupon_ids=chosen)
    context["order_no"] = {o["id"]: o["order_no"] for o in context["selected"]}
    return context


@router.get("/orders/pay")
def payment_form(request: Request) -> HTMLResponse:
    """The selected orders, the coupon choice and the preview; the pay form under it."""
    current = page(request)
    refs, mode = request.query_params.getlist("order_id"), request.query_params.get("coupons", AUTO)
    picked = request.query_params.getlist("coupon_id")
    try:
        context = _payment_context(current, refs, mode, picked)
    except FeeCenterError as exc:
        return _error_page(request, current, exc, "payment.html", order_refs=refs, mode=mode,
                           picked=set(picked), plan=None, selected=[], coupons=[])
    return _page(request, current, "payment.html", **context)


@router.post("/orders/pay")
def pay(request: Request, order_id: Annotated[list[str], Form()] = [],  # noqa: B006
        coupon_id: Annotated[list[str], Form()] = [],  # noqa: B006
        coupons_mode: Annotated[str, Form(alias="coupons")] = AUTO,
        idempotency_key: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
        x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    def change(conn, clock, actor, uin):
        key = form_key(idempotency_key, "支付页面", "the payment page")
        ids, chosen = _order_ids(order_id), _coupon_choice(coupons_mode, coupon_id)
        result = orders.pay(conn, clock, actor, uin, ids, key=key, coupon_ids=chosen)
        return result, [_shown(orders.get_order(conn, actor, uin, i)) for i in result["order_ids"]]

    def refused(current: Page, exc: FeeCenterError) -> HTMLResponse:
        try:
            context = _payment_context(current, order_id, coupons_mode, coupon_id)
        except FeeCenterError:  # the form itself is wrong: the message of the payment's error
            context = {"order_refs": order_id, "mode": coupons_mode, "picked": set(coupon_id),
                       "plan": None, "selected": [], "coupons": []}
        return _error_page(request, current, exc, "payment.html", **context)

    def done(current: Page, made: tuple) -> HTMLResponse:
        return _page(request, current, "paid.html", result=made[0], paid=made[1])
    return submit(request, csrf_token or x_csrf_token, change, refused, done)


# ---------------------------------------------------------------- one order, void

@router.get("/orders/{order_ref}")
def order_detail(request: Request, order_ref: str) -> HTMLResponse:
    current = page(request)
    actor = current.session.actor
    try:
        order_id = parse_order_ref(order_ref, "order")
        with current.rt.engine.connect() as conn:
            order = _shown(orders.get_order(conn, actor, actor.uin, order_id))
    except FeeCenterError as exc:
        return _error_page(request, current, exc, "order.html", order=None)
    return _page(request, current, "order.html", order=order)


@router.post("/orders/{order_ref}/void")
def void(request: Request, order_ref: str, csrf_token: Annotated[str, Form()] = "",
         x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    def change(conn, clock, actor, uin):
        orders.void_order(conn, clock, actor, uin, parse_order_ref(order_ref, "order"))

    def refused(current: Page, exc: FeeCenterError) -> HTMLResponse:
        actor = current.session.actor
        try:
            with current.rt.engine.connect() as conn:
                order = _shown(orders.get_order(conn, actor, actor.uin,
                                                parse_order_ref(order_ref, "order")))
        except FeeCenterError:
            order = None  # the order cannot be shown: the page has the void's message alone
        return _error_page(request, current, exc, "order.html", order=order)
    return submit(request, csrf_token or x_csrf_token, change, refused,
                  lambda *_: RedirectResponse(f"{PREFIX}/orders/{order_ref}", 303))
