"""/api/v1 corporate-remittance routes (RMT-1..8): customers read their receiving
details, their remittance records, manage payer names and ask for re-verification;
operators upload a bank statement (the raw file as the body, streamed to a
temporary file), list imports and pushes, work the queues, assign and release,
refund money of no account and the remainder of a legacy transfer (RMT-10/11);
the platform bank pushes one transfer at a time, signed with a shared secret
instead of TC3 (remittances.push_log records every push, RMT-2, and limits
failed ones per client address: 429).
"""

from __future__ import annotations

import hashlib
import tempfile
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, raw_path, runtime
from feecenter.api.strict import Limit, Offset, PathId, StrictModel, Uin
from feecenter.auth.service import SignedRequest, authenticate, check_headers
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError
from feecenter.present.remittances import (import_json, legacy_json, payer_json, push_json,
                                           remittance_json, summary_json)
from feecenter.remittances import cases, push_log
from feecenter.remittances import service as remittances
from feecenter.remittances.statement_import import import_statement
from feecenter.remittances.statements import DEFAULT_MAX_BYTES
from feecenter.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]
IMPORTS = "/ops/remittance-imports"
IMPORTS_PATH = router.prefix + IMPORTS   # strict.py lets this body through to be streamed
UPLOAD_LIMIT = DEFAULT_MAX_BYTES
SPOOL_CHUNK = 1 << 20
PUSH_HEADERS = ("x-fc-push-timestamp", "x-fc-push-nonce", "x-fc-push-signature")


class PayloadTooLarge(FeeCenterError):
    code = "PayloadTooLarge"
    http_status = 413


# ---------------------------------------------------------------- customers

class PayerName(StrictModel):
    name: str = Field(min_length=1, max_length=200, description="the payer's name as the bank "
                                                                "shows it (signs the agreement)")


@router.get("/accounts/{uin}/remittance-details",
            summary="Receiving details for a corporate remittance (RMT-1, RMT-5) / 对公汇款收款信息")
def receiving_details(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:  # the code is allocated on first use
        return remittances.receiving_details(conn, rt.clock, actor, uin)


@router.get("/accounts/{uin}/remittances",
            summary="An account's remittance records, newest first / 对公汇款记录")
def list_remittances(uin: Uin, rt: Rt, actor: Caller, state: str | None = None,
                     offset: Offset = 0, limit: Limit = 20) -> dict:
    with rt.engine.connect() as conn:
        page = remittances.list_remittances(conn, actor, uin, state=state, offset=offset,
                                            limit=limit)
    return {"total": page["total"], "items": [remittance_json(r) for r in page["items"]]}


@router.get("/remittances/{remittance_id}", summary="One remittance record / 汇款记录详情")
def get_remittance(remittance_id: PathId, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return remittance_json(remittances.get_remittance(conn, actor, remittance_id))


@router.post("/accounts/{uin}/remittances/{remittance_id}/reverify",
             summary="Ask for re-verification of the payer (RMT-5) / 重新审核")
def reverify(uin: Uin, remittance_id: PathId, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return remittance_json(remittances.request_reverification(conn, rt.clock, actor, uin,
                                                                  remittance_id))


@router.get("/accounts/{uin}/remittance-payers",
            summary="Registered payer names (RMT-4) / 付款人名称")
def list_payers(uin: Uin, rt: Rt, actor: Caller, include_removed: bool = False) -> dict:
    with rt.engine.connect() as conn:
        rows = remittances.list_payers(conn, actor, uin, include_removed=include_removed)
    return {"items": [payer_json(r) for r in rows]}


@router.post("/accounts/{uin}/remittance-payers", status_code=201,
             summary="Register a payer name: signs the third-party payment agreement (RMT-4) "
                     "/ 登记付款人")
def register_payer(uin: Uin, body: PayerName, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return payer_json(remittances.register_payer(conn, rt.clock, actor, uin, body.name))


@router.delete("/accounts/{uin}/remittance-payers/{payer_id}",
               summary="Remove a payer name / 删除付款人")
def remove_payer(uin: Uin, payer_id: PathId, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return payer_json(remittances.remove_payer(conn, rt.clock, actor, uin, payer_id))


# ---------------------------------------------------------------- operators

class Assignment(StrictModel):
    uin: int = Field(ge=1, le=2**63 - 1, description="the account the remittance belongs to")


class Payout(StrictModel):
    holder: str = Field(min_length=1, max_length=200, description="收款户名 / account holder")
    bank_account: str = Field(min_length=8, max_length=30,
                              description="收款银行账号 / bank account, 8-30 digits")
    bank: str = Field(min_length=1, max_length=200, description="开户银行 / bank")
    branch: str = Field(default="", max_length=200, description="开户支行 / branch")
    location: str = Field(default="", max_length=200, description="开户行所在地 / location")


class UnassignedRefund(StrictModel):
    payout: Payout
    reason: str = Field(min_length=1, max_length=500, description="原因 / why it is refunded")


@router.post(IMPORTS, status_code=201,
             summary="Import a bank statement (MT940 or camt.053; the raw file as the body, at "
                     "most 200 MB; all or nothing, RMT-2) / 导入银行对账单",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/octet-stream": {"schema": {"type": "string",
                                                         "format": "binary"}}}}})
async def import_file(request: Request, rt: Rt,
                      format: Annotated[str | None, Query(  # noqa: A002 (the query's name)
                          max_length=20, description="mt940 | camt.053 | camt.053.001.02 | "
                                                     "camt.053.001.08; default: detected")] = None,
                      ) -> dict:
    headers = {k.lower(): v for k, v in request.headers.items()}
    window_s = rt.settings.signature_window_s
    await run_in_threadpool(check_headers, rt.engine, rt.clock, headers, window_s=window_s)
    with tempfile.NamedTemporaryFile(prefix="feecenter-statement-") as spool:
        body_sha256 = await _spool(request, spool)
        signed = SignedRequest(method=request.method, path=raw_path(request.scope),
                               query=request.scope.get("query_string", b"").decode("latin-1"),
                               headers=headers, body=b"", body_sha256=body_sha256)
        actor = await run_in_threadpool(authenticate, rt.engine, rt.clock, signed,
                                        window_s=window_s)

        def run() -> dict:
            with transaction(rt.engine) as conn:
                return summary_json(import_statement(conn, rt.clock, actor, spool.name, fmt=format))

        return await run_in_threadpool(run)


async def _spool(request: Request, spool) -> str:
    """Write the body to ``spool`` as it arrives, within the limit; its sha256."""
    hasher, size = hashlib.sha256(), 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > UPLOAD_LIMIT:
            raise PayloadTooLarge(f"对账单过大（上限 {UPLOAD_LIMIT} 字节）",
                                  f"the statement is too large (at most {UPLOAD_LIMIT} bytes)",
                                  field="body")
        hasher.update(chunk)
        await run_in_threadpool(spool.write, chunk)
    await run_in_threadpool(spool.flush)
    return hasher.hexdigest()


@router.get(IMPORTS, summary="Statement imports, newest first / 对账单导入记录")
def list_imports(rt: Rt, actor: Caller, offset: Offset = 0, limit: Limit = 50) -> dict:
    with rt.engine.connect() as conn:
        return {"items": [import_json(r) for r in remittances.list_imports(
            conn, actor, offset=offset, limit=limit)]}


@router.get("/ops/remittances",
            summary="An operators' queue: unassigned | pending | held | review_failed | flagged "
                    "| not_ours (RMT-3, RMT-6, RMT-7) / 汇款队列")
def queue(rt: Rt, actor: Caller, queue: str = Query(max_length=20),
          offset: Offset = 0, limit: Limit = 100) -> dict:
    with rt.engine.connect() as conn:
        page = remittances.operator_queue(conn, actor, queue, offset=offset, limit=limit)
    return {"queue": queue, "total": page["total"],
            "items": [remittance_json(r) for r in page["items"]]}


@router.post("/ops/remittances/{remittance_id}/assign",
             summary="Give an unassigned (or held) remittance to an account (RMT-3) / 分配")
def assign(remittance_id: PathId, body: Assignment, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return remittance_json(remittances.assign(conn, rt.clock, actor, remittance_id, body.uin))


@router.post("/ops/remittances/{remittance_id}/release",
             summary="Release a held CNY remittance to verification (RMT-6) / 放行")
def release(remittance_id: PathId, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return remittance_json(remittances.release(conn, rt.clock, actor, remittance_id))


@router.post("/ops/remittances/{remittance_id}/refund",
             summary="Refund money of no account to its payer, with the payout details the "
                     "operator collected (RMT-11) / 无主汇款退款")
def refund_unassigned(remittance_id: PathId, body: UnassignedRefund, rt: Rt,
                      actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return cases.refund_unassigned(conn, rt.clock, actor, remittance_id,
                                       payout=body.payout.model_dump(), reason=body.reason)


@router.get("/ops/remittances/{remittance_id}/legacy",
            summary="A legacy transfer: what legacy forms credited, what is left, the refund "
                    "of the remainder (RMT-10, RMT-11) / 旧账号汇款")
def legacy_transfer(remittance_id: PathId, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return legacy_json(cases.legacy_transfer(conn, actor, remittance_id))


@router.post("/ops/remittances/{remittance_id}/refund-remainder",
             summary="Refund to its payer what no legacy form claimed of a legacy transfer, "
                     "once (RMT-10, RMT-11) / 旧账号汇款剩余款项退款")
def refund_legacy_remainder(remittance_id: PathId, body: UnassignedRefund, rt: Rt,
                            actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return cases.refund_legacy_remainder(conn, rt.clock, actor, remittance_id,
                                             payout=body.payout.model_dump(), reason=body.reason)


@router.get("/ops/remittance-pushes",
            summary="The bank's pushes as received, accepted or refused (RMT-2) / 银行推送记录")
def list_pushes(rt: Rt, actor: Caller, outcome: str | None = Query(default=None, max_length=20),
                offset: Offset = 0, limit: Limit = 50) -> dict:
    with rt.engine.connect() as conn:
        page = push_log.list_pushes(conn, actor, outcome=outcome, offset=offset, limit=limit)
    return {"total": page["total"], "items": [push_json(r) for r in page["items"]]}


# ---------------------------------------------------------------- the bank's push

@router.post("/remittances/push", include_in_schema=False)
async def bank_push(request: Request, rt: Rt) -> JSONResponse:
    """One transfer pushed by the platform bank (docs/remittance.md): 200 accepted (or a
    harmless duplicate), 401 forged or late, 409 replayed, 400 malformed or refused,
    429 when the address sent too many failed pushes this minute (not recorded), 503
    when no secret is configured. Every other push is recorded."""
    secret = push_log.push_secret()  # PushNotConfigured -> 503
    body = await request.body()
    timestamp, nonce, signature = (request.headers.get(name, "") for name in PUSH_HEADERS)
    client = request.client.host if request.client else "unknown"
    result = await run_in_threadpool(push_log.receive_push, rt.engine, rt.clock, body,
                                     client=client, timestamp=timestamp, nonce=nonce,
                                     signature=signature, secret=secret)
    if result.accepted:
        return JSONResponse({"code": "SUCCESS", "push_id": result.push_id,
                             "outcome": result.outcome,
                             "remittance": remittance_json(result.remittance)})
    error = result.error.to_dict()
    # forged is 401 also when the unverified body was refused first (too large)
    status = {push_log.REPLAYED: 409, push_log.FORGED: 401}.get(result.outcome,
                                                                result.error.http_status)
    retry = result.error.details.get("retry_after_s") if result.outcome == push_log.LIMITED \
        else None
    return JSONResponse({"code": "FAIL", "push_id": result.push_id, "outcome": result.outcome,
                         "error": error}, status_code=status,
                        headers={"Retry-After": str(retry)} if retry is not None else None)

