"""/api/v1 coupon routes (CPN): parse, authenticate, call one service, render.

Customers list their coupons and redeem codes under /accounts/{uin} (the
service checks FINANCE, ACC-2); operators grant coupons and create
redemption codes under /ops. Money is yuan strings, discounts basis points
(the share still paid: 8000 = 8折), times Asia/Shanghai text.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header
from pydantic import Field

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import (BusinessTime, Code, Key, Limit, Offset, PathId, StrictModel,
                                  Text, Uin, Yuan)
from feecenter.catalog.rules import MAX_MONTHS
from feecenter.clock import business_time_text, parse_business_time
from feecenter.coupons import rules
from feecenter.coupons import service as coupons
from feecenter.db.engine import transaction
from feecenter.money import format_yuan, parse_yuan
from feecenter.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]

MONEY = ("face_amount", "max_discount", "remaining", "used", "pending", "forfeited", "threshold")
TIMES = ("valid_from", "valid_until", "created_at", "settled_at")


def coupon_json(coupon: dict) -> dict:
    out = {k: (format_yuan(v) if k in MONEY and v is not None else v) for k, v in coupon.items()}
    for k in TIMES:
        if out.get(k) is not None:
            out[k] = business_time_text(out[k])
    if "uses" in out:
        out["uses"] = [{**u, "amount": format_yuan(u["amount"]),
                        **{k: business_time_text(u[k]) for k in TIMES
                           if u.get(k) is not None}} for u in out["uses"]]
    return out


# ---------------------------------------------------------------- customer endpoints

@router.get("/accounts/{uin}/coupons", summary="Coupons (CPN) / 优惠券")
def list_coupons(uin: Uin, rt: Rt, actor: Caller, state: str | None = None,
                 kind: str | None = None, pay_mode: str | None = None,
                 product: str | None = None, offset: Offset = 0, limit: Limit = 20) -> dict:
    query = coupons.CouponQuery(state=state, kind=kind, pay_mode=pay_mode, product=product,
                                offset=offset, limit=limit)
    with rt.engine.connect() as conn:
        page = coupons.list_coupons(conn, rt.clock, actor, uin, query)
    return {"total": page["total"], "items": [coupon_json(c) for c in page["items"]]}


@router.get("/accounts/{uin}/coupons/{coupon_id}", summary="One coupon and its uses / 优惠券详情")
def get_coupon(uin: Uin, coupon_id: PathId, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return coupon_json(coupons.get_coupon(conn, rt.clock, actor, uin, coupon_id))


class RedeemRequest(StrictModel):
    code: str = Field(min_length=1, max_length=40, description="8-letter card-wallet code or printed code")


@router.post("/accounts/{uin}/coupons/redeem", status_code=201,
             summary="Redeem a code (CPN-2) / 兑换优惠券")
def redeem(uin: Uin, body: RedeemRequest, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        coupon_id = coupons.redeem(conn, rt.clock, actor, uin, body.code)
        return coupon_json(coupons.get_coupon(conn, rt.clock, actor, uin, coupon_id))


# ---------------------------------------------------------------- operator endpoints

class TermsBody(StrictModel):
    """A coupon's terms; the service validates them and names the field it refuses."""

    kind: Literal["voucher", "cash", "discount"]
    pay_mode: Literal["prepaid", "postpaid"]
    face_amount: Yuan | None = Field(default=None, description='vouchers and cash coupons: "50.00"')
    discount_bp: int | None = Field(default=None, ge=1, le=9999,
                                    description="share still paid: 8000 = 8折")
    max_discount: Yuan | None = Field(default=None, description="discount coupons: cap, yuan")
    product_scope: Literal["only", "all_but"] = rules.ALL_BUT
    products: list[Code] = Field(default_factory=list, max_length=200)
    order_kinds: list[Literal["new", "renew", "upgrade"]] | None = Field(
        default=None, max_length=3, description="prepaid: new/renew/upgrade")
    min_months: int | None = Field(default=None, ge=1, le=MAX_MONTHS)
    max_months: int | None = Field(default=None, ge=1, le=MAX_MONTHS)
    threshold: Yuan = "0.00"
    valid_from: BusinessTime | None = Field(default=None, description="default now")
    valid_until: BusinessTime | None = Field(default=None, description="exclusive; or valid_days")
    valid_days: int | None = Field(default=None, ge=1, le=3660)
    single_use: bool = False

    def to_terms(self) -> rules.Terms:
        def money(name: str, *, zero: bool = False) -> int | None:
            value = getattr(self, name)
            return parse_yuan(value, name, allow_zero=zero) if value is not None else None

        def when(name: str):
            value = getattr(self, name)
            return parse_business_time(value, name) if value is not None else None

        kinds = self.order_kinds
        if kinds is None:
            kinds = list(rules.PREPAID_ORDER_KINDS) if self.pay_mode == rules.PREPAID else []
        return rules.Terms(
            kind=self.kind, pay_mode=self.pay_mode, face_amount=money("face_amount"),
            discount_bp=self.discount_bp, max_discount=money("max_discount"),
            product_scope=self.product_scope, products=tuple(self.products),
            order_kinds=tuple(kinds), min_months=self.min_months, max_months=self.max_months,
            threshold=money("threshold", zero=True), valid_from=when("valid_from"),
            valid_until=when("valid_until"), valid_days=self.valid_days,
            single_use=self.single_use)


class GrantRequest(TermsBody):
    campaign: Text = Field(description="the campaign the coupon comes from")
    idempotency_key: Key | None = None


@router.post("/ops/accounts/{uin}/coupons", status_code=201,
             summary="Grant a coupon from a campaign (operator, audited)")
def grant(uin: Uin, body: GrantRequest, rt: Rt, actor: Caller,
          idempotency_key: Annotated[str | None, Header()] = None) -> dict:
    terms = body.to_terms()
    with transaction(rt.engine) as conn:
        coupon_id = coupons.grant(conn, rt.clock, actor, uin, terms, campaign=body.campaign,
                                  key=body.idempotency_key or idempotency_key)
        return coupon_json(coupons.get_coupon(conn, rt.clock, actor, uin, coupon_id))


class CodesRequest(TermsBody):
    campaign: Text
    count: int = Field(ge=1, le=coupons.MAX_CODES)
    format: Literal["wallet", "printed"] = Field(default="wallet",
                                                description="wallet (8 letters) | printed (16)")
    redeem_until: BusinessTime | None = Field(default=None,
                                              description="codes die unredeemed after it")
    idempotency_key: Key | None = None


@router.post("/ops/coupon-codes", status_code=201,
             summary="Create redemption codes (operator, audited; codes shown once)")
def create_codes(body: CodesRequest, rt: Rt, actor: Caller,
                 idempotency_key: Annotated[str | None, Header()] = None) -> dict:
    terms = body.to_terms()
    until = (parse_business_time(body.redeem_until, "redeem_until")
             if body.redeem_until is not None else None)
    with transaction(rt.engine) as conn:
        batch = coupons.create_codes(conn, rt.clock, actor, terms, campaign=body.campaign,
                                     count=body.count, fmt=body.format, redeem_until=until,
                                     key=body.idempotency_key or idempotency_key)
    return {"batch_id": batch.batch_id, "created": batch.created, "codes": list(batch.codes)}
