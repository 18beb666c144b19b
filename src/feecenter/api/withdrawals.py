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
from feecenter.money import format_yuan, parse_yuan
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


# ---------------------------------------------------------------- operators: paying out (WDR-2..5)
# One block of its own (branch wdr-payout): the payout queue, payout batches (CSV out,
# the bank's result CSV in), failed withdrawals and their two ways out. The services
# check require_operator and audit every step.

from feecenter.present.withdrawals import payout_leg_json  # noqa: E402
from feecenter.withdrawals import payouts  # noqa: E402


class ResultBody(StrictModel):
    """The bank's result CSV as its lines (JSON strings carry no line breaks)."""

    lines: Annotated[list[Annotated[str, Field(max_length=1000)]],
                     Field(min_length=1, max_length=payouts.MAX_RESULT_ROWS + 1,
                           description="the CSV's lines: leg_id,result,reason then one per leg")]


class ReasonBody(StrictModel):
    reason: Text


class PayOfflineBody(ReasonBody):
    bank: BankBody


@router.get("/ops/payouts", summary="WDR-3/5: bank payouts waiting for a batch / 待打款")
def payout_queue(rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return {"items": [payout_leg_json(leg) for leg in payouts.payout_queue(conn, actor)]}


@router.post("/ops/payout-batches", status_code=201,
             summary="WDR-3/5: export the queued bank payouts as a batch (CSV) / 导出打款批次")
def export_batch(rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        batch = payouts.export_batch(conn, rt.clock, actor)
    return {**batch, "amount_yuan": format_yuan(batch["amount"])}


@router.post("/ops/payout-batches/{batch_id}/result",
             summary="WDR-3/5: import the bank's result of a batch / 导入打款结果")
def import_batch_result(batch_id: PathId, body: ResultBody, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return payouts.import_batch_result(conn, rt.clock, actor, batch_id,
                                           "\n".join(body.lines))


@router.get("/ops/withdrawals/failed", summary="WDR-5: failed withdrawals to review / 打款失败待审核")
def failed_reviews(rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return {"items": [withdrawal_json(w) for w in payouts.failed_reviews(conn, actor)]}


@router.post("/ops/withdrawals/{withdrawal_id}/pay-offline",
             summary="WDR-5: pay a failed withdrawal to a bank account / 改为线下打款")
def pay_offline(withdrawal_id: PathId, body: PayOfflineBody, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return withdrawal_json(payouts.pay_offline(conn, rt.clock, actor, withdrawal_id,
                                                   body.bank.model_dump(), reason=body.reason))


@router.post("/ops/withdrawals/{withdrawal_id}/return",
             summary="WDR-5: return a failed withdrawal to cash / 退回现金余额")
def return_to_cash(withdrawal_id: PathId, body: ReasonBody, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        done = payouts.return_to_cash(conn, rt.clock, actor, withdrawal_id, reason=body.reason)
    return {**withdrawal_json(done), "returned": format_yuan(done["returned"])}
