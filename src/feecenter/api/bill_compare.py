"""/api/v1 route of the month-over-month explainer (环比分析, BIL-8): the cost of one
month against an earlier one, broken into its causes, read from
``feecenter.bills.month_over_month`` (which checks FINANCE and both months).
Thin adapter: fen as yuan strings (``present.bill_compare``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import Uin
from feecenter.bills import month_over_month
from feecenter.present.bill_compare import comparison_json
from feecenter.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]


@router.get("/accounts/{uin}/bills/{month}/compare",
            summary="BIL-8: the month's cost against an earlier month (default the month "
                    "before), the difference broken into new purchases, renewals, unified "
                    "expiry, expired discounts, price changes, usage growth and more")
def compare(uin: Uin, month: str, rt: Rt, actor: Caller, previous: str | None = None) -> dict:
    with rt.engine.connect() as conn:
        out = month_over_month.explain(conn, actor, uin, month, previous)
    return comparison_json(out)
