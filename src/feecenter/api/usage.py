"""/api/v1 routes for usage intake (operators: the platform's metering) and
postpaid resources (customers open and release them)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from feecenter.accounts.permissions import Actor
from pydantic import Field

from feecenter.api.deps import caller, runtime
from feecenter.api.strict import BodyId, Code, Key, OptionalText, StrictModel, Uin
from feecenter.clock import business_time_text
from feecenter.db.engine import transaction
from feecenter.errors import invalid
from feecenter.present.resources import resource_json
from feecenter.resources import postpaid
from feecenter.resources import service as resources
from feecenter.runtime import Runtime
from feecenter.usage import service as usage

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]
MAX_BODY = 64 * 1024 * 1024


@router.post("/ops/usage", summary="Ingest metering records (JSON lines or CSV body)")
async def ingest_usage(request: Request, rt: Rt, actor: Caller,
                       format: Literal["jsonl", "csv"] = "jsonl") -> dict:  # noqa: A002
    """The body is read whole (at most 64 MiB), then goes through the same chunked
    intake as a file (usage.service)."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise invalid("body", "单批不超过 64 MiB，请分批上报", "a batch is at most 64 MiB: split it")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("body", "请求体不是 UTF-8 编码", "the body is not UTF-8") from None
    result = await run_in_threadpool(usage.ingest, rt.engine, rt.clock, actor, text, format)
    return result.to_dict()


class OpenBody(StrictModel):
    product: Code
    region: Code
    spec_item: Code
    count: int = Field(default=1, ge=1, le=1000)
    project_id: BodyId | None = None
    name: OptionalText = None
    tags: dict[Annotated[str, Field(min_length=1, max_length=128)],
               Annotated[str, Field(max_length=256)]] | None = Field(default=None, max_length=50)
    idempotency_key: Key | None = None


@router.post("/accounts/{uin}/postpaid-resources", status_code=201,
             summary="Open a postpaid resource (arrears gate, FRZ-1 freeze)")
def open_resource(uin: Uin, body: OpenBody, rt: Rt, actor: Caller,
                  idempotency_key: Annotated[str | None, Header()] = None) -> dict:
    """``Idempotency-Key`` (header or body field, optional): a retry returns the
    resource the key opened."""
    fields = body.model_dump(exclude={"idempotency_key"})
    key = body.idempotency_key if body.idempotency_key is not None else idempotency_key
    with transaction(rt.engine) as conn:
        resource_id = postpaid.open_postpaid(conn, rt.clock, actor, uin, **fields, key=key)
        return resource_json(resources.get_resource(conn, uin, resource_id))


@router.post("/accounts/{uin}/postpaid-resources/{resource_id}/release",
             summary="Release a postpaid resource (FRZ-3: says when its freeze is released)")
def release_resource(uin: Uin, resource_id: str, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        done = postpaid.release_postpaid(conn, rt.clock, actor, uin, resource_id)
    return {"resource_id": resource_id,
            "released_at": business_time_text(done["released_at"]),
            "freeze_release_at": (business_time_text(done["freeze_release_at"])
                                  if done["freeze_release_at"] else None)}
