"""The expiry lifecycle of prepaid resources (RNW-6): a resource not renewed by its
stop time (``rules.stop_at``: at expiry, or after the auto-renewal retry days) is
stopped into the recycle bin (state "stopped", its stop's reason "expired"); one
still there at ``rules.release_at`` is released (state "recycled",
``released_at``). The owner is told of each step, one notice per account and batch.

Set-based and safe to rerun: the resources are read in batches by id; each batch
is claimed by one conditional UPDATE (``resources.stop_many`` / ``release_many``)
committed with its notices in one transaction, so a rerun, a crashed run's rerun
or a concurrent run finds those already done and does nothing more with them.
Times come from the caller's period (``until``), never from "now".

Restoring a resource from the recycle bin is a renewal's delivery
(``orders``): paying a renewal ends the stop and the new term counts from the
original expiry.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, false, func, select

from feecenter.catalog.tables import products
from feecenter.clock import Clock, business_time_text, db_time, from_db_time
from feecenter.db.engine import transaction
from feecenter.notifications.service import Notice, notify_many
from feecenter.orders import service as orders
from feecenter.renewal import rules
from feecenter.renewal.tables import renewal_accounts, renewal_settings
from feecenter.resources import service as resources
from feecenter.resources.tables import resource_stops
from feecenter.resources.tables import resources as resources_table

REASON = rules.EXPIRED  # the reason of a recycle-bin stop (resource_stops.reason)
BATCH = 1000  # resources per transaction

_R, _P, _S, _A = resources_table.c, products.c, renewal_settings.c, renewal_accounts.c
# a renewal paid and awaiting delivery by hand: neither auto-renewed, stopped nor released
_AWAITING = orders.renewal_awaiting_delivery(_R.id)


def expired_running(conn: Connection, until: datetime, after: str, limit: int) -> list[dict]:
    """Running prepaid resources whose period ended before ``until``, by id after
    ``after``: each with its auto-renew flag and term in force (its own setting,
    else the account's default, else off; 1 month) and its product's retry and
    recovery days. ``period_end`` aware UTC."""
    flag = func.coalesce(_S.auto_renew, _A.auto_renew_default, false())
    source = (resources_table.join(products, _P.code == _R.product_code)
              .outerjoin(renewal_settings, _S.resource_id == _R.id)
              .outerjoin(renewal_accounts, _A.uin == _R.uin))
    rows = conn.execute(
        select(_R.id, _R.uin, _R.name, _R.product_code, _R.region, _R.period_end,
               flag.label("auto_renew"), func.coalesce(_S.months, 1).label("months"),
               _P.auto_renew_retry_days, _P.recovery_days)
        .select_from(source)
        .where(_R.state == "running", _R.pay_mode == "prepaid", _R.period_end < db_time(until),
               _R.id > after, ~_AWAITING)
        .order_by(_R.id).limit(limit)).mappings().all()
    return [{**row, "auto_renew": bool(row["auto_renew"]),
             "period_end": from_db_time(row["period_end"])} for row in rows]


def stop_time(row: dict) -> datetime:
    return rules.stop_at(row["period_end"], row["auto_renew"], row["auto_renew_retry_days"])


def _stopped_at(row: dict, since: datetime | None) -> datetime:
    """When the stop is recorded: the rule's time, but never before the period being
    run (``since``): a resource kept running past it (auto-renewal turned off during
    its retry days) is stopped now, and its recovery period counts from now."""
    return stop_time(row) if since is None else max(stop_time(row), since)


# ---------------------------------------------------------------- stopping

def stop_due(engine: Engine, clock: Clock, until: datetime, *, batch: int = BATCH,
             since: datetime | None = None) -> int:
    """Stop every running prepaid resource whose stop time is before ``until``
    (each stop recorded at its own stop time, not before ``since``: the job's period
    start); returns how many were stopped. A resource whose renewal is paid and
    awaits delivery by hand is not stopped (its next term is bought)."""
    stopped, after = 0, ""
    while True:
        with transaction(engine) as conn:
            rows = expired_running(conn, until, after, batch)
            due = {row["id"]: row for row in rows if stop_time(row) < until}
            done = resources.stop_many(
                conn, {rid: _stopped_at(row, since) for rid, row in due.items()}, REASON,
                expired_by=until, unless=_AWAITING)
            _notify(conn, clock, "renewal_stopped", [due[rid] for rid in done])
        stopped += len(done)
        if len(rows) < batch:
            return stopped
        after = rows[-1]["id"]


# ---------------------------------------------------------------- releasing

def _in_recycle_bin(conn: Connection, until: datetime, after: str, limit: int) -> list[dict]:
    """Resources stopped for expiry and still stopped, by id after ``after``, whose
    stop is at least the shortest recovery period before ``until``."""
    shortest = conn.execute(select(func.min(_P.recovery_days))).scalar() or 0
    s = resource_stops.c
    rows = conn.execute(
        select(_R.id, _R.uin, _R.name, _R.product_code, _R.region, _R.period_end,
               s.stopped_at, _P.recovery_days)
        .select_from(resource_stops.join(resources_table, _R.id == s.resource_id)
                     .join(products, _P.code == _R.product_code))
        .where(s.reason == REASON, s.ended_at.is_(None), _R.state == "stopped",
               s.stopped_at <= db_time(until - timedelta(days=shortest)), _R.id > after,
               ~_AWAITING)
        .order_by(_R.id).limit(limit)).mappings().all()
    return [{**row, "period_end": from_db_time(row["period_end"]),
             "stopped_at": from_db_time(row["stopped_at"])} for row in rows]


def release_time(row: dict) -> datetime:
    return rules.release_at(row["stopped_at"], row["recovery_days"])


def release_due(engine: Engine, clock: Clock, until: datetime, *, batch: int = BATCH) -> int:
    """Release every resource in the recycle bin whose release time is at or before
    ``until`` (released at that time); returns how many were released."""
    released, after = 0, ""
    while True:
        with transaction(engine) as conn:
            rows = _in_recycle_bin(conn, until, after, batch)
            by_time: dict[datetime, list[dict]] = defaultdict(list)
            for row in rows:
                if release_time(row) <= until:
                    by_time[release_time(row)].append(row)
            done = []
            for at, group in sorted(by_time.items()):
                ids = set(resources.release_many(conn, [r["id"] for r in group], REASON, at,
                                                 unless=_AWAITING))
                done += [r for r in group if r["id"] in ids]
            _notify(conn, clock, "renewal_released", done)
        released += len(done)
        if len(rows) < batch:
            return released
        after = rows[-1]["id"]


# ---------------------------------------------------------------- notices

def _line(row: dict, template: str) -> str:
    name = f" {row['name']}" if row.get("name") else ""
    expiry = business_time_text(row["period_end"])
    if template == "renewal_stopped":
        release = business_time_text(rules.release_at(stop_time(row), row["recovery_days"]))
        return f"- {row['id']}{name} ({row['product_code']}, {row['region']}): {expiry} → {release}"
    return f"- {row['id']}{name} ({row['product_code']}, {row['region']}): {expiry}"


def _notify(conn: Connection, clock: Clock, template: str, rows: list[dict]) -> None:
    """One notice per account for the resources of ``rows`` (committed with the step,
    so a rerun, finding them done, sends nothing again)."""
    by_uin: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        by_uin[row["uin"]].append(row)
    notices = []
    for uin, group in sorted(by_uin.items()):
        group.sort(key=lambda r: r["id"])
        terms = ",".join(f"{r['id']}@{r['period_end'].isoformat()}" for r in group)
        digest = hashlib.sha1(terms.encode()).hexdigest()[:16]
        notices.append(Notice(uin, template, {
            "count": len(group), "resources": "\n".join(_line(r, template) for r in group)},
            key=f"renewal:{template}:{uin}:{digest}"))
    if notices:
        notify_many(conn, clock, notices)
