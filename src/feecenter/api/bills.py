"""/api/v1 routes for postpaid bill lines (L3), the monthly precision difference and
the statistic period with its one-way switch (BIL-3).

Thin adapter: parses, calls ``feecenter.settlement.service`` (which checks the
FINANCE permission) and renders fen as yuan strings ("12.30") and 1e-8 yuan
amounts as 8-decimal strings ("0.16666650").
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import Field

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import Limit, Offset, QueryId, StrictModel, Uin
from feecenter.clock import business_time_text
from feecenter.db.engine import transaction
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
    return {"statistic_period": page["statistic_period"], "switched_in": page["switched_in"],
            "total": page["total"],
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


def _period_json(out: dict) -> dict:
    when = out.get("switched_at")
    return {**out, "switched_at": business_time_text(when) if when else None}


@router.get("/accounts/{uin}/bills/statistic-period",
            summary="BIL-3: the bills' statistic period, its switch and the rules to acknowledge")
def get_statistic_period(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return _period_json(settlement.describe_statistic_period(conn, actor, uin))


class SwitchBody(StrictModel):
    period: str = Field(default="usage_time", max_length=40,
                        description="usage_time: the only way a switch goes")
    acknowledged: bool = Field(default=False, description="true: the rules shown are accepted")
    acknowledgement_version: str | None = Field(default=None, max_length=40,
                                                description="the version of the rules shown")


@router.post("/accounts/{uin}/bills/statistic-period",
             summary="BIL-3: switch to the usage-time period, once, with acknowledgement")
def switch_statistic_period(uin: Uin, body: SwitchBody, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        out = settlement.switch_statistic_period(
            conn, rt.clock, actor, uin, period=body.period, acknowledged=body.acknowledged,
            acknowledgement_version=body.acknowledgement_version)
    return _period_json(out)


class OperatorSwitchBody(StrictModel):
    period: str = Field(default="usage_time", max_length=40)
    request_note: str = Field(default="", max_length=600,
                              description="the customer's request (e.g. its ticket)")


@router.post("/ops/accounts/{uin}/bills/statistic-period",
             summary="BIL-3: an operator switches an account to usage time on its request")
def switch_statistic_period_for(uin: Uin, body: OperatorSwitchBody, rt: Rt,
                                actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        out = settlement.switch_statistic_period_for(
            conn, rt.clock, actor, uin, period=body.period, request_note=body.request_note)
    return _period_json(out)
