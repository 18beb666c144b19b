"""/api/v1 catalog routes (ORD-5): parse, authenticate, call one service, render.

Customers read the catalog and ask for quotes; operators load catalog files
and set account discounts, contract prices and fixed prices. Rated amounts
and prices are yuan strings with 8 decimals, fen amounts yuan strings with 2,
quantities decimal strings in the item's unit, times Asia/Shanghai.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from feecenter.accounts.permissions import Actor, require_operator
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import (BusinessTime, Code, Digits, Limit, OptionalText, Rated,
                                  StrictModel, Uin)
from feecenter.catalog import rules
from feecenter.catalog import service as catalog
from feecenter.clock import parse_business_time
from feecenter.db.engine import transaction
from feecenter.errors import invalid
from feecenter.money import format_rated, parse_rated
from feecenter.present.catalog import item_json, price_list_json, product_json, quote_json
from feecenter.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]

MAX_BODY_BYTES = 5_000_000


# ---------------------------------------------------------------- rendering

def _setting_json(row: dict) -> dict:
    out = {k: v for k, v in row.items() if k not in ("starts_at", "ends_at", "created_at",
                                                     "price", "item_id")}
    out.update(starts_at=catalog.time_text(row["starts_at"]),
               ends_at=catalog.time_text(row.get("ends_at")),
               created_at=catalog.time_text(row.get("created_at")))
    if "price" in row:
        out["price"] = format_rated(row["price"])
    return out


def _when(text: str | None, field: str):
    return parse_business_time(text, field) if text else None


# ---------------------------------------------------------------- customers: read

@router.get("/catalog/products", summary="Products / 产品列表 (ORD-5)")
def list_products(rt: Rt, actor: Caller) -> list[dict]:
    with rt.engine.connect() as conn:
        return [product_json(p) for p in catalog.list_products(conn)]


@router.get("/catalog/products/{code}", summary="A product with its items and current prices")
def get_product(code: str, rt: Rt, actor: Caller, at: str | None = None) -> dict:
    when = _when(at, "at") or rt.clock.now()
    with rt.engine.connect() as conn:
        detail = catalog.product_detail(conn, code, when)
    return {**product_json(detail["product"]), "items": [item_json(i) for i in detail["items"]],
            "prices": [price_list_json(v) for v in detail["prices"]]}


@router.get("/catalog/products/{code}/price-lists",
            summary="Price-list history of a product / 刊例价历史")
def price_history(code: str, rt: Rt, actor: Caller, item: str | None = None,
                  region: str | None = None, pay_mode: str | None = None) -> list[dict]:
    with rt.engine.connect() as conn:
        versions = catalog.price_lists_of(conn, code, item=item, region=region,
                                          pay_mode=pay_mode)
    return [price_list_json(v) for v in versions]


@router.get("/catalog/regions", summary="Regions / 地域")
def list_regions(rt: Rt, actor: Caller) -> list[dict]:
    with rt.engine.connect() as conn:
        return catalog.list_regions(conn)


@router.get("/accounts/{uin}/quote", summary="Price inquiry for this account / 询价")
def get_quote(uin: Uin, rt: Rt, actor: Caller, product: str, item: str, region: str,
              pay_mode: str, quantity: str = "1",
              months: Annotated[int | None, Digits, Query(ge=1, le=rules.MAX_MONTHS)] = None,
              at: str | None = None) -> dict:
    qty = rules.parse_quantity(quantity, "quantity")
    when = _when(at, "at") or rt.clock.now()
    with rt.engine.connect() as conn:
        quote = catalog.quote_for(conn, actor, uin, product, item, region, pay_mode, qty, when,
                                  months)
    return quote_json(quote)


@router.get("/accounts/{uin}/pricing",
            summary="The account's discounts, contract and fixed prices (finance)")
def account_pricing(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        data = catalog.account_pricing(conn, actor, uin)
    return {"discounts": [_setting_json(r) for r in data["discounts"]],
            "prices": [_setting_json(r) for r in data["prices"]]}


# ---------------------------------------------------------------- operators: write

@router.post("/ops/catalog", summary="Load a catalog YAML file (operator, all or nothing)")
async def load_catalog(request: Request, rt: Rt, actor: Caller,
                       source: str | None = None) -> dict:
    """Body: the YAML text (``Content-Type: application/yaml`` or ``text/plain``),
    or JSON ``{"yaml": "...", "source": "name.yaml"}``."""
    require_operator(actor)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise invalid("body", "目录文件过大", "the catalog file is too large")
    try:
        raw = body.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("body", "目录文件必须是 UTF-8 文本", "the catalog file must be UTF-8 text") from None
    text = raw
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("yaml"), str):
            raise invalid("yaml", "JSON 请求体须为 {\"yaml\": \"…\", \"source\": \"…\"}",
                          'a JSON body must be {"yaml": "...", "source": "..."}')
        text = payload["yaml"]
        source = source or payload.get("source")

    def _load() -> dict:
        with transaction(rt.engine) as conn:
            return catalog.load_catalog(conn, rt.clock, actor, text, source or "api-upload.yaml")

    return await run_in_threadpool(_load)


@router.get("/ops/catalog/loads", summary="Catalog files loaded (operator)")
def list_loads(rt: Rt, actor: Caller, limit: Limit = 50) -> list[dict]:
    require_operator(actor)
    with rt.engine.connect() as conn:
        rows = catalog.list_loads(conn, limit)
    return [{**r, "loaded_at": catalog.time_text(r["loaded_at"])} for r in rows]


class DiscountRequest(StrictModel):
    discount_bp: int = Field(ge=1, le=10000,
                             description="basis points: 8500 = 85%, 10000 = no discount")
    product: Code | None = Field(default=None, description="one product; default: all")
    start: BusinessTime | None = Field(default=None, description="default: now")
    end: BusinessTime | None = None
    note: OptionalText = None


@router.put("/ops/accounts/{uin}/discounts", summary="Set an account discount (operator, audited)")
def set_discount(uin: Uin, body: DiscountRequest, rt: Rt, actor: Caller) -> dict:
    start, end = _when(body.start, "start"), _when(body.end, "end")
    with transaction(rt.engine) as conn:
        row = catalog.set_discount(conn, rt.clock, actor, uin, body.discount_bp,
                                   product=body.product, start=start, end=end, note=body.note)
    return _setting_json(row)


class AgreedPriceRequest(StrictModel):
    product: Code
    item: Code
    pay_mode: Literal["prepaid", "postpaid"]
    region: Code | None = Field(default=None, description="one region; default: all")
    start: BusinessTime | None = None
    end: BusinessTime | None = None
    note: OptionalText = None


class ContractPriceRequest(AgreedPriceRequest):
    unit_price: Rated = Field(description='yuan per unit (per unit per month if prepaid), up to '
                                        '8 decimals, e.g. "150.00"')


class FixedPriceRequest(AgreedPriceRequest):
    amount_per_month: Rated = Field(description='yuan per month whatever the quantity, e.g. "999.00"')


def _price(text: str, field: str) -> int:
    value = parse_rated(text, field)
    if value < 0:
        raise invalid(field, "价格不能为负数", "the price must not be negative")
    return value


@router.put("/ops/accounts/{uin}/contract-prices",
            summary="Set a contract price 合同价 (operator, audited)")
def set_contract_price(uin: Uin, body: ContractPriceRequest, rt: Rt, actor: Caller) -> dict:
    price = _price(body.unit_price, "unit_price")
    start, end = _when(body.start, "start"), _when(body.end, "end")
    with transaction(rt.engine) as conn:
        row = catalog.set_contract_price(conn, rt.clock, actor, uin, product=body.product,
                                         item=body.item, pay_mode=body.pay_mode,
                                         unit_price=price, region=body.region, start=start,
                                         end=end, note=body.note)
    return _setting_json(row)


@router.put("/ops/accounts/{uin}/fixed-prices",
            summary="Set a fixed price 一口价 (operator, audited)")
def set_fixed_price(uin: Uin, body: FixedPriceRequest, rt: Rt, actor: Caller) -> dict:
    price = _price(body.amount_per_month, "amount_per_month")
    start, end = _when(body.start, "start"), _when(body.end, "end")
    with transaction(rt.engine) as conn:
        row = catalog.set_fixed_price(conn, rt.clock, actor, uin, product=body.product,
                                      item=body.item, pay_mode=body.pay_mode,
                                      amount_per_month=price, region=body.region, start=start,
                                      end=end, note=body.note)
    return _setting_json(row)
