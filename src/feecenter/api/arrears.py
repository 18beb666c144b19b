"""/api/v1 routes for the arrears lifecycle (ARR-3): an account's cases and events;
and the operators' arrears measures (ARR-6): take offline, reclaim, liquidated
damages, set-off, and the list of measures taken.

Thin adapter over ``feecenter.arrears.service`` (which checks FINANCE) and
``feecenter.arrears.measures`` (operators); times in business time, amounts in
yuan strings.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import Digits, Key, QueryId, StrictModel, Text, Uin, Yuan
from feecenter.arrears import measures
from feecenter.arrears import service as arrears
from feecenter.db.engine import transaction
from feecenter.errors import invalid
from feecenter.money import format_yuan, parse_yuan
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


# ---------------------------------------------------------------- operators' measures (ARR-6)

MEASURES = "/ops/accounts/{uin}/arrears-measures"
_MONEY = ("amount", "cash", "arrears", "owed_after", "advances", "refund", "returned")
Limit = Annotated[int, Digits, Query(ge=1, le=measures.MAX_LIST)]


class MeasureRequest(StrictModel):
    reason: Text
    idempotency_key: Key | None = None


class DamagesRequest(StrictModel):
    amount: Yuan
    reason: Text
    idempotency_key: Key | None = None


class SetOffRequest(StrictModel):
    idempotency_key: Key | None = None


def _key(body_key: str | None, header_key: str | None) -> str:
    key = body_key or header_key
    if not key:
        raise invalid("idempotency_key", "欠费处置必须提供幂等键（Idempotency-Key 头或请求体字段）",
                      "an idempotency key is required (Idempotency-Key header or body field)")
    return key


def measure_json(m: dict) -> dict:
    return {**m, "at": time_text(m["at"]),
            **{k: format_yuan(m[k]) for k in _MONEY if m.get(k) is not None}}


@router.post(MEASURES + "/offline", status_code=201,
             summary="ARR-6: take all of an account's services offline (operator, audited) / 全部停服")
def take_offline(uin: Uin, body: MeasureRequest, rt: Rt, actor: Caller,
                 idempotency_key: Annotated[str | None, Header()] = None) -> dict:
    return _resource_measure(measures.take_offline, uin, body, rt, actor, idempotency_key)


@router.post(MEASURES + "/reclaim", status_code=201,
             summary="ARR-6: reclaim all of an account's resources, data not kept (operator) / 全部回收")
def reclaim_all(uin: Uin, body: MeasureRequest, rt: Rt, actor: Caller,
                idempotency_key: Annotated[str | None, Header()] = None) -> dict:
    return _resource_measure(measures.reclaim_all, uin, body, rt, actor, idempotency_key)


def _resource_measure(measure, uin: int, body: MeasureRequest, rt: Runtime, actor: Actor,
                      header_key: str | None) -> dict:
    """Take offline or reclaim: the same input (a reason and a key), one transaction."""
    key = _key(body.idempotency_key, header_key)
    with transaction(rt.engine) as conn:
        return measure_json(measure(conn, rt.clock, actor, uin, reason=body.reason, key=key))


@router.post(MEASURES + "/damages", status_code=201,
             summary="ARR-6: charge liquidated damages: cash, the rest arrears (operator) / 违约金")
def charge_damages(uin: Uin, body: DamagesRequest, rt: Rt, actor: Caller,
                   idempotency_key: Annotated[str | None, Header()] = None) -> dict:
    amount = parse_yuan(body.amount, "amount")
    key = _key(body.idempotency_key, idempotency_key)
    with transaction(rt.engine) as conn:
        return measure_json(measures.charge_damages(conn, rt.clock, actor, uin, amount=amount,
                                                    reason=body.reason, key=key))


@router.post(MEASURES + "/set-off", status_code=201,
             summary="ARR-6: set arrears off against cash the account holds (operator) / 欠费抵扣")
def set_off(uin: Uin, rt: Rt, actor: Caller, body: SetOffRequest | None = None,
            idempotency_key: Annotated[str | None, Header()] = None) -> dict:
    key = _key(body.idempotency_key if body else None, idempotency_key)
    with transaction(rt.engine) as conn:
        return measure_json(measures.set_off(conn, rt.clock, actor, uin, key=key))


@router.get(MEASURES, summary="ARR-6: the measures taken on an account, newest first (operator)")
def account_measures(uin: Uin, rt: Rt, actor: Caller, limit: Limit = 100) -> dict:
    with rt.engine.connect() as conn:
        return {"items": [measure_json(m) for m in measures.list_measures(conn, actor, uin,
                                                                          limit=limit)]}


@router.get("/ops/arrears-measures",
            summary="ARR-6: the measures taken on every account, newest first (operator)")
def all_measures(rt: Rt, actor: Caller, limit: Limit = 100) -> dict:
    with rt.engine.connect() as conn:
        return {"items": [measure_json(m) for m in measures.list_measures(conn, actor,
                                                                          limit=limit)]}
