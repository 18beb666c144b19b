"""/api/v1 route for consumption bills (消耗账单, BIL-4).

Thin adapter: calls ``feecenter.bills.consumption`` (which checks the FINANCE
permission and refuses a bad month on ``month``) and renders fen as yuan
strings ("12.30"), as the other bill routes do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import Uin
from feecenter.bills import consumption
from feecenter.money import format_yuan
from feecenter.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]
_AMOUNTS = ("prepaid", "postpaid", "total")


@router.get("/accounts/{uin}/consumption-bills/{month}",
            summary="BIL-4: a month's consumption bill (prepaid spread over service days, "
                    "postpaid by usage time), by product and resource")
def consumption_bill(uin: Uin, month: str, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        bill = consumption.consumption_bill(conn, actor, uin, month)
    return {"uin": bill["uin"], "month": bill["month"],
            **{f"{name}_total": format_yuan(bill[f"{name}_total"])
               for name in ("prepaid", "postpaid")},
            "total": format_yuan(bill["total"]),
            "by_product": [{"product": p["product"], **_yuan(p),
                            "resources": [{"resource_id": r["resource_id"], **_yuan(r)}
                                          for r in p["resources"]]}
                           for p in bill["by_product"]],
            "why_not_line_by_line": bill["why_not_line_by_line"]}


def _yuan(amounts: dict) -> dict:
    return {name: format_yuan(amounts[name]) for name in _AMOUNTS}
