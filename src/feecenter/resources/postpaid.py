"""Postpaid resources: opening (arrears gate, FRZ-1 freeze) and release (FRZ-3).

Opening checks the same purchase gate as prepaid orders and freezes the
product's configured amount from gift and cash. Releasing a resource
releases that freeze following the product's rule: at once, or at the next
settlement boundary of its cycle (a monthly-freeze product: the settlement day
of the next month, FRZ-5), which is stored on the resource so the
console can say when (``release_due_freezes`` does it then).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import MANAGE_RESOURCES, Actor, require
from feecenter.catalog import service as catalog
from feecenter.catalog.rules import QTY_SCALE
from feecenter.clock import BUSINESS_TZ, Clock, add_months, db_time, from_db_time
from feecenter.config import monthly_freeze_day
from feecenter.errors import Conflict, invalid
from feecenter.funds import service as funds
from feecenter.inputs import account_key
from feecenter.periods import monthly_settlement_day
from feecenter.resources import service as resources
from feecenter.resources.tables import resources as resources_table


def open_postpaid(conn: Connection, clock: Clock, actor: Actor, uin: int, *, product: str,
                  region: str, spec_item: str, count: int = 1, project_id: int | None = None,
                  name: str | None = None, tags: dict | None = None,
                  key: str | None = None) -> str:
    """Open a postpaid resource: gate (ARR-1/2), freeze (FRZ-1), then create it.

    With ``key`` the account's balances are locked first (the claim order), so a
    repeat, even a concurrent one, returns the resource the key opened and writes
    nothing; the key used to open another product, region, spec or count refuses."""
    require(actor, uin, MANAGE_RESOURCES)
    stored_key = None
    if key is not None:
        stored_key = account_key(uin, key)
        funds.lock_balances(conn, uin)
        if (repeat := _opened(conn, stored_key, (product, region, spec_item, count))) is not None:
            return repeat
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
        raise invalid("count", "数量须为 1–1000", "count must be 1-1000")
    facts = catalog.get_product(conn, product)
    if "postpaid" not in facts.pay_modes:
        raise invalid("product", f"产品 {product} 不支持按量计费", f"{product} is not sold postpaid")
    catalog.quote(conn, uin, product, spec_item, region, "postpaid", count * QTY_SCALE,
                  clock.now())  # refuses an unknown item or region, or no price in force
    accounts.purchase_gate(conn, clock, uin, facts.operable_balance)
    project = project_id if project_id is not None else resources.default_project(conn, clock, uin)
    resources.get_project(conn, uin, project)
    resource_id = resources.new_resource_id(product)
    hold_id = None
    if facts.freeze_amount > 0:
        hold_id = funds.freeze(conn, clock, uin, facts.freeze_amount, key=f"open:{resource_id}",
                               reference=resource_id, product_code=product,
                               memo=f"按量资源开通冻结 / postpaid opening freeze {resource_id}")
    resources.create_resource(conn, clock, uin=uin, product_code=product, region=region,
                              project_id=project, pay_mode="postpaid", spec_item=spec_item,
                              quantity=count * QTY_SCALE, name=name, tags=tags,
                              resource_id=resource_id, idempotency_key=stored_key)
    if hold_id is not None:
        resources.update_resource(conn, resource_id, freeze_hold_id=hold_id)
    return resource_id


def _opened(conn: Connection, stored_key: str, asked: tuple) -> str | None:
    """The resource an opening with this key made, or None; refused if it was another."""
    r = resources_table.c
    row = conn.execute(select(r.id, r.product_code, r.region, r.spec_item, r.quantity)
                       .where(r.idempotency_key == stored_key)).first()
    if row is None:
        return None
    product, region, spec_item, count = asked
    if (row.product_code, row.region, row.spec_item) != (product, region, spec_item) or (
            not isinstance(count, int) or row.quantity != count * QTY_SCALE):
        raise Conflict("幂等键已用于其他资源的开通",
                       "idempotency key already used to open another resource",
                       field="idempotency_key")
    return row.id


def next_settlement(cycle: str | None, when: datetime) -> datetime:
    """The next settlement boundary after ``when`` for an hourly/daily/monthly cycle."""
    local = when.astimezone(BUSINESS_TZ)
    if cycle == "hour":
        boundary = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    elif cycle == "month":
        boundary = add_months(local.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
                              1).astimezone(BUSINESS_TZ)
    else:
        boundary = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return boundary.astimezone(when.tzinfo)


def freeze_release_after(facts: catalog.Product, released_at: datetime) -> datetime:
    """When a released resource's opening freeze is released (FRZ-3): at once, at the
    next settlement boundary, or for a monthly-freeze product on the settlement day of
    the next month, with the month's other freezes (FRZ-5)."""
    if facts.monthly_freeze:
        return monthly_settlement_day(released_at, monthly_freeze_day())
    if facts.freeze_release == "immediate":
        return released_at
    return next_settlement(facts.postpaid_cycle, released_at)


def release_postpaid(conn: Connection, clock: Clock, actor: Actor, uin: int,
                     resource_id: str) -> dict:
    """Release (destroy) a postpaid resource; its freeze follows the product's rule."""
    require(actor, uin, MANAGE_RESOURCES)
    funds.lock_balances(conn, uin)  # the claim order: the balances, then the resource
    resource = resources.get_resource(conn, uin, resource_id, lock=True)
    if resource["pay_mode"] != "postpaid":
        raise invalid("resource_id", "只能释放按量计费资源", "only postpaid resources are released here")
    if resource["state"] == "recycled":
        raise Conflict(f"资源 {resource_id} 状态为 recycled（已释放）",
                       f"resource {resource_id} is recycled (released already)",
                       field="resource_id", state="recycled")
    now = clock.now()
    facts = catalog.get_product(conn, resource["product_code"])
    release_at = freeze_release_after(facts, now)
    resources.update_resource(conn, resource_id, state="recycled", released_at=now,
                              freeze_release_at=release_at if resource["freeze_hold_id"] else None)
    if resource["freeze_hold_id"] and release_at <= now:
        _release(conn, clock, resource)
    return {"resource_id": resource_id, "released_at": now,
            "freeze_release_at": release_at if resource["freeze_hold_id"] else None}


def _release(conn: Connection, clock: Clock, resource: dict) -> None:
    funds.unfreeze(conn, clock, resource["uin"], resource["freeze_hold_id"],
                   memo=f"资源释放解冻 / freeze released with {resource['id']}")
    conn.execute(update(resources_table).where(resources_table.c.id == resource["id"])
                 .values(freeze_hold_id=None, freeze_release_at=None))


def release_due_freezes(conn: Connection, clock: Clock) -> int:
    """Scheduled: release the freezes of released resources whose time has come (FRZ-3).

    Each is claimed in the claim order (docs/architecture.md): its customer's
    balances locked, then the resource re-read locked and still due: a freeze
    another run released meanwhile is skipped, so concurrent runs release each
    freeze once."""
    r = resources_table.c
    due = conn.execute(select(r.uin, r.id).where(*_due(clock))
                       .order_by(r.uin, r.id)).all()
    released = 0
    for uin, resource_id in due:
        funds.lock_balances(conn, uin)
        resource = conn.execute(_lock(conn, select(resources_table).where(
            r.id == resource_id, *_due(clock)))).mappings().first()
        if resource is not None:
            _release(conn, clock, dict(resource))
            released += 1
    return released


def _due(clock: Clock) -> tuple:
    r = resources_table.c
    return r.freeze_hold_id.is_not(None), r.freeze_release_at <= db_time(clock.now())


def _lock(conn: Connection, stmt):
    return stmt.with_for_update() if conn.dialect.name == "postgresql" else stmt


def freeze_release_time(resource: dict) -> datetime | None:
    value = resource.get("freeze_release_at")
    return from_db_time(value) if value else None
