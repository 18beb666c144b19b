"""/api/v1 recharge routes (RCH): create an online recharge (its QR code_url, or a
mini-program payment bound to its creator, RCH-4), read
one, list an account's, ask the provider about one; and the payment provider's
notification endpoint, authenticated by the provider's own signature instead of
ours (recharges.service.handle_notification records every one, RCH-5).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import (
    ErrorBody,
    Limit,
    Offset,
    PathId,
    QueryId,
    StrictModel,
    Uin,
    Yuan,
)
from feecenter.money import parse_yuan
from feecenter.present.recharges import recharge_json
from feecenter.present.text import time_text
from feecenter.recharges import rules
from feecenter.recharges import service as recharges
from feecenter.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]
PROVIDER_DOWN = {503: {"model": ErrorBody,
                       "description": "the payment provider cannot be reached / 支付服务商暂不可用"}}


class CreateRecharge(StrictModel):
    uin: int = Field(ge=1, le=2**63 - 1, description="the account to recharge")
    amount: Yuan = Field(description="yuan, 0.01–9999999.00 (RCH-2)")
    channel: str = Field(min_length=1, max_length=20, description="wechat | qq | netbank")
    payer: str | None = Field(default=None, min_length=1, max_length=128,
                              description="payer identity the limits count by; default: the "
                                          "caller. mini_program: the creator's WeChat openid, "
                                          "required, the only payer allowed (RCH-4)")
    international_card: bool = Field(default=False,
                                     description="the payer pays with a card issued abroad (RCH-2)")
    source: str = Field(default="qr", min_length=1, max_length=20,
                        description="qr (a QR code anyone may pay) | mini_program (bound to "
                                    "payer; returns prepay_id instead of code_url, RCH-4)")


@router.post("/recharges", status_code=201, responses=PROVIDER_DOWN,
             summary="Create an online recharge (RCH) / 在线充值")
def create_recharge(body: CreateRecharge, rt: Rt, actor: Caller) -> dict:
    new = recharges.NewRecharge(amount=parse_yuan(body.amount, "amount"), channel=body.channel,
                                payer=body.payer, intl_card=body.international_card,
                                source=body.source)
    return recharge_json(recharges.create(rt.engine, rt.clock, actor, body.uin, new,
                                          rt.gateways))


@router.get("/recharges/{recharge_id}", summary="One recharge and its state / 充值记录")
def get_recharge(recharge_id: PathId, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return recharge_json(recharges.get(conn, actor, recharge_id))


@router.post("/recharges/{recharge_id}/query", responses=PROVIDER_DOWN,
             summary="Ask the provider about a recharge; credit it if paid / 查询支付结果")
def query_recharge(recharge_id: PathId, rt: Rt, actor: Caller) -> dict:
    return recharge_json(recharges.query(rt.engine, rt.clock, actor, recharge_id,
                                         rt.gateways))


@router.get("/accounts/{uin}/recharges", summary="An account's recharges, newest first / 充值记录")
def list_recharges(uin: Uin, rt: Rt, actor: Caller, state: str | None = None,
                   offset: Offset = 0, limit: Limit = 20) -> dict:
    with rt.engine.connect() as conn:
        page = recharges.list_recharges(conn, actor, uin, state=state, offset=offset, limit=limit)
    return {"total": page["total"], "items": [recharge_json(r) for r in page["items"]]}


@router.get("/ops/recharges/notifications",
            summary="The provider's notifications as received, newest first (RCH-5) / 支付通知日志")
def list_notifications(rt: Rt, actor: Caller, recharge_id: QueryId = None,
                       limit: Limit = 100) -> dict:
    with rt.engine.connect() as conn:
        rows = recharges.list_notifications(conn, actor, recharge_id=recharge_id, limit=limit)
    return {"items": [{**r, "received_at": time_text(r["received_at"])} for r in rows]}


@router.post("/recharges/notify/{channel}", include_in_schema=False)
async def notify(channel: str, request: Request, rt: Rt) -> JSONResponse:
    """The provider's payment notification: 200 acknowledges it (the provider stops
    retrying), 400 refuses it (recorded, nothing credited)."""
    gateway = rt.gateways.get(channel) if channel in rules.CHANNELS else None
    if gateway is None:
        return JSONResponse({"code": "FAIL", "message": "unknown channel"}, status_code=404)
    body = await request.body()
    result = await run_in_threadpool(recharges.handle_notification, rt.engine, rt.clock,
                                     gateway, request.headers, body)
    if result.accepted:
        return JSONResponse({"code": "SUCCESS", "message": "成功"})
    return JSONResponse({"code": "FAIL", "message": result.reason or "refused"}, status_code=400)
