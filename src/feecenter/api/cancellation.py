"""/api/v1 routes for account cancellation (注销, ACC-5; docs/cancellation.md): what
blocks it, and the cancellation. Thin adapter: one service of
``feecenter.cancellation`` (it checks the permissions: FINANCE to read, the owner to
cancel); yuan strings out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import Key, StrictModel, Uin
from feecenter.cancellation import service
from feecenter.db.engine import transaction
from feecenter.errors import invalid
from feecenter.present.cancellation import cancellation_json, status_json
from feecenter.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]


class CancelBody(StrictModel):
    idempotency_key: Key | None = None


@router.get("/accounts/{uin}/cancellation",
            summary="ACC-5: what blocks cancelling the account / 注销条件")
def get_cancellation(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return status_json(service.status(conn, rt.clock, actor, uin))


@router.post("/accounts/{uin}/cancellation",
             summary="ACC-5: cancel the account (owner only) / 注销账号")
def cancel(uin: Uin, rt: Rt, actor: Caller, body: CancelBody | None = None,
           idempotency_key: Annotated[str | None, Header()] = None) -> dict:
    key = (body.idempotency_key if body else None) or idempotency_key
    if not key:
        raise invalid("idempotency_key", "必须提供幂等键（Idempotency-Key 头或请求体字段）",
                      "an idempotency key is required (Idempotency-Key header or body field)")
    with transaction(rt.engine) as conn:
        return cancellation_json(service.cancel(conn, rt.clock, actor, uin, key=key))
