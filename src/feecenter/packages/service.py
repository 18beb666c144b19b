"""Resource packages (SET-10) in the database: which are in force, and the trace of their use.

A package is a prepaid resource (bought, renewed and refunded as any prepaid
order) whose catalog item has ``covers_*`` columns. Settlement asks
``in_force`` for the packages of the accounts it settles, lets
``rules.cover`` decide, and writes what was covered with ``record_uses`` in
the same database transaction as the bill lines, so a rerun or a crash never
counts a covered quantity twice.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import Connection, and_, case, func, insert, select

from feecenter.catalog.rules import QTY_SCALE
from feecenter.catalog.tables import billing_items
from feecenter.clock import BUSINESS_TZ, Clock, db_time, from_db_time
from feecenter.packages.rules import PER_MONTH, PER_PERIOD, Cover, Package
from feecenter.packages.tables import package_uses
from feecenter.resources.tables import resources

_R, _I, _U = resources.c, billing_items.c, package_uses.c


def month_of(when: datetime) -> str:
    """YYYY-MM of ``when`` in business time: the month a per-month pool belongs to."""
    return when.astimezone(BUSINESS_TZ).strftime("%Y-%m")


def in_force(conn: Connection, uins: list[int] | None, at: datetime, *, cycle: str,
             period_key: str) -> dict[int, list[Package]]:
    """The packages of ``uins`` (None: every account) in force at ``at`` (a period's
    start), per account, with what each pool has drawn already: a monthly pool this
    month, a per-period capacity this period (a late adjustment follows the charge)."""
    stmt = (select(_R.id, _R.uin, _R.region, _R.quantity, _R.period_start, _R.period_end,
                   _I.covers_product, _I.covers_item, _I.covers_quantity, _I.covers_per)
            .join(billing_items, and_(_I.product_code == _R.product_code,
                                      _I.code == _R.spec_item))
            .where(_I.covers_product.is_not(None), _R.pay_mode == "prepaid",
                   _R.state != "recycled", _R.period_start <= db_time(at),
                   _R.period_end > db_time(at)))
    if uins is not None:
        stmt = stmt.where(_R.uin.in_(uins))
    rows = conn.execute(stmt).all()
    used = _used(conn, [r.id for r in rows], month_of(at), cycle, period_key)
    found: dict[int, list[Package]] = defaultdict(list)
    for r in rows:
        found[r.uin].append(Package(
            r.id, r.covers_product, r.covers_item, r.region,
            r.covers_quantity * r.quantity // QTY_SCALE, r.covers_per,
            from_db_time(r.period_start), from_db_time(r.period_end),
            used.get((r.id, r.covers_per), 0)))
    return found


def _used(conn: Connection, package_ids: list[str], month: str, cycle: str,
          period_key: str) -> dict[tuple[str, str], int]:
    """Drawn per (package, pool): (id, "month") this month, (id, "period") this period."""
    if not package_ids:
        return {}
    in_period = and_(_U.cycle == cycle, _U.period_key == period_key)
    rows = conn.execute(
        select(_U.package_id, func.sum(_U.quantity),
               func.sum(case((in_period, _U.quantity), else_=0)))
        .where(_U.package_id.in_(package_ids), _U.month == month)
        .group_by(_U.package_id)).all()
    used: dict[tuple[str, str], int] = {}
    for package_id, month_total, period_total in rows:
        used[(package_id, PER_MONTH)] = int(month_total)
        used[(package_id, PER_PERIOD)] = int(period_total)
    return used


def record_uses(conn: Connection, clock: Clock, uin: int, covers: list[Cover], *, cycle: str,
                period_key: str, month: str, kind: str = "charge", sequence: int = 0) -> None:
    """Trace every covered quantity to its package (in the settlement's transaction)."""
    if not covers:
        return
    now = db_time(clock.now())
    conn.execute(insert(package_uses), [{
        "uin": uin, "package_id": c.package_id, "resource_id": c.resource_id,
        "billing_item": c.item, "cycle": cycle, "period_key": period_key, "kind": kind,
        "sequence": sequence, "month": month, "quantity": c.quantity, "created_at": now}
        for c in covers])


def uses_of(conn: Connection, uin: int, package_id: str | None = None) -> list[dict]:
    """The account's package uses (oldest first), optionally of one package."""
    stmt = select(package_uses).where(_U.uin == uin).order_by(_U.id)
    if package_id is not None:
        stmt = stmt.where(_U.package_id == package_id)
    return [dict(r) for r in conn.execute(stmt).mappings()]


__all__ = ["month_of", "in_force", "record_uses", "uses_of"]
