"""/api/v1 in-site message routes (站内信): parse, authenticate, call one service, render.

Any user of the account may read its messages and mark them read (the
service checks it). Times are Asia/Shanghai text.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import Field

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import BodyId, Limit, Offset, StrictModel, Uin
from feecenter.clock import business_time_text
from feecenter.db.engine import transaction
from feecenter.errors import invalid
from feecenter.notifications import service as notifications
from feecenter.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]


def message_json(message: dict) -> dict:
    return {**message, "created_at": business_time_text(message["created_at"]),
            "read_at": business_time_text(message["read_at"]) if message["read_at"] else None}


@router.get("/accounts/{uin}/messages", summary="In-site messages / 站内信")
def list_messages(uin: Uin, rt: Rt, actor: Caller, unread: bool = False, offset: Offset = 0,
                  limit: Limit = 20) -> dict:
    with rt.engine.connect() as conn:
        page = notifications.list_messages(conn, actor, uin, unread_only=unread, offset=offset,
                                           limit=limit)
    return {**page, "items": [message_json(m) for m in page["items"]]}


class MarkRead(StrictModel):
    ids: list[BodyId] | None = Field(default=None, max_length=notifications.MAX_MARK_IDS,
                                  description="message ids; omit with all=true")
    all: bool = Field(default=False, description="mark every unread message read")


@router.post("/accounts/{uin}/messages/read", summary="Mark in-site messages read / 标为已读")
def mark_read(uin: Uin, body: MarkRead, rt: Rt, actor: Caller) -> dict:
    if body.ids is None and not body.all:
        raise invalid("ids", "请给出消息 ID，或设置 all=true", "give ids, or all=true")
    with transaction(rt.engine) as conn:
        marked = notifications.mark_read(conn, rt.clock, actor, uin,
                                         None if body.all else body.ids)
        unread = notifications.list_messages(conn, actor, uin, unread_only=True,
                                             limit=1)["unread"]
    return {"marked": marked, "unread": unread}
