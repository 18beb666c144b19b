"""/api/v1 routes for the arrears lifecycle (ARR-3): an account's cases and events.

Thin adapter over ``feecenter.arrears.service`` (which checks FINANCE); times
in business time, amounts in yuan strings.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import QueryId, Uin
from feecenter.arrears import service as arrears
from feecenter.money import format_yuan
from feecenter.present.text import time_text
from feecenter.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]

MAX_EVENTS = 1000


@router.get("/accounts/{uin}/arrears/cases", summary="ARR-3: arrears cases, oldest first")
def list_cases(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        cases = arrears.list_cases(conn, actor, uin)
    return {"items": [{"id": c["id"], "state": c["state"], "started_at": time_text(c["started_at"]),
                       "opened_at": time_text(c["opened_at"]), "ended_at": time_text(c["ended_at"]),
                       "arrears_at_open": format_yuan(c["arrears_at_open"])} for c in cases]}


@router.get("/accounts/{uin}/arrears/events",
            summary="ARR-3: account events of the arrears lifecycle (reminders, stop, recycle, restore)")
def list_events(uin: Uin, rt: Rt, actor: Caller, case_id: QueryId = None) -> dict:
    with rt.engine.connect() as conn:
        events = arrears.list_events(conn, actor, uin, case_id=case_id, limit=MAX_EVENTS)
    return {"items": [{**e, "at": time_text(e["at"])} for e in events]}


@router.get("/accounts/{uin}/arrears/outlook",
            summary="ARR-3: what happens next to each postpaid resource of the open case, and when")
def outlook(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        steps = arrears.outlook(conn, rt.clock, actor, uin)
    return {"items": [{**s, "at": time_text(s["at"])} for s in steps]}
