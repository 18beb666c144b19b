"""/api/v1 routes for cost bills (费用账单, BIL-1): the L0 overview and the L1 / L2 / L3
summaries of a month, read from ``feecenter.bills.service`` (which checks the
FINANCE permission and the month). Thin adapter: fen as yuan strings, 1e-8 yuan
amounts as 8-decimal strings, a contract-price line's list price, discount and
original cost as null ("-", BIL-6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import Limit, Offset, Uin
from feecenter.bills import service as bills
from feecenter.errors import invalid
from feecenter.money import format_rated
from feecenter.present.cost_bills import line_json, sums_json
from feecenter.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]
LEVELS = ("product", "project", "region", "pay_mode", "tag", "resources", "lines")


@router.get("/accounts/{uin}/bills/{month}/overview",
            summary="BIL-1 L0: the month's cost, by pay mode, and the precision difference")
def overview(uin: Uin, month: str, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        out = bills.overview(conn, actor, uin, month)
    day = out["refreshed_through"]
    return {**out, "total": sums_json(out["total"]),
            "by_pay_mode": [sums_json(group) for group in out["by_pay_mode"]],
            "precision_difference": format_rated(out["precision_difference"]),
            "refreshed_through": day.isoformat() if day else None}


@router.get("/accounts/{uin}/bills/{month}/summary",
            summary="BIL-1 L1 (by product, project, region, pay_mode, tag), L2 (resources), "
                    "L3 (lines, paged)")
def summary(uin: Uin, month: str, rt: Rt, actor: Caller, by: str = "product",
            tag_key: str | None = None, offset: Offset = 0, limit: Limit = 20) -> dict:
    if by not in LEVELS:
        raise invalid("by", "by 须为 " + "、".join(LEVELS), "by must be one of " + ", ".join(LEVELS))
    with rt.engine.connect() as conn:
        if by == "lines":
            total, lines = bills.month_lines_page(conn, actor, uin, month, offset, limit)
            return {"uin": uin, "month": month, "by": by, "total": total,
                    "offset": offset, "limit": limit, "items": [line_json(line) for line in lines]}
        if by == "resources":
            groups = bills.resource_bills(conn, actor, uin, month)
        else:
            groups = bills.summary(conn, actor, uin, month, by, tag_key)
    return {"uin": uin, "month": month, "by": by, "items": [sums_json(g) for g in groups]}
