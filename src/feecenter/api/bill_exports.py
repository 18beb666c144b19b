"""/api/v1 routes of the download center (BIL-7): request an export of an account's
bill (month, level, format), list the exports, read one with its progress and,
when done, its signed download link; the download itself, whose signature is the
credential (no login). Thin adapter over ``feecenter.bills.exports``, which checks
the FINANCE permission, the input and the links. A request starts its export
right after the answer (a background task); the hourly job picks up any left."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Query
from fastapi.responses import FileResponse
from pydantic import Field

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import Key, PathId, StrictModel, Uin
from feecenter.bills import exports
from feecenter.db.engine import transaction
from feecenter.present.bill_exports import export_json
from feecenter.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]


class ExportRequest(StrictModel):
    month: str = Field(max_length=20, description="YYYY-MM")
    level: str = Field(max_length=20, description="overview | product | project | region | "
                                                  "pay_mode | tag | resources | lines")
    fmt: str = Field(default="csv", max_length=10, description="csv | xlsx | focus (lines)")
    tag_key: str | None = Field(default=None, max_length=200, description="level tag only")
    request_key: Key | None = None


@router.post("/accounts/{uin}/bill-exports", status_code=202,
             summary="BIL-7: request an export of a month's bill (asynchronous) / 申请导出账单")
def request_export(uin: Uin, body: ExportRequest, rt: Rt, actor: Caller, tasks: BackgroundTasks,
                   idempotency_key: Annotated[str | None, Header(max_length=128)] = None) -> dict:
    with transaction(rt.engine) as conn:
        row = exports.request_export(conn, rt.clock, actor, uin, body.month, body.level,
                                     body.fmt, tag_key=body.tag_key,
                                     request_key=body.request_key or idempotency_key)
    settings = exports.export_settings(rt.settings)
    if row["state"] == "queued":
        tasks.add_task(exports.process_export, rt.engine, rt.clock, row["id"], settings)
    return export_json(row)


@router.get("/accounts/{uin}/bill-exports", summary="BIL-7: the account's bill exports / 下载中心")
def list_exports(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        rows = exports.list_exports(conn, actor, uin)
    settings = (exports.export_settings(rt.settings)
                if any(row["state"] == "done" for row in rows) else None)
    return {"items": [_with_link(row, rt, settings) for row in rows]}


@router.get("/accounts/{uin}/bill-exports/{export_id}",
            summary="BIL-7: one export, its progress and, when done, its signed link")
def get_export(uin: Uin, export_id: PathId, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        row = exports.get_export(conn, actor, uin, export_id)
    settings = exports.export_settings(rt.settings) if row["state"] == "done" else None
    return _with_link(row, rt, settings)


def _with_link(row: dict, rt: Runtime, settings: exports.ExportSettings | None) -> dict:
    link = (exports.download_url(row, exports.LINK_TTL, now=rt.clock.now(), settings=settings)
            if row["state"] == "done" else None)
    return export_json(row, link)


@router.get("/bill-exports/{export_id}/download", response_class=FileResponse,
            summary="BIL-7: download an export through its signed link (no login)",
            responses={200: {"description": "the file / 文件", "content": {
                media: {} for media in exports.MEDIA_TYPES.values()}},
                410: {"description": "the link or the export has expired / 链接或导出已过期",
                      "content": {"application/json": {"schema": {
                          "$ref": "#/components/schemas/ErrorBody"}}}}})
def download(export_id: PathId, rt: Rt,
             expires: Annotated[str, Query(max_length=20)] = "",
             signature: Annotated[str, Query(max_length=128)] = "") -> FileResponse:
    settings = exports.export_settings(rt.settings)
    with rt.engine.connect() as conn:
        path, name = exports.open_download(conn, rt.clock, export_id, expires, signature,
                                           settings)
    return FileResponse(path, filename=name, media_type=exports.media_type(name),
                        headers={"cache-control": "no-store"})
