"""/api/v1 routes for postpaid bill lines (L3) and the monthly precision difference.

Thin adapter: parses, calls ``feecenter.settlement.service`` (which checks the
FINANCE permission) and renders fen as yuan strings ("12.30") and 1e-8 yuan
amounts as 8-decimal strings ("0.16666650").
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import Limit, Offset, QueryId, Uin
from feecenter.money import format_rated, format_yuan
from feecenter.present.bills import bill_line_json
from feecenter.runtime import Runtime
from feecenter.settlement import service as settlement

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]

@router.get("/accounts/{uin}/bill-lines",
            summary="Postpaid L3 bill lines (filters, paging); month on the statistic period")
def list_bill_lines(uin: Uin, rt: Rt, actor: Caller, month: str | None = None,
                    product: str | None = None, resource_id: str | None = None,
                    project_id: QueryId = None, kind: str | None = None, offset: Offset = 0,
                    limit: Limit = 20) -> dict:
    filters = {"month": month, "product": product, "resource_id": resource_id,
               "project_id": project_id, "kind": kind}
    with rt.engine.connect() as conn:
        page = settlement.list_bill_lines(conn, actor, uin, filters, offset, limit)
    return {"statistic_period": page["statistic_period"], "total": page["total"],
            "offset": offset, "limit": limit,
            "items": [bill_line_json(line) for line in page["items"]]}


@router.get("/accounts/{uin}/precision-difference",
            summary="SET-3: the month's billing precision difference (月度计费精度差异)")
def precision_difference(uin: Uin, month: str, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        out = settlement.monthly_precision_difference(conn, actor, uin, month)
    return {**out, "difference": format_rated(out["difference"]),
            "discounted_total": format_rated(out["discounted_total"]),
            "deducted_total": format_yuan(out["deducted_total"])}
