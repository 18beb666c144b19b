"""/api/v1 routes for projects, resources, prepaid orders, payment and delivery."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query
from pydantic import Field

from feecenter.api.deps import caller, runtime
from feecenter.api.strict import (BodyId, Code, Key, Limit, Offset, OptionalText, PathId, QueryId,
                                  StrictModel, Text, Uin)
from feecenter.accounts.permissions import Actor
from feecenter.clock import business_time_text, parse_business_time
from feecenter.db.engine import transaction
from feecenter.errors import invalid
from feecenter.money import format_yuan
from feecenter.orders import service as orders
from feecenter.orders.rules import parse_order_ref
from feecenter.present.orders import order_json
from feecenter.present.resources import resource_json
from feecenter.resources import service as resources
from feecenter.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]



def _key(body_key: str | None, header_key: str | None) -> str:
    key = body_key or header_key
    if not key:
        raise invalid("idempotency_key", "必须提供幂等键（Idempotency-Key 头或请求体字段）",
                      "an idempotency key is required (Idempotency-Key header or body field)")
    return key


def optional_key(body_key: str | None, header_key: str | None) -> str | None:
    """A creation's key, optional (docs/decisions.md): the body field's, else the
    header's; the service refuses a malformed one."""
    return body_key if body_key is not None else header_key


# ---------------------------------------------------------------- projects and resources

class ProjectBody(StrictModel):
    name: Text


@router.get("/accounts/{uin}/projects", summary="Projects / 项目")
def list_projects(uin: Uin, rt: Rt, actor: Caller) -> list[dict]:
    with transaction(rt.engine) as conn:
        rows = resources.list_projects(conn, rt.clock, actor, uin)
    return [{**r, "created_at": business_time_text(r["created_at"])} for r in rows]


@router.post("/accounts/{uin}/projects", status_code=201, summary="Create a project")
def create_project(uin: Uin, body: ProjectBody, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return {"project_id": resources.create_project(conn, rt.clock, actor, uin, body.name)}


@router.put("/accounts/{uin}/projects/{project_id}", summary="Rename a project (SET-7)")
def rename_project(uin: Uin, project_id: PathId, body: ProjectBody, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        resources.rename_project(conn, rt.clock, actor, uin, project_id, body.name)
    return {"project_id": project_id, "name": body.name}


class MoveBody(StrictModel):
    resource_ids: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=1, max_length=1000)
    project_id: BodyId


@router.post("/accounts/{uin}/resources/move", summary="Move resources to a project (SET-7)")
def move_resources(uin: Uin, body: MoveBody, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        resources.move_resources(conn, rt.clock, actor, uin, body.resource_ids, body.project_id)
    return {"moved": body.resource_ids, "project_id": body.project_id}


@router.get("/accounts/{uin}/resources", summary="Resources / 资源")
def list_resources(uin: Uin, rt: Rt, actor: Caller, project_id: QueryId = None,
                   product: str | None = None, state: str | None = None) -> list[dict]:
    with rt.engine.connect() as conn:
        rows = resources.list_resources(conn, actor, uin, project_id=project_id,
                                        product_code=product, state=state)
    return [resource_json(r) for r in rows]


# ---------------------------------------------------------------- orders

class PurchaseItem(StrictModel):
    product: Code
    region: Code
    spec_item: Code
    count: int = Field(default=1, ge=1, le=1000)
    months: int = Field(default=1, ge=1, le=orders.MAX_MONTHS)
    project_id: BodyId | None = None
    resource_name: OptionalText = None
    tags: dict[Annotated[str, Field(min_length=1, max_length=128)],
               Annotated[str, Field(max_length=256)]] | None = Field(default=None, max_length=50)


class PurchaseBody(StrictModel):
    items: list[PurchaseItem] = Field(min_length=1, max_length=100)
    idempotency_key: Key | None = None


@router.post("/accounts/{uin}/orders", status_code=201, summary="New purchase orders (ORD-1)")
def create_purchase(uin: Uin, body: PurchaseBody, rt: Rt, actor: Caller,
                    idempotency_key: Annotated[str | None, Header()] = None) -> dict:
    key = optional_key(body.idempotency_key, idempotency_key)
    with transaction(rt.engine) as conn:
        ids = orders.create_purchase(conn, rt.clock, actor, uin,
                                     [orders.NewPurchase(**i.model_dump()) for i in body.items],
                                     key=key)
        return {"orders": [order_json(orders.get_order(conn, actor, uin, i)) for i in ids]}


class ResourceOrderBody(StrictModel):
    action: Literal["renew", "upgrade", "downgrade", "refund"]
    months: int | None = Field(default=None, ge=1, le=orders.MAX_MONTHS)
    spec_item: Code | None = None
    idempotency_key: Key | None = None


@router.post("/accounts/{uin}/resources/{resource_id}/orders", status_code=201,
             summary="Renew, upgrade, downgrade or refund a prepaid resource (ORD-1, ORD-4)")
def resource_order(uin: Uin, resource_id: str, body: ResourceOrderBody, rt: Rt, actor: Caller,
                   idempotency_key: Annotated[str | None, Header()] = None) -> dict:
    if body.action in ("upgrade", "downgrade") and not body.spec_item:
        raise invalid("spec_item", "升配或降配必须指定新配置 spec_item",
                      "an upgrade or downgrade needs the new spec_item")
    with transaction(rt.engine) as conn:
        if body.action == "renew":
            order_id = orders.create_renewal(
                conn, rt.clock, actor, uin, resource_id, body.months or 0,
                key=optional_key(body.idempotency_key, idempotency_key))
        elif body.action == "upgrade":
            order_id = orders.create_upgrade(
                conn, rt.clock, actor, uin, resource_id, body.spec_item or "",
                key=optional_key(body.idempotency_key, idempotency_key))
        elif body.action == "downgrade":
            order_id = orders.downgrade(conn, rt.clock, actor, uin, resource_id,
                                        body.spec_item or "",
                                        key=_key(body.idempotency_key, idempotency_key))
        else:
            order_id = orders.refund_resource(conn, rt.clock, actor, uin, resource_id,
                                              key=_key(body.idempotency_key, idempotency_key))
        return order_json(orders.get_order(conn, actor, uin, order_id))


@router.get("/accounts/{uin}/resources/{resource_id}/refund-preview",
            summary="What a refund would give back now (ORD-4; writes nothing)")
def refund_preview(uin: Uin, resource_id: str, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        preview = orders.preview_refund(conn, rt.clock, actor, uin, resource_id)
    money = ("gift", "cash", "coupon", "coupon_kept", "total")
    times = ("first_paid_at", "window_ends_at", "service_end")
    return {**preview, **{k: format_yuan(preview[k]) for k in money},
            **{k: business_time_text(preview[k]) if preview[k] else None for k in times}}


@router.get("/accounts/{uin}/orders", summary="Orders / 订单")
def list_orders(uin: Uin, rt: Rt, actor: Caller,
                state: Annotated[list[str], Query()] = [],  # noqa: B006
                start: str | None = None, end: str | None = None,
                resource_id: str | None = None, offset: Offset = 0, limit: Limit = 20) -> dict:
    query = orders.OrderQuery(start=parse_business_time(start, "start") if start else None,
                              end=parse_business_time(end, "end") if end else None,
                              states=tuple(state), resource_id=resource_id, offset=offset,
                              limit=limit)
    with rt.engine.connect() as conn:
        page = orders.list_orders(conn, actor, uin, query)
    return {"total": page["total"], "items": [order_json(o) for o in page["items"]]}


@router.get("/accounts/{uin}/orders/{order_ref}", summary="One order")
def get_order(uin: Uin, order_ref: str, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return order_json(orders.get_order(conn, actor, uin, parse_order_ref(order_ref, "order")))


@router.post("/accounts/{uin}/orders/{order_ref}/void", summary="Void an unpaid order")
def void_order(uin: Uin, order_ref: str, rt: Rt, actor: Caller) -> dict:
    order_id = parse_order_ref(order_ref, "order")
    with transaction(rt.engine) as conn:
        orders.void_order(conn, rt.clock, actor, uin, order_id)
        return order_json(orders.get_order(conn, actor, uin, order_id))


class PaymentBody(StrictModel):
    order_ids: list[Annotated[str, Field(min_length=1, max_length=20)]] = Field(
        min_length=1, max_length=orders.MAX_ORDERS_PER_PAYMENT)
    idempotency_key: Key | None = None
    # the coupons picked; absent: the best of the account's (ORD-3); []: no coupon
    coupon_ids: list[BodyId] | None = Field(default=None, max_length=100)


def _yuan_plan(plan: dict) -> dict:
    money = ("amount", "coupon", "gift", "cash", "credit")
    return {"orders": [{**line, **{k: format_yuan(line[k]) for k in money}}
                       for line in plan["orders"]],
            "totals": {k: format_yuan(v) for k, v in plan["totals"].items()},
            "coupon_uses": [{**use, "amount": format_yuan(use["amount"])}
                            for use in plan["coupon_uses"]],
            "coupons_skipped": plan["coupons_skipped"]}


@router.post("/accounts/{uin}/payments/preview",
             summary="What coupons, gift, cash and credit would pay (writes nothing)")
def preview_payment(uin: Uin, body: PaymentBody, rt: Rt, actor: Caller) -> dict:
    ids = [parse_order_ref(o) for o in body.order_ids]
    with rt.engine.connect() as conn:
        return _yuan_plan(orders.preview_payment(conn, rt.clock, actor, uin, ids,
                                                 coupon_ids=body.coupon_ids))


@router.post("/accounts/{uin}/payments", status_code=201,
             summary="Pay one or several orders (ORD-3)")
def pay(uin: Uin, body: PaymentBody, rt: Rt, actor: Caller,
        idempotency_key: Annotated[str | None, Header()] = None) -> dict:
    ids = [parse_order_ref(o) for o in body.order_ids]
    with transaction(rt.engine) as conn:
        result = orders.pay(conn, rt.clock, actor, uin, ids,
                            key=_key(body.idempotency_key, idempotency_key),
                            coupon_ids=body.coupon_ids)
    money = ("amount", "coupon", "gift", "cash", "credit")
    return {**result, **{k: format_yuan(result[k]) for k in money}}


# ---------------------------------------------------------------- operators

class DeliveryBody(StrictModel):
    uin: BodyId
    success: bool = True
    reason: OptionalText = None


@router.post("/ops/orders/{order_ref}/delivery", summary="Record a manual delivery (FRZ-3)")
def delivery(order_ref: str, body: DeliveryBody, rt: Rt, actor: Caller) -> dict:
    order_id = parse_order_ref(order_ref, "order")
    with transaction(rt.engine) as conn:
        if body.success:
            orders.deliver(conn, rt.clock, actor, order_id)
        else:
            orders.fail_delivery(conn, rt.clock, actor, order_id, body.reason or "")
        return order_json(orders.get_order(conn, actor, body.uin, order_id))


@router.post("/ops/orders/expire", summary="Expire unpaid orders past their term (ORD-2)")
def expire(rt: Rt, actor: Caller) -> dict:
    from feecenter.accounts.permissions import require_operator

    require_operator(actor)
    with transaction(rt.engine) as conn:
        return {"expired": orders.expire_unpaid(conn, rt.clock)}
