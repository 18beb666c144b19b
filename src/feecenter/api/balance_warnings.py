"""/api/v1 routes of the balance warning (XTR-2; docs/balance-warning.md): the
account's settings with the current estimate, and the owner's change of them.
The service checks who may (reading: finance; changing: the owner)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import Field

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import StrictModel, Uin, Yuan
from feecenter.balance_warnings import rules, service
from feecenter.db.engine import transaction
from feecenter.errors import invalid
from feecenter.money import format_yuan, parse_yuan
from feecenter.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]


def warning_json(found: dict) -> dict:
    """Money as yuan strings; ``days``/``amount`` null: off / not set; ``days_left`` null:
    no postpaid spending in the last 24 hours, no estimate."""
    return {"days": found["days"],
            "amount": None if found["amount"] is None else format_yuan(found["amount"]),
            "available": format_yuan(found["available"]),
            "spent_24h": format_yuan(found["spent_24h"]), "days_left": found["days_left"],
            "warn_by_days": found["by_days"], "warn_by_amount": found["by_amount"]}


@router.get("/accounts/{uin}/balance-warning",
            summary="Balance warning settings and the days-left estimate (XTR-2) / 余额预警")
def get_balance_warning(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return warning_json(service.estimate(conn, rt.clock, actor, uin))


class BalanceWarningBody(StrictModel):
    """Only the fields given change; ``days: null`` turns the days warning off,
    ``amount: null`` removes the warning amount."""

    days: Annotated[int, Field(ge=rules.MIN_DAYS, le=rules.MAX_DAYS)] | None = None
    amount: Yuan | None = None


@router.put("/accounts/{uin}/balance-warning",
            summary="Change the balance warning settings (XTR-2, the owner only)")
def put_balance_warning(uin: Uin, body: BalanceWarningBody, rt: Rt, actor: Caller) -> dict:
    given = body.model_fields_set
    if not given:
        raise invalid("days", "请指定 days 或 amount", "give days or amount")
    changes = {}
    if "days" in given:
        changes["days"] = body.days
    if "amount" in given:
        changes["amount"] = None if body.amount is None else parse_yuan(body.amount, "amount")
    with transaction(rt.engine) as conn:
        service.update_settings(conn, rt.clock, actor, uin, **changes)
        return warning_json(service.estimate(conn, rt.clock, actor, uin))
