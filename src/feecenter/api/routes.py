"""/api/v1 routes: parse, authenticate, call one service, render (yuan strings).

Customer endpoints live under /accounts/{uin}; the service layer decides who
may see what (ACC-2). Operator endpoints live under /ops and need an
operator key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query
from pydantic import Field

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import Actor, require_operator
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import (BusinessTime, Digits, Key, Limit, Offset, OptionalText,
                                  QueryId, StrictModel, Text, Uin, Yuan)
from feecenter.audit.service import list_audit
from feecenter.auth import service as auth
from feecenter.clock import business_time_text, parse_business_time
from feecenter.db.engine import transaction
from feecenter.funds import service as funds
from feecenter.ledger.reconcile import reconcile
from feecenter.money import format_yuan, parse_yuan
from feecenter.present.funds import balance_json, entry_json, movement_json
from feecenter.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]

# ---------------------------------------------------------------- customer endpoints

@router.get("/accounts/{uin}", summary="Account profile / 账号信息")
def get_account(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        row = accounts.get_account(conn, actor, uin)
        row["state"] = accounts.account_state(conn, rt.clock, uin)
    row["created_at"] = business_time_text(row["created_at"])
    return row


@router.get("/accounts/{uin}/balance", summary="Balance (BAL-1, BAL-2, BAL-7) / 账户余额")
def get_balance(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return balance_json(funds.balance_view(conn, rt.clock, actor, uin))


@router.get("/accounts/{uin}/transactions", summary="Transaction list (BAL-5) / 收支明细")
def list_transactions(uin: Uin, rt: Rt, actor: Caller,
                      type: Annotated[list[str], Query()] = [],  # noqa: A002, B006
                      deduct_mode: Annotated[list[str], Query()] = [],  # noqa: B006
                      start: str | None = None, end: str | None = None,
                      product: str | None = None, offset: Offset = 0, limit: Limit = 20) -> dict:
    query = funds.StatementQuery(
        start=parse_business_time(start, "start") if start else None,
        end=parse_business_time(end, "end") if end else None,
        action_types=tuple(type), deduct_modes=tuple(deduct_mode), product_code=product,
        offset=offset, limit=limit)
    with rt.engine.connect() as conn:
        page = funds.list_transactions(conn, actor, uin, query)
    return {"total": page["total"],
            "totals": {k: format_yuan(v) for k, v in page["totals"].items()},
            "items": [entry_json(e) for e in page["items"]]}


class NewUser(StrictModel):
    login: str = Field(min_length=1, max_length=100)
    role: Literal["finance", "admin", "readonly"]
    kind: Literal["subuser", "collaborator"] = "subuser"
    email: OptionalText = None  # where the user receives its notifications
    phone: str | None = Field(default=None, max_length=30)


@router.get("/accounts/{uin}/users", summary="Sub-users / 子用户")
def list_users(uin: Uin, rt: Rt, actor: Caller) -> list[dict]:
    with rt.engine.connect() as conn:
        return [{**u, "created_at": business_time_text(u["created_at"])}
                for u in accounts.list_users(conn, actor, uin)]


@router.post("/accounts/{uin}/users", status_code=201, summary="Add a sub-user / 添加子用户")
def add_user(uin: Uin, body: NewUser, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        user_id = accounts.add_user(conn, rt.clock, actor, uin, body.login, body.role, body.kind,
                                    email=body.email, phone=body.phone)
    return {"user_id": user_id, "login": body.login, "role": body.role}


class NewRole(StrictModel):
    role: Literal["finance", "admin", "readonly"]


@router.put("/accounts/{uin}/users/{login}/role", summary="Change a sub-user's role / 更改角色")
def set_role(uin: Uin, login: Annotated[str, Path(min_length=1, max_length=100)], body: NewRole,
             rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        user = accounts.set_role(conn, rt.clock, actor, uin, login, body.role)
    return {"user_id": user["id"], "login": user["login"], "role": user["role"]}


@router.get("/accounts/{uin}/storefronts", summary="Storefronts sharing the fee account (ACC-3)")
def list_storefronts(uin: Uin, rt: Rt, actor: Caller) -> list[dict]:
    with rt.engine.connect() as conn:
        return accounts.list_storefronts(conn, actor, uin)


class NewKeyRequest(StrictModel):
    login: str | None = Field(default=None, min_length=1, max_length=100,
                              description="sub-user login; default: the owner")


@router.get("/accounts/{uin}/api-keys", summary="API keys (secret keys are never shown again)")
def list_keys(uin: Uin, rt: Rt, actor: Caller) -> list[dict]:
    with rt.engine.connect() as conn:
        return [{**k, "created_at": business_time_text(k["created_at"])}
                for k in auth.list_api_keys(conn, actor, uin)]


@router.post("/accounts/{uin}/api-keys", status_code=201, summary="Create an API key")
def create_key(uin: Uin, body: NewKeyRequest, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        key = auth.create_api_key(conn, rt.clock, actor, uin, body.login)
    return {"secret_id": key.secret_id, "secret_key": key.secret_key}


@router.post("/api-keys/{secret_id}/{action}", summary="Enable or disable an API key")
def set_key_state(secret_id: Annotated[str, Path(min_length=1, max_length=64)], action: Literal["enable", "disable"], rt: Rt,
                  actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        auth.set_key_state(conn, rt.clock, actor, secret_id, action == "enable")
    return {"secret_id": secret_id, "state": "enabled" if action == "enable" else "disabled"}


# ---------------------------------------------------------------- operator endpoints

class NewAccountRequest(StrictModel):
    name: Text
    personal_name: OptionalText = None
    enterprise_name: OptionalText = None
    uscc: str | None = Field(default=None, max_length=18)
    email: OptionalText = None
    phone: str | None = Field(default=None, max_length=20)


@router.post("/ops/accounts", status_code=201, summary="Create a customer account (operator)")
def create_account(body: NewAccountRequest, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        uin = accounts.create_account(conn, rt.clock, actor, accounts.NewAccount(**body.model_dump()))
    return {"uin": uin}


class AdjustmentRequest(StrictModel):
    sub_account: Literal["cash", "gift"]
    amount: Yuan = Field(description='signed yuan, e.g. "100.00" or "-5.00"')
    reason: Text
    idempotency_key: Key | None = None


@router.post("/ops/accounts/{uin}/adjustments", status_code=201,
             summary="Adjust cash or gift (operator, audited)")
def adjust(uin: Uin, body: AdjustmentRequest, rt: Rt, actor: Caller,
           idempotency_key: Annotated[str | None, Header()] = None) -> dict:
    amount = parse_yuan(body.amount, "amount", allow_negative=True)
    key = body.idempotency_key or idempotency_key
    if not key:
        from feecenter.errors import invalid

        raise invalid("idempotency_key", "调账必须提供幂等键（Idempotency-Key 头或请求体字段）",
                      "an idempotency key is required (Idempotency-Key header or body field)")
    with transaction(rt.engine) as conn:
        movement = funds.adjust(conn, rt.clock, actor, uin, sub_account=body.sub_account,
                                amount=amount, reason=body.reason, key=key)
    with rt.engine.connect() as conn:
        view = funds.balance_view(conn, rt.clock, actor, uin)
    return {**movement_json(movement), "balance": balance_json(view)}


class CreditRequest(StrictModel):
    credit_limit: Yuan
    temp_credit: Yuan = "0.00"
    temp_credit_end: BusinessTime | None = None


@router.put("/ops/accounts/{uin}/credit", summary="Set credit control (BAL-7, operator)")
def set_credit(uin: Uin, body: CreditRequest, rt: Rt, actor: Caller) -> dict:
    end: datetime | None = (parse_business_time(body.temp_credit_end, "temp_credit_end")
                            if body.temp_credit_end else None)
    with transaction(rt.engine) as conn:
        view = funds.grant_credit(
            conn, rt.clock, actor, uin,
            credit_limit=parse_yuan(body.credit_limit, "credit_limit", allow_zero=True),
            temp_credit=parse_yuan(body.temp_credit, "temp_credit", allow_zero=True),
            temp_credit_end=end)
    return balance_json(view)


@router.get("/ops/audit", summary="Operators' audit log")
def audit(rt: Rt, actor: Caller, uin: QueryId = None,
          limit: Annotated[int, Digits, Query(ge=1, le=1000)] = 100) -> list[dict]:
    with rt.engine.connect() as conn:
        rows = list_audit(conn, actor, uin, limit)
    return [{**r, "created_at": business_time_text(r["created_at"])} for r in rows]


@router.get("/ops/reconcile", summary="Recompute every balance from postings (BAL-6)")
def reconcile_all(rt: Rt, actor: Caller, uin: QueryId = None) -> dict:
    require_operator(actor)
    with rt.engine.connect() as conn:
        differences = reconcile(conn, uin)
    return {"clean": not differences, "differences": [d.to_dict() for d in differences]}
