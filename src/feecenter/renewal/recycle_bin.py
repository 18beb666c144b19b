"""The recycle bin (回收站, RNW-6): the account's prepaid resources stopped for expiry
and not yet released, each with when it will be released, and restoring one by
a renewal order (paid like any order; its delivery restarts the resource and
the new term counts from the original expiry).

A resource is in the bin while ``resources.state`` is "stopped" with an open
stop of reason "expired" (``resources.stop_resource(..., "expired")``) and its
release time (``rules.release_at`` of the stop and the product's recovery days)
has not come. Reads only; the orders and the resources belong to their packages.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, select

from feecenter.accounts.permissions import RENEWAL, Actor, require
from feecenter.catalog.tables import products
from feecenter.clock import Clock, business_date, from_db_time
from feecenter.errors import Conflict, invalid
from feecenter.inputs import bounded_int
from feecenter.orders import service as orders
from feecenter.renewal import rules
from feecenter.renewal.settings import effective
from feecenter.resources import service as resources
from feecenter.resources.tables import projects, resource_stops
from feecenter.resources.tables import resources as resource_table

EXPIRED = rules.EXPIRED  # the stop reason of a resource not renewed by its expiry
MAX_PAGE = 200
_R, _P, _S = resource_table.c, products.c, resource_stops.c


def _in_bin(uin: int) -> list:
    return [_R.uin == uin, _R.state == "stopped", _R.pay_mode == "prepaid",
            _S.resource_id == _R.id, _S.reason == EXPIRED, _S.ended_at.is_(None)]


def _source():
    return (resource_table.join(resource_stops, _S.resource_id == _R.id)
            .join(products, _P.code == _R.product_code)
            .join(projects, projects.c.id == _R.project_id))


def list_recycle_bin(conn: Connection, clock: Clock, actor: Actor, uin: int, *,
                     offset: int = 0, limit: int = 50) -> dict:
    """{"total", "items"}: the account's resources stopped for expiry and not yet
    due for release, by stop time; each with its product names, region, spec,
    project, expiry (``period_end``), ``stopped_at``, ``release_at``, ``days_left``
    (business days on which it can still be restored, today included) and the
    renewal term in force (``months``)."""
    require(actor, uin, RENEWAL)
    bounded_int(offset, "offset", 0, 10**9)
    bounded_int(limit, "limit", 1, MAX_PAGE)
    rows = conn.execute(
        select(_R.id, _R.name, _R.product_code, _P.name_zh, _P.name_en, _P.recovery_days,
               _R.region, _R.spec_item, _R.project_id, projects.c.name.label("project_name"),
               _R.period_end, _S.stopped_at)
        .select_from(_source()).where(and_(*_in_bin(uin)))
        .order_by(_S.stopped_at, _R.id)).mappings().all()
    now = clock.now()
    waiting = [row for row in rows if _release(row) > now]  # past it: the release job's
    terms = effective(conn, uin, [row["id"] for row in waiting])
    items = [_item(row, now, terms[row["id"]][1]) for row in waiting[offset:offset + limit]]
    return {"total": len(waiting), "items": items}


def _release(row) -> datetime:
    return rules.release_at(from_db_time(row["stopped_at"]), row["recovery_days"])


def _item(row, now: datetime, months: int) -> dict:
    release = _release(row)
    return {"resource_id": row["id"], "name": row["name"], "product_code": row["product_code"],
            "product_name_zh": row["name_zh"], "product_name_en": row["name_en"],
            "region": row["region"], "spec_item": row["spec_item"],
            "project_id": row["project_id"], "project_name": row["project_name"],
            "period_end": from_db_time(row["period_end"]),
            "stopped_at": from_db_time(row["stopped_at"]), "release_at": release,
            "days_left": (business_date(release) - business_date(now)).days,
            "recovery_days": row["recovery_days"], "months": months}


def in_recycle_bin(conn: Connection, clock: Clock, uin: int, resource_id: str) -> dict:
    """The bin's entry of one resource; refused when the resource is not in it
    (running, stopped for another reason, released or due for release)."""
    resource_id = resources.resource_ref(resource_id)
    row = conn.execute(
        select(_R.id, _R.name, _R.product_code, _P.name_zh, _P.name_en, _P.recovery_days,
               _R.region, _R.spec_item, _R.project_id, projects.c.name.label("project_name"),
               _R.period_end, _S.stopped_at)
        .select_from(_source()).where(and_(*_in_bin(uin), _R.id == resource_id))
        .order_by(_S.stopped_at.desc()).limit(1)).mappings().first()
    if row is None:
        resources.get_resource(conn, uin, resource_id)  # another account's or none: not found
        raise Conflict(f"资源 {resource_id} 不在回收站中", f"resource {resource_id} is not in the "
                       "recycle bin", field="resource_id")
    now = clock.now()
    if _release(row) <= now:
        raise Conflict(f"资源 {resource_id} 的保留期已过，已释放或即将释放",
                       f"resource {resource_id} is past its recovery period: it is released",
                       field="resource_id", state="recycled")
    return _item(row, now, effective(conn, uin, [resource_id])[resource_id][1])


def restore(conn: Connection, clock: Clock, actor: Actor, uin: int, resource_id: str,
            months: int, *, key: str | None = None) -> int:
    """恢复 (RNW-6): a renewal order of ``months`` for a resource in the recycle bin,
    to be paid on the payment page (``orders.pay``); its delivery restores the
    resource, the new term counting from the original expiry. With ``key``, a
    repeat returns the same order."""
    require(actor, uin, RENEWAL)
    if isinstance(months, bool) or not isinstance(months, int):
        raise invalid("months", "续费时长须为整数月", "months must be a whole number")
    in_recycle_bin(conn, clock, uin, resource_id)
    return orders.create_renewal(conn, clock, actor, uin, resources.resource_ref(resource_id),
                                 months, key=key)

