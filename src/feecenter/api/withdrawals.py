"""/api/v1 routes for withdrawals (WDR-1..6; docs/withdrawal.md, "REST"): the
withdrawable amount with every part, the preview and the application (the money is
held at once), the account's withdrawals and one withdrawal.

Thin adapter: each route calls one service of ``feecenter.withdrawals``, which checks
the FINANCE permission (operators pass) and the input; amounts are yuan strings in
and out (``present.withdrawals``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from pydantic import Field

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import BodyId, Key, Limit, Offset, PathId, StrictModel, Text, Uin, Yuan
from feecenter.db.engine import transaction
from feecenter.errors import invalid
from feecenter.money import parse_yuan
from feecenter.present.withdrawals import preview_json, withdrawable_json, withdrawal_json
from feecenter.runtime import Runtime
from feecenter.withdrawals import service

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]
Route = Annotated[str, Field(min_length=1, max_length=10, description="original | offline")]
State = Annotated[str | None, Query(max_length=12,
                                    description="in_progress | failed | paid | returned")]


@router.get("/accounts/{uin}/withdrawable",
            summary="WDR-1, WDR-7: the withdrawable amount and its parts / 可提现金额")
def get_withdrawable(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return withdrawable_json(service.withdrawable(conn, rt.clock, actor, uin))


class PreviewBody(StrictModel):
    amount: Yuan
    route: Route
    recharge_ids: Annotated[list[BodyId] | None, Field(max_length=service.MAX_PICKED)] = Field(
        default=None, description="original route: only these recharges (absent: LIFO)")


class BankBody(StrictModel):
    holder: Text
    account_no: Annotated[str, Field(min_length=1, max_length=30)]
    bank: Annotated[str, Field(min_length=1, max_length=100)]
    branch: Annotated[str, Field(min_length=1, max_length=100)]


class ApplyBody(PreviewBody):
    bank: BankBody | None = Field(default=None, description="offline route: the bank account")
    key: Key | None = None


def _key(body_key: str | None, header_key: str | None) -> str:
    key = body_key or header_key
    if not key:
        raise invalid("key", "提现申请必须提供幂等键（Idempotency-Key 头或 key 字段）",
                      "a withdrawal needs an idempotency key (Idempotency-Key header or key "
                      "field)")
    return key


@router.post("/accounts/{uin}/withdrawals/preview",
             summary="WDR-2, WDR-3: the legs and estimates a withdrawal would make / 提现预览")
def preview(uin: Uin, body: PreviewBody, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return preview_json(service.preview(
            conn, rt.clock, actor, uin, amount=parse_yuan(body.amount, "amount"),
            route=body.route, recharge_ids=body.recharge_ids))


@router.post("/accounts/{uin}/withdrawals", status_code=201,
             summary="WDR-1..4: apply for a withdrawal, the money held at once / 申请提现")
def apply(uin: Uin, body: ApplyBody, rt: Rt, actor: Caller,
          idempotency_key: Annotated[str | None, Header(max_length=128)] = None) -> dict:
    key = _key(body.key, idempotency_key)
    with transaction(rt.engine) as conn:
        return withdrawal_json(service.apply(
            conn, rt.clock, actor, uin, amount=parse_yuan(body.amount, "amount"),
            route=body.route, key=key, recharge_ids=body.recharge_ids,
            bank=None if body.bank is None else body.bank.model_dump()))


@router.get("/accounts/{uin}/withdrawals", summary="WDR: the account's withdrawals / 提现记录")
def list_withdrawals(uin: Uin, rt: Rt, actor: Caller, state: State = None, offset: Offset = 0,
                     limit: Limit = 20) -> dict:
    with rt.engine.connect() as conn:
        items = service.list_withdrawals(conn, actor, uin, state=state, limit=limit,
                                         offset=offset)
    return {"items": [withdrawal_json(w) for w in items]}


@router.get("/withdrawals/{withdrawal_id}", summary="WDR: one withdrawal and its legs / 提现详情")
def get_withdrawal(withdrawal_id: PathId, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return withdrawal_json(service.get(conn, actor, withdrawal_id))
