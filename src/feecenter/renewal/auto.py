"""Auto-renewal (RNW-1, RNW-2): on the expiry day (business day, Asia/Shanghai) a
running prepaid resource whose auto-renew flag is on (``settings.effective``: its
own, else the account's default) gets its next term (the setting's months)
bought at the price then in force: ``orders.create_renewal`` and ``orders.pay``
(coupons as the coupon rules choose) under the auto-renewal's system actor.

Exactly once per resource and term: the order's and the payment's idempotency
keys derive from (resource, the expiry renewed past), and the renewal is made
only while the resource still has that expiry, checked under the account's
balance lock (the claim order, docs/architecture.md) in the payment's own
transaction. A run repeated, crashed half-way and rerun, or run eight times at
once renews each resource once.

When the renewal is refused (a domain error: short balance, arrears, a
restricted account, real name …) the transaction rolls back — no unpaid order is
left — and the attempt is recorded with its reason (``renewal_attempts``, one row
per resource and term). The resource is tried again once each business day until
its stop time (``rules.stop_at``: after the product's retry days), and renewed as
soon as a try succeeds; once stopped, only a manual renewal recovers it
(``lifecycle`` stops; only running resources are auto-renewed).

``attempts`` reads the last outcome per resource for the console.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine, case, select, update

from feecenter.accounts.permissions import RENEWAL, Actor, require
from feecenter.clock import Clock, business_date, db_time, from_db_time
from feecenter.db.engine import transaction
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import FeeCenterError
from feecenter.funds import service as funds
from feecenter.orders import service as orders
from feecenter.renewal import lifecycle, rules
from feecenter.renewal.settings import _check_ids
from feecenter.renewal.tables import renewal_attempts
from feecenter.resources import service as resources

AUTO_RENEWAL = Actor(kind="system", name="auto-renewal")
BATCH = 500  # resources read at a time
_T = renewal_attempts.c


def _key(row: dict) -> str:
    """The order's and the payment's idempotency key: one per resource and term."""
    return f"auto-renew:{row['id']}:{row['period_end'].strftime('%Y%m%dT%H%M%S')}"


def _within_retry(row: dict, day: date) -> bool:
    """Is ``day`` the expiry day or one of the retry days after it (RNW-2)?"""
    expiry_day = business_date(row["period_end"])
    retry = row["auto_renew_retry_days"] if row["auto_renew"] else 0
    return expiry_day <= day <= expiry_day + timedelta(days=max(retry, 0))


def _tried(conn: Connection, rows: list[dict]) -> dict[tuple[str, datetime], tuple[str, date]]:
    """(resource id, term end naive UTC) -> (state, last day tried) of ``rows``' terms."""
    if not rows:
        return {}
    found = conn.execute(select(_T.resource_id, _T.term_end, _T.state, _T.last_tried_on)
                         .where(_T.resource_id.in_([r["id"] for r in rows])))
    return {(f.resource_id, f.term_end): (f.state, f.last_tried_on) for f in found}


def due_on(conn: Connection, rows: list[dict], day: date,
           stopping_by: datetime | None = None) -> list[dict]:
    """Of running expired ``rows`` (``lifecycle.expired_running``): those to try on
    ``day``: flag on, not renewed for this term, and either within the retry days and
    not tried today, or about to be stopped in this run (stop time before
    ``stopping_by``): a last try, so money that arrived since the day's try counts."""
    tried = _tried(conn, rows)
    due = []
    for row in rows:
        state, last = tried.get((row["id"], db_time(row["period_end"])), (None, None))
        if not row["auto_renew"] or state == "renewed":
            continue
        daily = _within_retry(row, day) and (last is None or last < day)
        last_chance = stopping_by is not None and lifecycle.stop_time(row) < stopping_by
        if daily or last_chance:
            due.append(row)
    return due


def renew_due(engine: Engine, clock: Clock, day: date, *, batch: int = BATCH,
              stopping_by: datetime | None = None) -> dict:
    """Try the auto-renewal of every resource due on business ``day`` (and, with
    ``stopping_by``, of those the same run will stop); counts."""
    counts = {"renewed": 0, "failed": 0, "skipped": 0}
    until, after = rules.start_of_day(day + timedelta(days=1)), ""
    if stopping_by is not None:
        until = max(until, stopping_by)
    while True:
        with engine.connect() as conn:
            rows = lifecycle.expired_running(conn, until, after, batch)
            due = due_on(conn, rows, day, stopping_by)
        for row in due:
            counts[renew_one(engine, clock, row, day)] += 1
        if len(rows) < batch:
            return counts
        after = rows[-1]["id"]


def renew_one(engine: Engine, clock: Clock, row: dict, day: date) -> str:
    """Renew one resource for one term: "renewed", "failed" (recorded) or "skipped"
    (it was renewed or stopped meanwhile, by another run or by hand)."""
    try:
        with transaction(engine) as conn:
            return _renew(conn, clock, row, day)
    except FeeCenterError as refused:
        if refused.http_status >= 500:  # a bug, not a refusal: the job fails, and retries
            raise
        with transaction(engine) as conn:
            _record_failure(conn, clock, row, day, refused)
        return "failed"


def _renew(conn: Connection, clock: Clock, row: dict, day: date) -> str:
    uin, key = row["uin"], _key(row)
    funds.lock_balances(conn, uin)  # the claim: one renewal of this account at a time
    now = resources.get_resource(conn, uin, row["id"], lock=True)
    if now["state"] != "running" or from_db_time(now["period_end"]) != row["period_end"]:
        return "skipped"
    if orders.awaits_renewal_delivery(conn, row["id"]):  # bought by hand, delivered by hand
        return "skipped"
    order_id = orders.create_renewal(conn, clock, AUTO_RENEWAL, uin, row["id"], row["months"],
                                     key=key)
    orders.pay(conn, clock, AUTO_RENEWAL, uin, [order_id], key=key, coupon_ids=None)
    _record(conn, clock, row, day, state="renewed", order_id=order_id)
    return "renewed"


def _record(conn: Connection, clock: Clock, row: dict, day: date, **values) -> None:
    """The term's attempt: inserted, or updated (a new day counts one more try)."""
    term_end, now = db_time(row["period_end"]), db_time(clock.now())
    values = {"reason_code": None, "reason": None, "order_id": None, **values}
    inserted = conn.execute(insert_if_absent(conn, renewal_attempts, ["resource_id", "term_end"])
                            .values(resource_id=row["id"], term_end=term_end, uin=row["uin"],
                                    tries=1, last_tried_on=day, updated_at=now, **values)
                            .returning(_T.resource_id)).first()
    if inserted is not None:
        return
    conn.execute(update(renewal_attempts).where(
        _T.resource_id == row["id"], _T.term_end == term_end, _T.state != "renewed").values(
        tries=case((_T.last_tried_on < day, _T.tries + 1), else_=_T.tries),
        last_tried_on=day, updated_at=now, **values))


def _record_failure(conn: Connection, clock: Clock, row: dict, day: date,
                    refused: FeeCenterError) -> None:
    _record(conn, clock, row, day, state="failed", reason_code=refused.code[:40],
            reason=refused.message)


def attempts(conn: Connection, actor: Actor, uin: int, resource_ids: list[str]) -> dict[str, dict]:
    """resource id -> its last auto-renewal attempt (the latest term tried): ``state``
    (renewed | failed), ``reason_code`` and ``reason`` (zh-CN / en) when failed,
    ``term_end`` (the expiry it renews past, aware UTC), ``tries`` (days),
    ``last_tried_on``, ``order_id``. Resources never tried are absent."""
    require(actor, uin, RENEWAL)
    ids = _check_ids(resource_ids)
    found: dict[str, dict] = {}
    for row in conn.execute(select(renewal_attempts).where(_T.uin == uin, _T.resource_id.in_(ids))
                            .order_by(_T.resource_id, _T.term_end)).mappings():
        found[row["resource_id"]] = {**row, "term_end": from_db_time(row["term_end"])}
    return found
