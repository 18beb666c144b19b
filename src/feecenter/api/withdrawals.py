"""/api/v1 routes for withdrawals (WDR; docs/withdrawal.md): for now the withdrawable
amount with every part (WDR-1, WDR-7). Thin adapter: one service of
``feecenter.withdrawals`` (it checks the FINANCE permission); yuan strings out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import Uin
from feecenter.present.withdrawals import withdrawable_json
from feecenter.runtime import Runtime
from feecenter.withdrawals import service

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]


@router.get("/accounts/{uin}/withdrawable",
            summary="WDR-1, WDR-7: the withdrawable amount and its parts / 可提现金额")
def get_withdrawable(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return withdrawable_json(service.withdrawable(conn, rt.clock, actor, uin))
