"""Renewal management (RNW-7): the lists of renewable prepaid resources and of
resource packages, and the batch manual renewal paid in one merged payment.

Listed: prepaid resources that are running, of products connected to renewal
management (catalog ``renewal_managed``); postpaid, stopped and released
resources never appear. Resource packages (a billing item that covers usage)
have their own list, where only the auto-renew flag and term are set; a
package is renewed by hand in its product's console, not in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, false, func, select, true

from feecenter.accounts.permissions import RENEWAL, Actor, require
from feecenter.catalog.tables import billing_items, products
from feecenter.clock import Clock, db_time, from_db_time
from feecenter.errors import invalid
from feecenter.inputs import bounded_int
from feecenter.orders import service as orders
from feecenter.renewal.settings import _check_ids, account_renewal
from feecenter.renewal.tables import renewal_settings
from feecenter.resources.tables import projects, resources

_R, _P, _I, _S = resources.c, products.c, billing_items.c, renewal_settings.c
MAX_PAGE = 200


@dataclass(frozen=True)
class RenewalQuery:
    expiring_within_days: int | None = None  # period end within N days from now
    auto_renew: bool | None = None
    project_id: int | None = None
    product_code: str | None = None
    packages: bool = False  # the resource-package list instead
    offset: int = 0
    limit: int = 50
    resource_ids: tuple[str, ...] = ()  # only these (none: all)
    expires_from: datetime | None = None  # period end within [from, to], aware UTC
    expires_to: datetime | None = None
    latest_first: bool = False  # by expiry, latest first


def _checked(query: RenewalQuery) -> RenewalQuery:
    if query.expiring_within_days is not None:
        bounded_int(query.expiring_within_days, "expiring_within_days", 0, 3660)
    if query.auto_renew is not None and not isinstance(query.auto_renew, bool):
        raise invalid("auto_renew", "须为 true 或 false", "must be true or false")
    bounded_int(query.offset, "offset", 0, 10**9)
    bounded_int(query.limit, "limit", 1, MAX_PAGE)
    if query.resource_ids:
        _check_ids(list(query.resource_ids))
    return query


def list_renewables(conn: Connection, clock: Clock, actor: Actor, uin: int,
                    query: RenewalQuery = RenewalQuery()) -> dict:
    """{"total", "items"}: the account's renewable resources (or its packages) by
    expiry, each with its product, project, expiry, days left and the auto-renew
    flag and term in force (its own setting, else the account's default)."""
    require(actor, uin, RENEWAL)
    return _rows(conn, clock, uin, _checked(query))


def _rows(conn: Connection, clock: Clock, uin: int, query: RenewalQuery,
          only: list[str] | None = None) -> dict:
    default = account_renewal(conn, uin).auto_renew_default
    flag = func.coalesce(_S.auto_renew, true() if default else false())
    is_package = (select(_I.id).where(_I.product_code == _R.product_code, _I.code == _R.spec_item,
                                      _I.covers_product.is_not(None)).exists())
    where = [_R.uin == uin, _R.pay_mode == "prepaid", _R.state == "running",
             _P.renewal_managed.is_(True), is_package if query.packages else ~is_package]
    if query.expiring_within_days is not None:
        horizon = clock.now() + timedelta(days=query.expiring_within_days)
        where.append(_R.period_end <= db_time(horizon))
    if query.auto_renew is not None:
        where.append(flag == query.auto_renew)
    if query.project_id is not None:
        where.append(_R.project_id == query.project_id)
    if query.product_code:
        where.append(_R.product_code == query.product_code)
    if only is not None:
        where.append(_R.id.in_(only))
    if query.resource_ids:
        where.append(_R.id.in_(query.resource_ids))
    if query.expires_from is not None:
        where.append(_R.period_end >= db_time(query.expires_from))
    if query.expires_to is not None:
        where.append(_R.period_end <= db_time(query.expires_to))
    source = (resources.join(products, _P.code == _R.product_code)
              .join(projects, projects.c.id == _R.project_id)
              .outerjoin(renewal_settings, _S.resource_id == _R.id))
    order = ((_R.period_end.desc(), _R.id.desc()) if query.latest_first
             else (_R.period_end, _R.id))
    total = conn.execute(select(func.count()).select_from(source).where(and_(*where))).scalar_one()
    rows = conn.execute(
        select(_R.id, _R.name, _R.product_code, _P.name_zh, _P.name_en, _R.region,
               _R.spec_item, _R.project_id, projects.c.name.label("project_name"),
               _R.period_start, _R.period_end, flag.label("auto_renew"), _S.months)
        .select_from(source).where(and_(*where)).order_by(*order)
        .offset(query.offset).limit(query.limit)).mappings().all()
    now = clock.now()
    return {"total": total, "items": [_item(row, now) for row in rows]}


def _item(row, now) -> dict:
    end = from_db_time(row["period_end"])
    return {"resource_id": row["id"], "name": row["name"], "product_code": row["product_code"],
            "product_name_zh": row["name_zh"], "product_name_en": row["name_en"],
            "region": row["region"], "spec_item": row["spec_item"],
            "project_id": row["project_id"], "project_name": row["project_name"],
            "period_start": from_db_time(row["period_start"]), "period_end": end,
            "days_left": (end - now).days, "auto_renew": bool(row["auto_renew"]),
            "months": row["months"] or 1}


def renew_batch(conn: Connection, clock: Clock, actor: Actor, uin: int,
                resource_ids: list[str], months: int | None = None, *,
                key: str | None = None) -> list[int]:
    """Renewal orders for several resources (RNW-7's batch manual renewal), to be
    paid together in one merged payment (``orders.pay`` with all of them; preview
    with ``orders.preview_payment``). ``months``: one term for all; None: each
    resource's own term. Packages are refused (renewed in their product's console).
    With ``key``, a repeat returns the same orders (each order's key derives from it)."""
    require(actor, uin, RENEWAL)
    ids = _check_ids(resource_ids)
    listed = {item["resource_id"]: item for item in
              _rows(conn, clock, uin, RenewalQuery(limit=len(ids)), only=ids)["items"]}
    order_ids = []
    for resource_id in ids:
        if resource_id not in listed:
            raise invalid("resource_ids", f"资源 {resource_id} 不在续费管理中（后付费、已停止、已释放或资源包）",
                          f"resource {resource_id} is not in renewal management "
                          "(postpaid, stopped, released or a resource package)")
        term = months if months is not None else listed[resource_id]["months"]
        order_ids.append(orders.create_renewal(
            conn, clock, actor, uin, resource_id, term,
            key=None if key is None else f"{key}:{resource_id}"))
    return order_ids

