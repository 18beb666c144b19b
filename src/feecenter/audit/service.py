"""Audit use cases: record an action in the audit log (inside the caller's
transaction, so it commits or rolls back with the action), and list it for
operators."""

from __future__ import annotations

import json

from sqlalchemy import Connection, insert, select

from feecenter.accounts.permissions import Actor, require_operator
from feecenter.audit.tables import audit_log
from feecenter.clock import Clock, db_time


def record_audit(conn: Connection, clock: Clock, actor: Actor, action: str, uin: int | None,
                 detail: dict) -> None:
    conn.execute(insert(audit_log).values(
        actor=actor.label, action=action, uin=uin, created_at=db_time(clock.now()),
        detail=json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)))


def list_audit(conn: Connection, actor: Actor, uin: int | None = None, limit: int = 100):
    require_operator(actor)
    stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if uin is not None:
        stmt = stmt.where(audit_log.c.uin == uin)
    return [dict(r) for r in conn.execute(stmt).mappings()]
