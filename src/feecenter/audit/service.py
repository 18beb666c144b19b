"""Audit use cases: record an action in the audit log (inside the caller's
transaction, so it commits or rolls back with the action), and list it for
operators."""

from __future__ import annotations

import json

from sqlalchemy import Connection, func, insert, select

from feecenter.accounts.permissions import Actor, require_operator
from feecenter.audit.tables import audit_log
from feecenter.clock import Clock, db_time


def record_audit(conn: Connection, clock: Clock, actor: Actor, action: str, uin: int | None,
                 detail: dict) -> None:
    conn.execute(insert(audit_log).values(
        actor=actor.label, action=action, uin=uin, created_at=db_time(clock.now()),
        detail=json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)))


def list_audit(conn: Connection, actor: Actor, uin: int | None = None, limit: int = 100, *,
               action: str | None = None, by: str | None = None):
    """Newest first; ``action`` exact, ``by`` a part of the actor's label
    (``operator:alice``, ``cli:root`` …), any case."""
    require_operator(actor)
    stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if uin is not None:
        stmt = stmt.where(audit_log.c.uin == uin)
    if action:
        stmt = stmt.where(audit_log.c.action == action)
    if by:
        stmt = stmt.where(func.lower(audit_log.c.actor).contains(by.lower(), autoescape=True))
    return [dict(r) for r in conn.execute(stmt).mappings()]


def list_actions(conn: Connection, actor: Actor) -> list[str]:
    """The actions the log holds, for a filter's choices."""
    require_operator(actor)
    return list(conn.execute(select(audit_log.c.action).distinct()
                             .order_by(audit_log.c.action)).scalars())
