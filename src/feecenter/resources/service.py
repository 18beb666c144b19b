"""Resource and project use cases."""

from __future__ import annotations

import json
import secrets
import string
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, update

from feecenter.accounts.permissions import MANAGE_RESOURCES, READ_PROFILE, Actor, require
from feecenter.audit.service import record_audit
from feecenter.clock import Clock, db_time
from feecenter.db import sending
from feecenter.db.precompiled import Precompiled
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import Conflict, invalid, not_found
from feecenter.inputs import plain_text
from feecenter.resources.tables import projects, resource_stops, resources

DEFAULT_PROJECT = "默认项目"
_ID_ALPHABET = string.ascii_lowercase + string.digits
STATES = ("running", "stopped", "recycled")


# ---------------------------------------------------------------- projects

def _project_name(name: str) -> str:
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise invalid("name", "项目名称须为 1–100 个字符", "project name must be 1-100 characters")
    return name


def default_project(conn: Connection, clock: Clock, uin: int) -> int:
    """The account's default project, made on first use; two first uses at once
    (two first purchases) both get the one the winner made."""
    find = select(projects.c.id).where(projects.c.uin == uin, projects.c.is_default.is_(True))
    found = conn.execute(find).scalar()
    if found is not None:
        return found
    conn.execute(insert_if_absent(conn, projects, ["uin", "name"]).values(
        uin=uin, name=DEFAULT_PROJECT, is_default=True, created_at=db_time(clock.now())))
    return conn.execute(find).scalar_one()


def create_project(conn: Connection, clock: Clock, actor: Actor, uin: int, name: str) -> int:
    require(actor, uin, MANAGE_RESOURCES)
    name = _project_name(name)
    default_project(conn, clock, uin)
    if conn.execute(select(projects.c.id).where(projects.c.uin == uin,
                                                projects.c.name == name)).first():
        raise Conflict(f"项目已存在：{name}", f"project already exists: {name}", field="name")
    project_id = conn.execute(insert(projects).values(uin=uin, name=name, is_default=False,
                                                      created_at=db_time(clock.now()))
                              .returning(projects.c.id)).scalar_one()
    record_audit(conn, clock, actor, "create_project", uin, {"project_id": project_id, "name": name})
    return project_id


def get_project(conn: Connection, uin: int, project_id: int) -> dict:
    row = conn.execute(select(projects).where(projects.c.id == project_id,
                                              projects.c.uin == uin)).mappings().first()
    if row is None:
        raise not_found("project_id", "项目", "project", project_id)
    return dict(row)


def rename_project(conn: Connection, clock: Clock, actor: Actor, uin: int, project_id: int,
                   name: str) -> None:
    """Later charges carry the new name; earlier ones keep the name they had (SET-7)."""
    require(actor, uin, MANAGE_RESOURCES)
    name = _project_name(name)
    get_project(conn, uin, project_id)
    if conn.execute(select(projects.c.id).where(projects.c.uin == uin, projects.c.name == name,
                                                projects.c.id != project_id)).first():
        raise Conflict(f"项目已存在：{name}", f"project already exists: {name}", field="name")
    conn.execute(update(projects).where(projects.c.id == project_id).values(name=name))
    record_audit(conn, clock, actor, "rename_project", uin, {"project_id": project_id, "name": name})


def list_projects(conn: Connection, clock: Clock, actor: Actor, uin: int) -> list[dict]:
    require(actor, uin, READ_PROFILE)
    default_project(conn, clock, uin)
    return [dict(r) for r in conn.execute(select(projects).where(projects.c.uin == uin)
                                          .order_by(projects.c.id)).mappings()]


# ---------------------------------------------------------------- resources

def new_resource_id(product_code: str) -> str:
    return f"{product_code}-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


def create_resource(conn: Connection, clock: Clock, *, uin: int, product_code: str, region: str,
                    project_id: int, pay_mode: str, spec_item: str | None, quantity: int,
                    period_start: datetime | None = None, period_end: datetime | None = None,
                    name: str | None = None, tags: dict | None = None,
                    resource_id: str | None = None, idempotency_key: str | None = None) -> str:
    """``idempotency_key``: the stored key of the request that opened it (postpaid)."""
    resource_id = resource_id or new_resource_id(product_code)
    sending.send(conn, _INSERT_RESOURCE, dict(
        id=resource_id, uin=uin, name=name, product_code=product_code, region=region,
        project_id=project_id, tags=json.dumps(tags or {}, ensure_ascii=False, sort_keys=True),
        pay_mode=pay_mode, spec_item=spec_item, quantity=quantity, state="running",
        period_start=db_time(period_start) if period_start else None,
        period_end=db_time(period_end) if period_end else None,
        created_at=db_time(clock.now()), idempotency_key=idempotency_key))
    return resource_id


# on the payment fast path (orders.pay delivers at once): built once, run on the driver
_INSERT_RESOURCE = Precompiled(insert(resources).values({
    name: bindparam(name, type_=resources.c[name].type)
    for name in ("id", "uin", "name", "product_code", "region", "project_id", "tags", "pay_mode",
                 "spec_item", "quantity", "state", "period_start", "period_end", "created_at",
                 "idempotency_key")}))


def resource_ref(resource_id: object) -> str:
    """A resource id as given: text the database can compare (no control character:
    a NUL is an error on PostgreSQL), at most the column's 40 characters."""
    return plain_text(resource_id, "resource_id", 40)


def get_resource(conn: Connection, uin: int, resource_id: str, *, lock: bool = False) -> dict:
    resource_id = resource_ref(resource_id)
    stmt = select(resources).where(resources.c.id == resource_id, resources.c.uin == uin)
    if lock and conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).mappings().first()
    if row is None:
        raise not_found("resource_id", "资源", "resource", resource_id)
    out = dict(row)
    out["tags"] = json.loads(out["tags"])
    return out


def list_resources(conn: Connection, actor: Actor, uin: int, *, project_id: int | None = None,
                   product_code: str | None = None, state: str | None = None) -> list[dict]:
    require(actor, uin, READ_PROFILE)
    stmt = select(resources).where(resources.c.uin == uin).order_by(resources.c.created_at,
                                                                    resources.c.id)
    if project_id is not None:
        stmt = stmt.where(resources.c.project_id == project_id)
    if product_code:
        stmt = stmt.where(resources.c.product_code == product_code)
    if state:
        stmt = stmt.where(resources.c.state == state)
    rows = [dict(r) for r in conn.execute(stmt).mappings()]
    for row in rows:
        row["tags"] = json.loads(row["tags"])
    return rows


def update_resource(conn: Connection, resource_id: str, **values) -> None:
    """Internal: orders extend periods, change specs and release resources."""
    for key in ("period_start", "period_end", "released_at"):
        if values.get(key) is not None:
            values[key] = db_time(values[key])
    conn.execute(update(resources).where(resources.c.id == resource_id).values(**values))


def stop_resource(conn: Connection, resource_id: str, at: datetime, reason: str) -> None:
    """ARR-3: the resource stops at ``at``; its usage from then on is not charged
    until ``end_stop`` (restart or destruction)."""
    resource = conn.execute(select(resources.c.uin).where(resources.c.id == resource_id)).one()
    update_resource(conn, resource_id, state="stopped")
    conn.execute(insert(resource_stops).values(resource_id=resource_id, uin=resource.uin,
                                               reason=reason, stopped_at=db_time(at)))


def end_stop(conn: Connection, resource_id: str, at: datetime, **values) -> None:
    """The resource's open stop ends at ``at``; ``values`` are its new state (running,
    or recycled with released_at)."""
    update_resource(conn, resource_id, **values)
    s = resource_stops.c
    conn.execute(update(resource_stops).where(s.resource_id == resource_id,
                                              s.ended_at.is_(None)).values(ended_at=db_time(at)))


def stop_many(conn: Connection, stops: dict[str, datetime], reason: str, *,
              expired_by: datetime, unless=None) -> list[str]:
    """RNW-6: stop several running resources at once, each at its own time (``stops``:
    resource id -> when), only those still running whose period ended by
    ``expired_by`` (a renewal paid meanwhile moved it later). One conditional UPDATE
    decides which are stopped here (a concurrent caller never stops one twice; on
    PostgreSQL rows a payment holds locked are skipped, for a later run), then one
    INSERT of their stops. ``unless``: a SQL condition on ``resources`` sparing a row
    (checked in the same UPDATE). Returns the ids stopped, in id order."""
    if not stops:
        return []
    r = resources.c
    due = select(r.id).where(r.id.in_(list(stops)), r.state == "running",
                             r.period_end <= db_time(expired_by))
    if unless is not None:
        due = due.where(~unless)
    if conn.dialect.name == "postgresql":
        due = due.order_by(r.id).with_for_update(skip_locked=True)
    stopped = sorted(conn.execute(update(resources).where(r.id.in_(due), r.state == "running")
                                  .values(state="stopped").returning(r.id, r.uin)).all())
    if stopped:
        conn.execute(insert(resource_stops), [
            {"resource_id": row.id, "uin": row.uin, "reason": reason,
             "stopped_at": db_time(stops[row.id])} for row in stopped])
    return [row.id for row in stopped]


def release_many(conn: Connection, resource_ids: list[str], reason: str, at: datetime, *,
                 unless=None) -> list[str]:
    """RNW-6: release (state recycled, ``released_at``) resources still stopped for
    ``reason``, their stop ended at ``at``; claimed by one conditional UPDATE (on
    PostgreSQL skipping rows locked by a payment). Returns the ids released."""
    if not resource_ids:
        return []
    r, s = resources.c, resource_stops.c
    stopped_for = select(s.resource_id).where(s.resource_id.in_(resource_ids), s.reason == reason,
                                              s.ended_at.is_(None))
    due = select(r.id).where(r.id.in_(resource_ids), r.state == "stopped", r.id.in_(stopped_for))
    if unless is not None:  # a SQL condition on ``resources`` sparing a row
        due = due.where(~unless)
    if conn.dialect.name == "postgresql":
        due = due.order_by(r.id).with_for_update(skip_locked=True)
    when = db_time(at)
    released = sorted(conn.execute(update(resources).where(r.id.in_(due), r.state == "stopped")
                                   .values(state="recycled", released_at=when)
                                   .returning(r.id)).scalars())
    if released:
        conn.execute(update(resource_stops).where(s.resource_id.in_(released),
                                                  s.ended_at.is_(None)).values(ended_at=when))
    return released


def stop_all(conn: Connection, uin: int, reason: str, at: datetime) -> list[dict]:
    """ARR-6: stop every running resource of the account (prepaid and postpaid) at ``at``
    for ``reason``: one conditional UPDATE claims them (rows locked in id order on
    PostgreSQL, waiting for a payment that holds one: the caller holds the account's
    balances first, the claim order), then one INSERT of their stops. Returns the
    stopped resources (id, name, product_code, region, pay_mode), in id order."""
    r = resources.c
    due = select(r.id).where(r.uin == uin, r.state == "running")
    if conn.dialect.name == "postgresql":
        due = due.order_by(r.id).with_for_update()
    stopped = sorted((dict(row) for row in conn.execute(
        update(resources).where(r.id.in_(due), r.state == "running").values(state="stopped")
        .returning(r.id, r.name, r.product_code, r.region, r.pay_mode)).mappings()),
        key=lambda row: row["id"])
    if stopped:
        conn.execute(insert(resource_stops), [
            {"resource_id": row["id"], "uin": uin, "reason": reason, "stopped_at": db_time(at)}
            for row in stopped])
    return stopped


def release_all(conn: Connection, uin: int, at: datetime) -> list[dict]:
    """ARR-6: release (state recycled, ``released_at``) every resource of the account not
    released yet, running or stopped for any reason (the recycle bin included), its
    open stop ended at ``at``; claimed by one conditional UPDATE as ``stop_all``.
    Returns the released resources (id, name, product_code, region, pay_mode,
    freeze_hold_id), in id order."""
    r, s = resources.c, resource_stops.c
    due = select(r.id).where(r.uin == uin, r.state != "recycled")
    if conn.dialect.name == "postgresql":
        due = due.order_by(r.id).with_for_update()
    when = db_time(at)
    released = sorted((dict(row) for row in conn.execute(
        update(resources).where(r.id.in_(due), r.state != "recycled")
        .values(state="recycled", released_at=when)
        .returning(r.id, r.name, r.product_code, r.region, r.pay_mode,
                   r.freeze_hold_id)).mappings()), key=lambda row: row["id"])
    if released:
        conn.execute(update(resource_stops).where(
            s.resource_id.in_([row["id"] for row in released]), s.ended_at.is_(None))
            .values(ended_at=when))
    return released


def stopped_for(conn: Connection, uin: int, reason: str) -> list[dict]:
    """The account's resources stopped now for ``reason`` (an open stop), in id order."""
    r, s = resources.c, resource_stops.c
    return [dict(row) for row in conn.execute(
        select(resources).where(r.uin == uin, r.state == "stopped", r.id.in_(
            select(s.resource_id).where(s.uin == uin, s.reason == reason, s.ended_at.is_(None))))
        .order_by(r.id)).mappings()]


def stop_spans(conn: Connection, resource_ids: list[str]) -> dict[str, list[tuple]]:
    """resource id -> its stops as (stopped_at, ended_at or None), naive UTC, in time order;
    only resources that were ever stopped."""
    s = resource_stops.c
    spans: dict[str, list[tuple]] = {}
    for row in conn.execute(select(s.resource_id, s.stopped_at, s.ended_at)
                            .where(s.resource_id.in_(resource_ids))
                            .order_by(s.resource_id, s.stopped_at)):
        spans.setdefault(row.resource_id, []).append((row.stopped_at, row.ended_at))
    return spans


def open_stops(conn: Connection, resource_ids: list[str]) -> dict[str, dict]:
    """resource id -> its open stop as {"reason", "stopped_at" (naive UTC)}, for those of
    ``resource_ids`` stopped now (ARR-3: ``reason`` "arrears")."""
    s = resource_stops.c
    if not resource_ids:
        return {}
    return {row.resource_id: {"reason": row.reason, "stopped_at": row.stopped_at}
            for row in conn.execute(select(s.resource_id, s.reason, s.stopped_at).where(
                s.resource_id.in_(list(resource_ids)), s.ended_at.is_(None)))}


def move_resources(conn: Connection, clock: Clock, actor: Actor, uin: int,
                   resource_ids: list[str], project_id: int) -> None:
    """SET-7: later charges belong to the new project (and its name at that time)."""
    require(actor, uin, MANAGE_RESOURCES)
    get_project(conn, uin, project_id)
    if not resource_ids:
        raise invalid("resource_ids", "至少指定一个资源", "name at least one resource")
    for resource_id in resource_ids:
        get_resource(conn, uin, resource_id)
    conn.execute(update(resources).where(resources.c.uin == uin, resources.c.id.in_(resource_ids))
                 .values(project_id=project_id))
    record_audit(conn, clock, actor, "move_resources", uin,
                 {"resource_ids": resource_ids, "project_id": project_id})


def rename_resource(conn: Connection, clock: Clock, actor: Actor, uin: int, resource_id: str,
                    name: str | None, tags: dict | None = None) -> None:
    require(actor, uin, MANAGE_RESOURCES)
    get_resource(conn, uin, resource_id)
    values: dict = {"name": (name or "").strip() or None}
    if tags is not None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise invalid("tags", "标签必须是字符串键值对", "tags must map strings to strings")
        values["tags"] = json.dumps(tags, ensure_ascii=False, sort_keys=True)
    conn.execute(update(resources).where(resources.c.id == resource_id).values(**values))
