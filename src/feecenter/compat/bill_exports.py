"""Billing API 2018-07-09 ``DescribeBillDownloadUrl`` (BIL-7 over the download center,
``bills.exports``): the download link of an account's bill file of a month.

FileType: ``billSummary`` (L1 by product), ``billResource`` (L2), ``billDetail``
(L3 lines) as CSV; ``billOverview`` (Tencent: the L0 PDF) is our L0 as CSV;
``billPack`` (Tencent: a pack of every level) is not offered (refused naming
FileType). The first call requests the export and starts it; the next calls of
the same day find the same export (its request key is the file type, month and
business day): ``Ready`` 0 while it is written, 1 with ``DownloadUrl`` (a signed
link, valid one day, as Tencent's) once done. ``ChildUin`` may name only the
caller's own account (no group accounts here). docs/api.md.
"""

from __future__ import annotations

from datetime import timedelta
from threading import Thread

from feecenter.accounts.permissions import Actor
from feecenter.bills import exports
from feecenter.clock import business_date
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, PermissionDenied, invalid
from feecenter.runtime import Runtime

FILE_TYPES = {"billOverview": "overview", "billSummary": "product",
              "billResource": "resources", "billDetail": "lines"}
LINK_TTL = timedelta(days=1)


def _customer_uin(actor: Actor) -> int:
    if actor.uin is None:
        raise PermissionDenied("该接口需使用客户账号的密钥调用",
                               "this action needs the key of a customer account")
    return actor.uin


def _level(params: dict) -> str:
    file_type = params.get("FileType")
    if file_type not in FILE_TYPES:
        raise invalid("FileType", "FileType 须为 billOverview、billSummary、billResource 或 "
                      "billDetail（不提供账单包 billPack）", "FileType must be billOverview, "
                      "billSummary, billResource or billDetail (no billPack here)")
    return FILE_TYPES[file_type]


def _check_child(params: dict, uin: int) -> None:
    for child in params.get("ChildUin") or []:
        if child != str(uin):
            raise PermissionDenied("无权下载其他账号的账单", "no access to another account's "
                                   "bills", field="ChildUin")


def describe_bill_download_url(rt: Runtime, actor: Actor, params: dict) -> dict:
    uin = _customer_uin(actor)
    level = _level(params)
    _check_child(params, uin)
    month = params.get("Month")
    if not month:
        raise invalid("Month", "缺少参数 Month", "missing parameter Month")
    day = business_date(rt.clock.now()).isoformat()
    settings = exports.export_settings(rt.settings)  # a configuration error: nothing written
    try:
        with transaction(rt.engine) as conn:
            row = exports.request_export(conn, rt.clock, actor, uin, month, level, "csv",
                                         request_key=f"tc:{params['FileType']}:{month}:{day}")
    except FeeCenterError as exc:
        exc.field = {"month": "Month"}.get(exc.field, exc.field)
        raise
    if row["state"] == "queued":  # written beside the answer; the job takes any left over
        Thread(target=exports.process_export, args=(rt.engine, rt.clock, row["id"], settings),
               daemon=True).start()
    if row["state"] != "done":
        return {"Ready": 0, "DownloadUrl": None}
    link = exports.download_url(row, LINK_TTL, now=rt.clock.now(), settings=settings)
    return {"Ready": 1, "DownloadUrl": link}


ACTIONS = {"DescribeBillDownloadUrl": describe_bill_download_url}
