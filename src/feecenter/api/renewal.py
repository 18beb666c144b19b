"""/api/v1 routes for renewal management (RNW-5, RNW-7; docs/api.md, "Renewal"):
the renewable resources, their auto-renew flags and terms, the account's
renewal settings (default flag, unified expiry day), the batch renewal with its
merged payment preview (or paid at once), and the unified-expiry preview. The
services check who may (ACC-2: renewal management is the owner's and admins')."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from pydantic import Field

from feecenter.accounts.permissions import FINANCE, Actor, holds
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import BodyId, Digits, Key, Offset, QueryId, StrictModel, Uin
from feecenter.db.engine import transaction
from feecenter.errors import invalid
from feecenter.money import format_yuan
from feecenter.orders import service as orders
from feecenter.present.orders import order_json
from feecenter.present.renewal import renewable_json, renewal_preview_json
from feecenter.renewal import management, settings, unified
from feecenter.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]

ResourceId = Annotated[str, Field(min_length=1, max_length=100)]
ResourceIds = list[ResourceId]
Months = Annotated[int, Field(ge=1, le=orders.MAX_MONTHS)]
PAYMENT_MONEY = ("amount", "coupon", "gift", "cash", "credit")


def _payment_key(body_key: str | None, header_key: str | None) -> str:
    key = body_key or header_key
    if not key:
        raise invalid("idempotency_key", "立即支付必须提供幂等键（Idempotency-Key 头或请求体字段）",
                      "paying at once needs an idempotency key (Idempotency-Key header or "
                      "body field)")
    return key


@router.get("/accounts/{uin}/renewals", summary="Renewal management list (RNW-7) / 续费管理")
def list_renewals(
        uin: Uin, rt: Rt, actor: Caller,
        expiring_within_days: Annotated[int | None, Digits, Query(ge=0, le=3660)] = None,
        auto_renew: bool | None = None, project_id: QueryId = None,
        product_code: Annotated[str | None, Query(min_length=1, max_length=64,
                                                  pattern=r"^[!-~]+$")] = None,
        packages: bool = False, offset: Offset = 0,
        limit: Annotated[int, Digits, Query(ge=1, le=management.MAX_PAGE)] = 50) -> dict:
    query = management.RenewalQuery(
        expiring_within_days=expiring_within_days, auto_renew=auto_renew,
        project_id=project_id, product_code=product_code, packages=packages, offset=offset,
        limit=limit)
    with rt.engine.connect() as conn:
        page = management.list_renewables(conn, rt.clock, actor, uin, query)
    return {"total": page["total"], "items": [renewable_json(i) for i in page["items"]]}


class AutoRenewBody(StrictModel):
    resource_ids: ResourceIds = Field(min_length=1, max_length=settings.MAX_BATCH)
    auto_renew: bool | None = None
    months: Months | None = None


@router.post("/accounts/{uin}/renewals/auto-renew",
             summary="Set the auto-renew flag and term of resources (RNW-1, RNW-4, RNW-7)")
def set_auto_renew(uin: Uin, body: AutoRenewBody, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        count = settings.set_auto_renew(conn, rt.clock, actor, uin, body.resource_ids,
                                        auto_renew=body.auto_renew, months=body.months)
    return {"updated": count, "resource_ids": body.resource_ids,
            "auto_renew": body.auto_renew, "months": body.months}


@router.get("/accounts/{uin}/renewal-settings",
            summary="The account's renewal settings (RNW-5) / 续费设置")
def get_renewal_settings(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return settings.get_account_settings(conn, actor, uin)


class RenewalSettingsBody(StrictModel):
    """Only the fields given change; ``unified_day: null`` turns the unified day off."""

    auto_renew_default: bool | None = None
    unified_day: Annotated[int, Field(ge=1, le=28)] | None = None


@router.put("/accounts/{uin}/renewal-settings",
            summary="Change the default auto-renew flag or the unified expiry day (RNW-5)")
def put_renewal_settings(uin: Uin, body: RenewalSettingsBody, rt: Rt, actor: Caller) -> dict:
    given = body.model_fields_set
    if not given:
        raise invalid("unified_day", "请指定 auto_renew_default 或 unified_day",
                      "give auto_renew_default or unified_day")
    if "auto_renew_default" in given and body.auto_renew_default is None:
        raise invalid("auto_renew_default", "须为 true 或 false", "must be true or false")
    with transaction(rt.engine) as conn:
        if "auto_renew_default" in given:
            settings.set_account_default(conn, rt.clock, actor, uin, body.auto_renew_default)
        if "unified_day" in given:
            settings.set_unified_day(conn, rt.clock, actor, uin, body.unified_day)
        return settings.get_account_settings(conn, actor, uin)


class BatchRenewalBody(StrictModel):
    resource_ids: ResourceIds = Field(min_length=1, max_length=orders.MAX_ORDERS_PER_PAYMENT)
    months: Months | None = None  # one term for all; absent: each resource's own
    idempotency_key: Key | None = None
    pay: bool = False  # pay the orders at once (needs the idempotency key)
    coupon_ids: list[BodyId] | None = Field(default=None, max_length=100)


@router.post("/accounts/{uin}/renewals/orders", status_code=201,
             summary="Batch renewal: orders for one merged payment (RNW-7)")
def renew_batch(uin: Uin, body: BatchRenewalBody, rt: Rt, actor: Caller,
                idempotency_key: Annotated[str | None, Header()] = None) -> dict:
    key = body.idempotency_key if body.idempotency_key is not None else idempotency_key
    if body.pay:
        key = _payment_key(body.idempotency_key, idempotency_key)
    with transaction(rt.engine) as conn:
        ids = management.renew_batch(conn, rt.clock, actor, uin, body.resource_ids,
                                     body.months, key=key)
        if body.pay:
            paid = orders.pay(conn, rt.clock, actor, uin, ids, key=f"renewal:{key}",
                              coupon_ids=body.coupon_ids)
            result = {"payment": {**paid, **{k: format_yuan(paid[k]) for k in PAYMENT_MONEY}}}
        elif holds(actor, uin, FINANCE):
            result = {"payment_preview": _yuan_plan(orders.preview_payment(
                conn, rt.clock, actor, uin, ids, coupon_ids=body.coupon_ids))}
        else:  # an admin renews; paying, and seeing what pays, is finance's (ACC-2)
            result = {"payment_preview": None}
        return {"orders": [order_json(o) for o in orders.get_orders(conn, actor, uin, ids)],
                **result}


def _yuan_plan(plan: dict) -> dict:
    return {"orders": [{**line, **{k: format_yuan(line[k]) for k in PAYMENT_MONEY}}
                       for line in plan["orders"]],
            "totals": {k: format_yuan(v) for k, v in plan["totals"].items()},
            "coupon_uses": [{**use, "amount": format_yuan(use["amount"])}
                            for use in plan["coupon_uses"]],
            "coupons_skipped": plan["coupons_skipped"]}


@router.get("/accounts/{uin}/renewals/preview",
            summary="What renewing would cost and the new expiry, unified day applied (RNW-5)")
def preview_renewals(
        uin: Uin, rt: Rt, actor: Caller,
        resource_id: Annotated[list[ResourceId], Query(min_length=1,
                                                       max_length=settings.MAX_BATCH)],
        months: Annotated[int | None, Digits, Query(ge=1, le=orders.MAX_MONTHS)] = None
) -> dict:
    with rt.engine.connect() as conn:
        return renewal_preview_json(unified.preview_renewals(conn, rt.clock, actor, uin,
                                                             resource_id, months))
