"""Postpaid settlement use cases (SET-1..5, SET-7..9) and reading bill lines.

``settle_period(engine, clock, cycle, period)`` settles one period of one
cycle (hour | day | month):

1. Late pass (SET-9): usage received recently whose period of this cycle is
   already settled, and not yet billed, is rated and posted as adjustment
   lines referencing the original lines (never an edit).
2. One aggregate query (GROUP BY uin, resource, item) finds the period's
   usage of postpaid resources whose product settles on this cycle: records
   with ``period.start < usage_end <= period.end`` (a record belongs to the
   period it closes: 10:00-11:00 usage is the 10:00 hour).
3. Per account, one database transaction: rate each line (catalog.quote at
   the period start, tiers continuing the month-to-date quantity), round the
   transaction total once, one ``funds.spend(postpaid=True)`` with key
   ``settle:{cycle}:{period.key}:{uin}``, the L3 lines and the account's
   ``settled_accounts`` row. A rerun skips accounts that have that row, so a
   crash between accounts followed by a rerun gives one clean run's result.
4. The period is marked settled (``settled_periods``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, func, insert, select

from feecenter.accounts.permissions import FINANCE, Actor, require
from feecenter.catalog import service as catalog
from feecenter.clock import BUSINESS_TZ, Clock, add_months, db_time, from_db_time, to_utc
from feecenter.errors import invalid
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.jobs.schedule import DAILY, HOURLY, MONTHLY, Period, period_containing
from feecenter.resources.tables import projects, resources
from feecenter.settlement import rules
from feecenter.settlement.tables import bill_lines, settled_accounts, settled_periods
from feecenter.usage.tables import usage_records

CYCLES = {"hour": HOURLY, "day": DAILY, "month": MONTHLY}  # product cycle -> job cadence
DEDUCT_MODES = {"hour": "hour_h", "day": "hour_d", "month": "hour_m"}
LATE_LOOKBACK = timedelta(days=2)  # late pass: usage received since period.start - this
MAX_LIMIT = 1000


@dataclass(frozen=True)
class _Group:
    uin: int
    resource_id: str
    item: str
    quantity: int


# ---------------------------------------------------------------- settling

def settle_period(engine: Engine, clock: Clock, cycle: str, period: Period) -> dict:
    """Settle ``period`` of ``cycle`` (hour | day | month); idempotent, crash-safe."""
    if cycle not in CYCLES:
        raise invalid("cycle", "结算周期只能为 hour、day、month", "cycle must be hour, day or month")
    if period.cadence != CYCLES[cycle]:
        raise invalid("period", "周期与结算周期不符", f"a {cycle} cycle settles {CYCLES[cycle]} periods")
    adjusted = settle_late_usage(engine, clock, cycle, period)
    with engine.connect() as conn:
        groups = _period_usage(conn, cycle, period)
        done = set(conn.execute(select(settled_accounts.c.uin).where(
            settled_accounts.c.cycle == cycle,
            settled_accounts.c.period_key == period.key)).scalars())
    by_uin: dict[int, list[_Group]] = defaultdict(list)
    for group in groups:
        by_uin[group.uin].append(group)
    settled = skipped = lines = amount = 0
    for uin in sorted(by_uin):
        if uin in done:
            skipped += 1
            continue
        with engine.begin() as conn:
            written, fen = _settle_account(conn, clock, cycle, period, uin, by_uin[uin])
        settled += 1
        lines += written
        amount += fen
    with engine.begin() as conn:
        _mark_period(conn, clock, cycle, period)
    return {"accounts": settled, "skipped": skipped, "lines": lines, "amount_fen": amount,
            "adjustment_lines": adjusted}


def _product_facts(conn: Connection, cache: dict, code: str):
    if code not in cache:
        cache[code] = catalog.get_product(conn, code)
    return cache[code]


def _period_usage(conn: Connection, cycle: str, period: Period) -> list[_Group]:
    """The period's usage per (uin, resource, item): one GROUP BY query."""
    u, r = usage_records.c, resources.c
    rows = conn.execute(
        select(u.uin, u.resource_id, u.billing_item, r.product_code,
               func.sum(u.quantity).label("quantity"))
        .join(resources, r.id == u.resource_id)
        .where(u.usage_end > db_time(period.start), u.usage_end <= db_time(period.end),
               r.pay_mode == "postpaid")
        .group_by(u.uin, u.resource_id, u.billing_item, r.product_code)).all()
    facts: dict = {}
    return [_Group(row.uin, row.resource_id, row.billing_item, int(row.quantity)) for row in rows
            if _product_facts(conn, facts, row.product_code).postpaid_cycle == cycle]


def _resource_info(conn: Connection, ids: list[str]) -> dict[str, dict]:
    """Resource facts at deduction time, with its project's current name (SET-7)."""
    r, p = resources.c, projects.c
    rows = conn.execute(select(r.id, r.name, r.product_code, r.region, r.project_id,
                               p.name.label("project_name"))
                        .join(projects, p.id == r.project_id).where(r.id.in_(ids))).mappings()
    return {row["id"]: dict(row) for row in rows}


def _month_start(when: datetime) -> datetime:
    local = when.astimezone(BUSINESS_TZ)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(when.tzinfo)


def _billed_in_month(conn: Connection, uin: int, cycle: str, month_start: datetime,
                     upto: datetime) -> tuple[dict[tuple[str, str], int], set[tuple[str, str]]]:
    """Quantity already billed per (resource, item) from the month's start to ``upto``,
    and the (resource, item) pairs whose fixed price (一口价) was already charged."""
    b = bill_lines.c
    where = (b.uin == uin, b.cycle == cycle, b.period_start >= db_time(month_start),
             b.period_start < db_time(upto))
    rows = conn.execute(select(b.resource_id, b.billing_item, func.sum(b.quantity))
                        .where(*where).group_by(b.resource_id, b.billing_item)).all()
    fixed = conn.execute(select(b.resource_id, b.billing_item).distinct().where(
        *where, b.price_kind == "fixed", b.discounted_amount > 0)).all()
    return ({(row[0], row[1]): int(row[2]) for row in rows},
            {(row[0], row[1]) for row in fixed})


@dataclass
class _Rated:
    group: _Group
    info: dict
    quote: catalog.Quote


def _rate(conn: Connection, uin: int, cycle: str, period: Period, groups: list[_Group],
          *, include_period: bool = False) -> list[_Rated]:
    """SET-2: rate each group at the period start; tiers continue the month to date
    (per resource and item); a fixed price is charged by the month's first line. ``include_period``: a late adjustment continues after
    what the period itself already billed."""
    infos = _resource_info(conn, sorted({g.resource_id for g in groups}))
    upto = period.end if include_period else period.start
    before, fixed_done = _billed_in_month(conn, uin, cycle, _month_start(period.start), upto)
    rated = []
    quotes: dict[tuple, catalog.Quote] = {}  # quote is a function of these: same key, same quote
    for group in sorted(groups, key=lambda g: (g.resource_id, g.item)):
        info = infos[group.resource_id]
        args = (info["product_code"], group.item, info["region"], group.quantity,
                before.get((group.resource_id, group.item), 0))
        quote = quotes.get(args)
        if quote is None:
            quote = quotes[args] = catalog.quote(conn, uin, *args[:3], "postpaid", args[3],
                                                 period.start, before=args[4])
        if quote.price_kind == "fixed" and (group.resource_id, group.item) in fixed_done:
            quote = replace(quote, amount=0)  # a fixed price is charged once a month
        rated.append(_Rated(group, info, quote))
    return rated


def _deduct(conn: Connection, clock: Clock, cycle: str, uin: int, product: str,
            rated: list[_Rated], key: str, memo: str
            ) -> tuple[int, int | None, list[rules.LineShare], list[list[int]]]:
    """Round one product's transaction, spend it, split what paid it over its lines."""
    total, shares = rules.round_transaction([r.quote.amount for r in rated])
    if total == 0:
        return 0, None, shares, [[0, 0, 0, 0] for _ in rated]
    items = {r.group.item for r in rated}
    revenue = funds.platform_account(conn, clock, "revenue",
                                     catalog.get_product(conn, product).entity)
    movement = funds.spend(conn, clock, uin, total, key=key, postpaid=True,
                           revenue_account_id=revenue, deduct_mode=DEDUCT_MODES[cycle],
                           product_code=product,
                           billing_item=items.pop() if len(items) == 1 else None, memo=memo)
    entry = conn.execute(select(statement_entries.c.cash_amount, statement_entries.c.gift_amount,
                                statement_entries.c.credit_amount)
                         .where(statement_entries.c.txn_id == movement.txn_id,
                                statement_entries.c.action_type == "deduct")).one()
    gift, credit = -entry.gift_amount, -entry.credit_amount
    cash = -entry.cash_amount - credit
    arrears = total - gift - cash - credit
    parts = rules.split_payment([s.deducted for s in shares], [gift, cash, credit, arrears])
    return total, movement.txn_id, shares, parts


def _line_rows(clock: Clock, uin: int, cycle: str, period: Period, rated: list[_Rated],
               shares, parts, txn_id, *, kind: str = "charge", sequence: int = 0,
               originals: dict | None = None, reason: str | None = None) -> list[dict]:
    now = db_time(clock.now())
    rows = []
    for item, share, (gift, cash, credit, arrears) in zip(rated, shares, parts):
        q, info = item.quote, item.info
        rows.append({
            "uin": uin, "resource_id": item.group.resource_id, "resource_name": info["name"],
            "product_code": info["product_code"], "region": info["region"],
            "billing_item": item.group.item, "project_id": info["project_id"],
            "project_name": info["project_name"], "cycle": cycle, "period_key": period.key,
            "period_start": db_time(period.start), "period_end": db_time(period.end),
            "quantity": item.group.quantity, "price_kind": q.price_kind,
            "unit_price": q.unit_price, "list_amount": q.list_amount,
            "discount_bp": q.discount_bp, "discounted_amount": q.amount,
            "deducted": share.deducted, "rounding_diff": share.rounding_diff,
            "voucher_paid": 0, "cash_paid": cash, "gift_paid": gift, "credit_paid": credit,
            "arrears": arrears, "txn_id": txn_id, "deducted_at": now, "kind": kind,
            "sequence": sequence,
            "adjusts_line_id": (originals or {}).get((item.group.resource_id, item.group.item)),
            "reason": reason})
    return rows


def _settle_account(conn: Connection, clock: Clock, cycle: str, period: Period, uin: int,
                    groups: list[_Group]) -> tuple[int, int]:
    """One account's deductions and L3 lines for one period, in the caller's transaction:
    one ledger transaction per product (its revenue entity, its 收支明细 entry)."""
    rated = _rate(conn, uin, cycle, period, groups)
    key = f"settle:{cycle}:{period.key}:{uin}"
    rows, total = _post(conn, clock, cycle, period, uin, rated, key,
                        f"按量结算 {period.key} / postpaid settlement {cycle} {period.key}")
    if rows:
        conn.execute(insert(bill_lines), rows)
    conn.execute(insert(settled_accounts).values(
        uin=uin, cycle=cycle, period_key=period.key, amount=total,
        txn_id=next((row["txn_id"] for row in rows if row["txn_id"]), None),
        settled_at=db_time(clock.now())))
    return len(rows), total


def _post(conn: Connection, clock: Clock, cycle: str, period: Period, uin: int,
          rated: list[_Rated], key: str, memo: str, **line_fields) -> tuple[list[dict], int]:
    """Per product: round, deduct (key ``{key}:{product}``), and build its lines."""
    by_product: dict[str, list[_Rated]] = defaultdict(list)
    for item in rated:
        by_product[item.info["product_code"]].append(item)
    rows: list[dict] = []
    total = 0
    for product in sorted(by_product):
        part = by_product[product]
        fen, txn_id, shares, parts = _deduct(conn, clock, cycle, uin, product, part,
                                             f"{key}:{product}", memo)
        rows += _line_rows(clock, uin, cycle, period, part, shares, parts, txn_id, **line_fields)
        total += fen
    return rows, total


def _mark_period(conn: Connection, clock: Clock, cycle: str, period: Period) -> None:
    s = settled_periods.c
    if conn.execute(select(s.id).where(s.cycle == cycle, s.period_key == period.key)).first():
        return
    conn.execute(insert(settled_periods).values(
        cycle=cycle, period_key=period.key, period_start=db_time(period.start),
        period_end=db_time(period.end), completed_at=db_time(clock.now())))


# ---------------------------------------------------------------- late usage (SET-9)

def settle_late_usage(engine: Engine, clock: Clock, cycle: str, period: Period) -> int:
    """Bill usage that arrived after its (earlier) period of ``cycle`` was settled.

    Candidates: records received since ``period.start - LATE_LOOKBACK`` that end
    at or before ``period.start``. For each (resource, item, earlier period) they
    touch, the period's whole usage is compared with what its lines (charges and
    adjustments) billed; if the account was settled for that period (or the
    period completed without it), the missing quantity is rated at that period
    and posted as an adjustment line naming the reason and the original line.
    Returns the number of adjustment lines written.
    """
    cadence = CYCLES[cycle]
    u, r = usage_records.c, resources.c
    with engine.connect() as conn:
        # Only what arrived since this cycle's previous run can be late: anything
        # older was billed in its own period or by an earlier late pass.
        since = db_time(period.start - LATE_LOOKBACK)
        previous = conn.execute(select(func.max(settled_periods.c.completed_at)).where(
            settled_periods.c.cycle == cycle,
            settled_periods.c.period_start < db_time(period.start))).scalar()
        if previous is not None:
            since = max(since, previous)
        rows = conn.execute(
            select(u.uin, u.resource_id, u.billing_item, u.usage_end, r.product_code).distinct()
            .join(resources, r.id == u.resource_id)
            .where(u.usage_end <= db_time(period.start), u.received_at >= since,
                   r.pay_mode == "postpaid")).all()
        facts: dict = {}
        touched: dict[tuple[int, str], set[tuple[str, str]]] = defaultdict(set)
        periods: dict[str, Period] = {}
        for row in rows:
            if _product_facts(conn, facts, row.product_code).postpaid_cycle != cycle:
                continue
            earlier = period_containing(cadence, from_db_time(row.usage_end)
                                        - timedelta(microseconds=1))
            periods[earlier.key] = earlier
            touched[(row.uin, earlier.key)].add((row.resource_id, row.billing_item))
    written = 0
    for (uin, key), pairs in sorted(touched.items()):
        with engine.begin() as conn:
            written += _adjust_account(conn, clock, cycle, periods[key], uin, sorted(pairs))
    return written


def _adjust_account(conn: Connection, clock: Clock, cycle: str, period: Period, uin: int,
                    pairs: list[tuple[str, str]]) -> int:
    s, p = settled_accounts.c, settled_periods.c
    account_settled = conn.execute(select(s.id).where(
        s.uin == uin, s.cycle == cycle, s.period_key == period.key)).first() is not None
    if not account_settled and conn.execute(select(p.id).where(
            p.cycle == cycle, p.period_key == period.key)).first() is None:
        return 0  # not settled yet: the period's own run will bill it
    u, b = usage_records.c, bill_lines.c
    missing: list[_Group] = []
    originals: dict[tuple[str, str], int] = {}
    sequence = 1
    for resource_id, item in pairs:
        used = conn.execute(select(func.coalesce(func.sum(u.quantity), 0)).where(
            u.resource_id == resource_id, u.billing_item == item,
            u.usage_end > db_time(period.start), u.usage_end <= db_time(period.end))).scalar_one()
        lines = conn.execute(select(b.id, b.kind, b.sequence, b.quantity).where(
            b.resource_id == resource_id, b.billing_item == item, b.cycle == cycle,
            b.period_key == period.key).order_by(b.id)).all()
        billed = sum(line.quantity for line in lines)
        if used > billed:
            missing.append(_Group(uin, resource_id, item, int(used) - billed))
            charge = next((line.id for line in lines if line.kind == "charge"), None)
            if charge is not None:
                originals[(resource_id, item)] = charge
            sequence = max([sequence] + [line.sequence + 1 for line in lines
                                         if line.kind == "adjustment"])
    if not missing:
        return 0
    rated = _rate(conn, uin, cycle, period, missing, include_period=True)
    digest = hashlib.sha256(repr(sorted((g.resource_id, g.item, g.quantity) for g in missing))
                            .encode()).hexdigest()[:12]
    key = f"settle:{cycle}:{period.key}:{uin}:adj{sequence}:{digest}"
    ids = ", ".join(str(i) for i in sorted(originals.values())) or "none"
    reason = (f"迟到用量补扣（原账单行 {ids}） / late usage for a settled period "
              f"(original lines: {ids})")
    rows, _ = _post(conn, clock, cycle, period, uin, rated, key,
                    f"按量结算补扣 {period.key} / late usage adjustment", kind="adjustment",
                    sequence=sequence, originals=originals, reason=reason)
    conn.execute(insert(bill_lines), rows)
    return len(rows)


# ---------------------------------------------------------------- reading



def _month_bounds(month: str) -> tuple[datetime, datetime]:
    try:
        year, mon = (int(x) for x in month.split("-"))
        start = datetime(year, mon, 1, tzinfo=BUSINESS_TZ)
    except (ValueError, AttributeError):
        raise invalid("month", "月份格式应为 YYYY-MM", "month must be YYYY-MM") from None
    return to_utc(start), to_utc(add_months(start, 1))


def list_bill_lines(conn: Connection, actor: Actor, uin: int, filters: dict | None = None,
                    offset: int = 0, limit: int = 100) -> dict:
    """L3 bill lines of an account (FINANCE); filters: month (YYYY-MM, by period start
    in business time), product, resource_id, project_id, kind."""
    require(actor, uin, FINANCE)
    filters = filters or {}
    if not (isinstance(offset, int) and offset >= 0):
        raise invalid("offset", "offset 必须为非负整数", "offset must be a non-negative integer")
    if not (isinstance(limit, int) and 1 <= limit <= MAX_LIMIT):
        raise invalid("limit", f"limit 须为 1–{MAX_LIMIT}", f"limit must be 1-{MAX_LIMIT}")
    b = bill_lines.c
    where = [b.uin == uin]
    if filters.get("month"):
        start, end = _month_bounds(filters["month"])
        where += [b.period_start >= db_time(start), b.period_start < db_time(end)]
    for name, column in (("product", b.product_code), ("resource_id", b.resource_id),
                         ("project_id", b.project_id), ("kind", b.kind)):
        if filters.get(name) is not None:
            where.append(column == filters[name])
    total = conn.execute(select(func.count()).select_from(bill_lines).where(*where)).scalar_one()
    rows = conn.execute(select(bill_lines).where(*where)
                        .order_by(b.period_start, b.id).offset(offset).limit(limit)).mappings()
    items = []
    for row in rows:
        item = dict(row)
        for name in ("period_start", "period_end", "deducted_at"):
            item[name] = from_db_time(item[name])
        items.append(item)
    return {"total": total, "items": items}


def monthly_precision_difference(conn: Connection, actor: Actor, uin: int, month: str) -> dict:
    """SET-3: the month's billing precision difference (月度计费精度差异): the sum of
    its lines' rounding (by period start), 1e-8 yuan; positive = the customer paid
    more than the exact amount and may claim it back, negative = waived."""
    require(actor, uin, FINANCE)
    start, end = _month_bounds(month)
    b = bill_lines.c
    row = conn.execute(select(func.coalesce(func.sum(b.rounding_diff), 0),
                              func.coalesce(func.sum(b.discounted_amount), 0),
                              func.coalesce(func.sum(b.deducted), 0), func.count())
                       .where(b.uin == uin, b.period_start >= db_time(start),
                              b.period_start < db_time(end))).one()
    diff = int(row[0])
    return {"uin": uin, "month": month, "difference": diff, "discounted_total": int(row[1]),
            "deducted_total": int(row[2]), "lines": int(row[3]),
            "meaning": rules.precision_meaning(diff)}


def earliest_usage(conn: Connection, clock: Clock) -> datetime | None:
    """Where settlement jobs begin: the earliest usage recorded (None: none yet)."""
    first = conn.execute(select(func.min(usage_records.c.usage_start))).scalar()
    return from_db_time(first) if first is not None else None


__all__ = ["CYCLES", "settle_period", "settle_late_usage", "list_bill_lines",
           "monthly_precision_difference", "earliest_usage"]
