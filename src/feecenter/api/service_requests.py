"""/api/v1 routes for service requests (工单, SRV-1..2): the kinds and their fields;
a customer files a request (JSON), uploads attachments (multipart, one file per call),
lists and reads its requests with their history, withdraws one, downloads an
attachment; operators work the queue: take, resolve, reject. The service checks who
may do what; attachments are served as downloads of their sniffed type, never rendered.
"""

from __future__ import annotations

from typing import Annotated, Any
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import Limit, Offset, PathId, QueryId, StrictModel, Uin
from feecenter.db.engine import transaction
from feecenter.errors import invalid
from feecenter.present.service_requests import (
    attachment_json,
    download_headers,
    request_json,
)
from feecenter.runtime import Runtime
from feecenter.service_requests import service as srv
from feecenter.service_requests.rules import MAX_ATTACHMENT_BYTES

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]


class NewRequest(StrictModel):
    kind: str = Field(min_length=1, max_length=40, description="a kind's code (GET /service-request-kinds)")
    fields: dict[str, Any] = Field(description="the kind's fields by name; amounts as yuan "
                                               "strings, booleans as true/false, the rest text")


class Note(StrictModel):
    note: str | None = Field(default=None, max_length=500)


class Reason(StrictModel):
    reason: str = Field(min_length=1, max_length=500)


@router.get("/service-request-kinds", summary="Service request kinds and their fields / 工单类型")
def list_kinds(actor: Caller) -> dict:
    return {"items": srv.list_kinds()}


@router.post("/accounts/{uin}/service-requests", status_code=201,
             summary="File a service request (SRV-1) / 提交工单")
def file_request(uin: Uin, body: NewRequest, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return request_json(srv.file_request(conn, rt.clock, actor, uin, body.kind, body.fields))


@router.get("/accounts/{uin}/service-requests",
            summary="An account's service requests, newest first / 我的工单")
def list_requests(uin: Uin, rt: Rt, actor: Caller, state: str | None = None,
                  kind: str | None = None, offset: Offset = 0, limit: Limit = 20) -> dict:
    with rt.engine.connect() as conn:
        page = srv.list_requests(conn, rt.clock, actor, uin, state=state, kind=kind,
                                 offset=offset, limit=limit)
    return {"total": page["total"], "items": [request_json(r) for r in page["items"]]}


@router.get("/service-requests/{request_id}",
            summary="One service request with its history and attachments / 工单详情")
def get_request(request_id: PathId, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return request_json(srv.get_request(conn, rt.clock, actor, request_id))


@router.post("/service-requests/{request_id}/withdraw",
             summary="Withdraw a submitted service request / 撤销工单")
def withdraw(request_id: PathId, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return request_json(srv.withdraw(conn, rt.clock, actor, request_id))


@router.post("/service-requests/{request_id}/attachments", status_code=201,
             summary="Upload one attachment (multipart/form-data, field \"file\"; PDF, PNG or "
                     "JPEG, at most 5 MB) / 上传附件")
async def upload(request_id: PathId, request: Request, rt: Rt, actor: Caller) -> dict:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise invalid("file", "请以 multipart/form-data 上传文件（字段 file）",
                      "upload the file as multipart/form-data (field \"file\")")
    form = await request.form(max_files=1, max_fields=1)
    file = form.get("file")
    if file is None or isinstance(file, str):
        raise invalid("file", "缺少文件（字段 file）", "the file is missing (field \"file\")")
    content = await file.read(MAX_ATTACHMENT_BYTES + 1)
    upload_ = srv.Upload(filename=file.filename or "", content=content)

    def store() -> dict:
        with transaction(rt.engine) as conn:
            return srv.add_attachment(conn, rt.clock, actor, request_id, upload_)

    return attachment_json(await run_in_threadpool(store))


@router.get("/service-requests/{request_id}/attachments/{attachment_id}",
            summary="Download an attachment (always as a download) / 下载附件",
            response_class=Response,
            responses={200: {"content": {"application/pdf": {}, "image/png": {},
                                         "image/jpeg": {}}}})
def download(request_id: PathId, attachment_id: PathId, rt: Rt, actor: Caller) -> Response:
    with rt.engine.connect() as conn:
        row = srv.get_attachment(conn, actor, request_id, attachment_id)
    return attachment_response(row)


def attachment_response(row: dict) -> Response:
    headers = download_headers(row)
    return Response(content=bytes(row["content"]), media_type=headers.pop("Content-Type"),
                    headers=headers)


# ---------------------------------------------------------------- operators

@router.get("/ops/service-requests",
            summary="The operators' queue, earliest due first (SRV-2) / 工单队列")
def ops_queue(rt: Rt, actor: Caller, kind: str | None = None, state: str | None = None,
              overdue: bool | None = None, uin: QueryId = None, offset: Offset = 0,
              limit: Limit = 50) -> dict:
    with rt.engine.connect() as conn:
        page = srv.queue(conn, rt.clock, actor, kind=kind, state=state, overdue=overdue,
                         uin=uin, offset=offset, limit=limit)
    return {"total": page["total"], "items": [request_json(r) for r in page["items"]]}


@router.post("/ops/service-requests/{request_id}/take",
             summary="Take a submitted request (处理中) / 受理工单")
def ops_take(request_id: PathId, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return request_json(srv.take(conn, rt.clock, actor, request_id))


@router.post("/ops/service-requests/{request_id}/resolve",
             summary="Resolve a request: runs its kind's action (SRV-2) / 解决工单")
def ops_resolve(request_id: PathId, body: Note, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return request_json(srv.resolve(conn, rt.clock, actor, request_id, body.note))


@router.post("/ops/service-requests/{request_id}/reject",
             summary="Reject a request with a reason / 驳回工单")
def ops_reject(request_id: PathId, body: Reason, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return request_json(srv.reject(conn, rt.clock, actor, request_id, body.reason))
