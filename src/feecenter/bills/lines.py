"""The L3 cost-bill lines (BIL-1, BIL-5, BIL-6) as bills reads them, read-only, from
the tables of settlement (postpaid ``bill_lines``) and orders (prepaid ``orders``),
in one shape; and the set-based day aggregate of those lines that the roll-ups
store (``day_aggregates``) and the bill check recomputes; ``lines_query``: one
account's lines as one SQL query in L3 order, for paging and streaming.

Which orders are cost-bill lines: those whose money was deducted — a new
purchase, renewal or upgrade once delivered (its freeze deducted; ``closed_at``
is the deduction time; it stays a line when later refunded), a refund or a
downgrade (negative amounts, BIL-5) when made. A paid order waiting for a
manual delivery holds a freeze, not a deduction: it shows once delivered.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta

from sqlalchemy import (BigInteger, Connection, DateTime, Select, String, bindparam, case, func,
                        literal, null, select, union_all)

from feecenter.clock import BUSINESS_TZ, add_months, db_time, from_db_time, to_utc
from feecenter.orders.tables import orders
from feecenter.settlement.tables import bill_lines

RATED_PER_FEN = 1_000_000  # 1e-8 yuan in one fen
DEDUCTED_STATES = ("delivered", "refunded")
ORDER_KINDS = ("new", "renew", "upgrade", "downgrade", "refund")


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The business day ``day`` as naive-UTC [start, end) for the stored timestamps."""
    start = datetime(day.year, day.month, day.day, tzinfo=BUSINESS_TZ)
    return db_time(start), db_time(start + timedelta(days=1))


def month_start(month: str) -> datetime:
    """YYYY-MM (already checked) -> the month's first instant, aware UTC."""
    return to_utc(datetime(int(month[:4]), int(month[5:7]), 1, tzinfo=BUSINESS_TZ))


def _usage_month(column, first: datetime, last: datetime):
    """SQL: the business month (YYYY-MM) of ``column`` (naive UTC), for values from
    ``first`` to ``last`` (aware): a CASE over the month starts, portable."""
    starts, month = [], to_utc(datetime(first.astimezone(BUSINESS_TZ).year,
                                        first.astimezone(BUSINESS_TZ).month, 1,
                                        tzinfo=BUSINESS_TZ))
    while month <= last:
        starts.append(month)
        month = add_months(month, 1)
    names = [m.astimezone(BUSINESS_TZ).strftime("%Y-%m") for m in starts]
    whens = [(column >= db_time(start), name)
             for start, name in reversed(list(zip(starts, names)))]
    return case(*whens, else_=names[0]) if len(whens) > 1 else literal(names[0])


def _postpaid_day(conn: Connection, day: date) -> Select | None:
    """The day's postpaid lines grouped by the roll-up key (None: no lines)."""
    b = bill_lines.c
    start, end = day_bounds(day)
    in_day = [b.deducted_at >= start, b.deducted_at < end]
    first, last = conn.execute(select(func.min(b.period_start), func.max(b.period_start))
                               .where(*in_day)).one()
    if first is None:
        return None
    inner = select(bill_lines, _usage_month(b.period_start, from_db_time(first),
                                            from_db_time(last)).label("usage_month")
                   ).where(*in_day).subquery()
    i = inner.c
    listed = i.price_kind == "list"
    return (select(i.uin, i.usage_month, i.product_code, i.project_id, i.project_name,
                   i.region, literal("postpaid").label("pay_mode"), i.resource_id,
                   func.sum(case((listed, i.list_amount), else_=i.discounted_amount))
                   .label("original_cost"),
                   func.sum(i.discounted_amount).label("discounted_cost"),
                   func.sum(i.deducted).label("deducted"),
                   func.sum(i.voucher_paid).label("voucher_paid"),
                   func.sum(i.cash_paid + i.credit_paid).label("cash_paid"),
                   func.sum(i.gift_paid).label("gift_paid"),
                   func.sum(i.rounding_diff).label("precision_diff"),
                   func.count().label("lines"))
            .group_by(i.uin, i.usage_month, i.product_code, i.project_id, i.project_name,
                      i.region, i.resource_id))


def earliest_line(conn: Connection) -> datetime | None:
    """The earliest deduction time of any L3 line, postpaid or prepaid (None: none)."""
    times = [conn.execute(select(func.min(bill_lines.c.deducted_at))).scalar(),
             conn.execute(select(func.min(orders.c.closed_at)).where(
                 orders.c.state.in_(DEDUCTED_STATES))).scalar()]
    found = [t for t in times if t is not None]
    return from_db_time(min(found)) if found else None


def order_line_conditions(start: datetime, end: datetime) -> list:
    """Orders that are cost-bill lines deducted in [start, end) (naive UTC)."""
    o = orders.c
    return [o.state.in_(DEDUCTED_STATES), o.kind.in_(ORDER_KINDS), o.closed_at.is_not(None),
            o.closed_at >= start, o.closed_at < end]


def _prepaid_day(day: date) -> Select:
    """The day's prepaid order lines grouped by the roll-up key; usage month = the
    deduction month (a prepaid fee belongs wholly to the month it was deducted)."""
    o = orders.c
    month = day.strftime("%Y-%m")
    listed = o.price_kind == "list"
    return (select(o.uin, literal(month).label("usage_month"), o.product_code, o.project_id,
                   o.project_name, o.region, literal("prepaid").label("pay_mode"),
                   o.resource_id,
                   func.sum(case((listed, o.list_amount), else_=o.amount) * RATED_PER_FEN)
                   .label("original_cost"),
                   func.sum(o.amount * RATED_PER_FEN).label("discounted_cost"),
                   func.sum(o.amount).label("deducted"),
                   func.sum(o.paid_coupon).label("voucher_paid"),
                   func.sum(o.paid_cash + o.paid_credit - o.refunded_cash).label("cash_paid"),
                   func.sum(o.paid_gift - o.refunded_gift).label("gift_paid"),
                   func.sum(literal(0)).label("precision_diff"),
                   func.count().label("lines"))
            .where(*order_line_conditions(*day_bounds(day)))
            .group_by(o.uin, o.product_code, o.project_id, o.project_name, o.region,
                      o.resource_id))


def day_aggregates(conn: Connection, day: date):
    """One SELECT of the business day's L3 lines (postpaid and prepaid) grouped by the
    roll-up key, columns in ``AGGREGATE_COLUMNS`` order; set-based."""
    parts = [p for p in (_postpaid_day(conn, day), _prepaid_day(day)) if p is not None]
    return union_all(*parts) if len(parts) > 1 else parts[0]


AGGREGATE_COLUMNS = ("uin", "usage_month", "product_code", "project_id", "project_name",
                     "region", "pay_mode", "resource_id", "original_cost", "discounted_cost",
                     "deducted", "voucher_paid", "cash_paid", "gift_paid", "precision_diff",
                     "lines")


# ---------------------------------------------------------------- L3 lines in one shape

def postpaid_lines(conn: Connection, uin: int, start: datetime, end: datetime,
                   usage_before: datetime | None = None, usage_from: datetime | None = None
                   ) -> list[dict]:
    """An account's postpaid lines deducted in [start, end) (naive UTC), optionally
    only those whose usage began before ``usage_before`` / from ``usage_from``."""
    b = bill_lines.c
    where = [b.uin == uin, b.deducted_at >= start, b.deducted_at < end]
    if usage_before is not None:
        where.append(b.period_start < usage_before)
    if usage_from is not None:
        where.append(b.period_start >= usage_from)
    rows = conn.execute(select(bill_lines).where(*where).order_by(b.deducted_at, b.id))
    return [_postpaid(row) for row in rows.mappings()]


def _postpaid(row) -> dict:
    listed = row["price_kind"] == "list"
    return {
        "line_id": f"postpaid:{row['id']}", "pay_mode": "postpaid",
        "item": row["billing_item"], "kind": row["kind"], "price_kind": row["price_kind"],
        "product_code": row["product_code"], "region": row["region"],
        "project_id": row["project_id"], "project_name": row["project_name"],
        "resource_id": row["resource_id"], "resource_name": row["resource_name"],
        "deducted_at": from_db_time(row["deducted_at"]),
        "usage_start": from_db_time(row["period_start"]),
        "usage_end": from_db_time(row["period_end"]),
        # BIL-6: no list price, discount or original cost on a contract/fixed line
        "unit_price": row["unit_price"] if listed else None,
        "discount_bp": row["discount_bp"] if listed else None,
        "original_cost": row["list_amount"] if listed else None,
        "discounted_cost": row["discounted_amount"], "deducted": row["deducted"],
        "voucher_paid": row["voucher_paid"], "cash_paid": row["cash_paid"] + row["credit_paid"],
        "gift_paid": row["gift_paid"], "precision_diff": row["rounding_diff"]}


def prepaid_lines(conn: Connection, uin: int, start: datetime, end: datetime) -> list[dict]:
    """An account's prepaid order lines deducted in [start, end) (naive UTC)."""
    o = orders.c
    rows = conn.execute(select(orders).where(o.uin == uin, *order_line_conditions(start, end))
                        .order_by(o.closed_at, o.id))
    return [prepaid_line(row) for row in rows.mappings()]


def prepaid_line(row) -> dict:
    listed = row["price_kind"] == "list"
    deducted_at = from_db_time(row["closed_at"])
    return {
        "line_id": f"prepaid:{row['id']}", "pay_mode": "prepaid",
        "item": row["spec_item"], "kind": row["kind"], "price_kind": row["price_kind"],
        "product_code": row["product_code"], "region": row["region"],
        "project_id": row["project_id"], "project_name": row["project_name"],
        "resource_id": row["resource_id"], "resource_name": row["resource_name"],
        "deducted_at": deducted_at,
        "usage_start": deducted_at, "usage_end": None,
        "unit_price": row["unit_price"] if listed else None,
        "discount_bp": row["discount_bp"] if listed else None,
        "original_cost": row["list_amount"] * RATED_PER_FEN if listed else None,
        "discounted_cost": row["amount"] * RATED_PER_FEN, "deducted": row["amount"],
        "voucher_paid": row["paid_coupon"],
        "cash_paid": row["paid_cash"] + row["paid_credit"] - row["refunded_cash"],
        "gift_paid": row["paid_gift"] - row["refunded_gift"], "precision_diff": 0}


# ---------------------------------------------------------------- L3 lines in SQL order

def line_order(line: dict) -> tuple:
    """The L3 order after the deduction time: postpaid before prepaid, then the line's
    numeric id (the order ``lines_query`` sorts by in SQL)."""
    pay_mode, number = line["line_id"].split(":")
    return pay_mode, int(number)


def _postpaid_columns():
    b = bill_lines.c
    return [literal("postpaid", String).label("pay_mode"), b.id.label("number"),
            b.billing_item.label("item"), b.kind, b.price_kind, b.product_code, b.region,
            b.project_id, b.project_name, b.resource_id, b.resource_name, b.deducted_at,
            b.period_start.label("usage_start"), b.period_end.label("usage_end"),
            b.unit_price, b.discount_bp, b.list_amount.label("original_cost"),
            b.discounted_amount.label("discounted_cost"), b.deducted, b.voucher_paid,
            (b.cash_paid + b.credit_paid).label("cash_paid"), b.gift_paid,
            b.rounding_diff.label("precision_diff")]


def _prepaid_columns():
    o = orders.c
    return [literal("prepaid", String).label("pay_mode"), o.id.label("number"),
            o.spec_item.label("item"), o.kind, o.price_kind, o.product_code, o.region,
            o.project_id, o.project_name, o.resource_id, o.resource_name,
            o.closed_at.label("deducted_at"), o.closed_at.label("usage_start"),
            null().cast(DateTime).label("usage_end"), o.unit_price, o.discount_bp,
            (o.list_amount * RATED_PER_FEN).label("original_cost"),
            (o.amount * RATED_PER_FEN).label("discounted_cost"), o.amount.label("deducted"),
            o.paid_coupon.label("voucher_paid"),
            (o.paid_cash + o.paid_credit - o.refunded_cash).label("cash_paid"),
            (o.paid_gift - o.refunded_gift).label("gift_paid"),
            literal(0, BigInteger).label("precision_diff")]


@functools.cache  # four statements: usage bounded from / before, or not
def _lines_query(usage_from: bool, usage_before: bool):
    b, o = bill_lines.c, orders.c
    where = [b.uin == bindparam("uin"), b.deducted_at >= bindparam("deducted_from"),
             b.deducted_at < bindparam("deducted_before")]
    if usage_from:
        where.append(b.period_start >= bindparam("usage_from"))
    if usage_before:
        where.append(b.period_start < bindparam("usage_before"))
    prepaid = [o.uin == bindparam("uin"), o.state.in_(DEDUCTED_STATES), o.kind.in_(ORDER_KINDS),
               o.closed_at.is_not(None), o.closed_at >= bindparam("prepaid_from"),
               o.closed_at < bindparam("prepaid_before")]
    query = union_all(select(*_postpaid_columns()).where(*where),
                      select(*_prepaid_columns()).where(*prepaid)).subquery("l3")
    # the keys alone: on bill_lines an index-only scan of (uin, deducted_at, id)
    keys = union_all(select(_POSTPAID, b.id.label("number"), b.deducted_at).where(*where),
                     select(_PREPAID, o.id.label("number"), o.closed_at.label("deducted_at"))
                     .where(*prepaid)).subquery("l3_keys")
    page = (select(keys.c.pay_mode, keys.c.number)
            .order_by(keys.c.deducted_at, keys.c.pay_mode, keys.c.number)
            .offset(bindparam("offset")).limit(bindparam("limit")))
    return (select(func.count()).select_from(keys), _ordered(query), page)


_POSTPAID = literal("postpaid", String).label("pay_mode")
_PREPAID = literal("prepaid", String).label("pay_mode")


def _ordered(query) -> Select:
    return select(query).order_by(query.c.deducted_at, query.c.pay_mode, query.c.number)


@functools.cache
def _lines_by_id():
    b, o = bill_lines.c, orders.c
    query = union_all(
        select(*_postpaid_columns()).where(b.id.in_(bindparam("postpaid", expanding=True))),
        select(*_prepaid_columns()).where(o.id.in_(bindparam("prepaid", expanding=True)))
    ).subquery("l3_page")
    return _ordered(query)


def page_rows(conn: Connection, page: Select, params: dict, offset: int, limit: int) -> list:
    """The rows of one page of ``lines_query``, late: the page's keys first (sorting
    and skipping the account's month on the index alone), then those lines' rows."""
    keys = conn.execute(page, {**params, "offset": offset, "limit": limit}).all()
    if not keys:
        return []
    ids = {"postpaid": [n for mode, n in keys if mode == "postpaid"],
           "prepaid": [n for mode, n in keys if mode == "prepaid"]}
    return conn.execute(_lines_by_id(), ids).mappings().all()


def lines_query(uin: int, postpaid: tuple, prepaid: tuple) -> tuple[dict, tuple]:
    """One account's L3 lines in the one line shape: postpaid lines deducted in
    [postpaid[0], postpaid[1]) whose usage began from postpaid[2] (None: any) and
    before postpaid[3] (None: any), UNION ALL prepaid order lines deducted in
    [prepaid[0], prepaid[1]) (naive UTC). Returns (parameters, (count statement,
    every line in L3 order — deduction time, pay mode, id —, the keys of a page of
    them for ``page_rows``: the ``offset`` and ``limit`` parameters)); the
    statements are built once and cached. Served by the indexes on bill_lines
    (uin, deducted_at, id) and orders (uin, closed_at)."""
    deducted_from, deducted_before, usage_from, usage_before = postpaid
    params = {"uin": uin, "deducted_from": deducted_from, "deducted_before": deducted_before,
              "prepaid_from": prepaid[0], "prepaid_before": prepaid[1]}
    if usage_from is not None:
        params["usage_from"] = usage_from
    if usage_before is not None:
        params["usage_before"] = usage_before
    return params, _lines_query(usage_from is not None, usage_before is not None)


def line_of(row) -> dict:
    """A row of ``lines_query`` as the L3 line dict (the shape of ``postpaid_lines``
    and ``prepaid_lines``; BIL-6: no list price, discount or original cost off the
    list price)."""
    listed = row["price_kind"] == "list"
    deducted_at = from_db_time(row["deducted_at"])
    return {
        "line_id": f"{row['pay_mode']}:{row['number']}", "pay_mode": row["pay_mode"],
        "item": row["item"], "kind": row["kind"], "price_kind": row["price_kind"],
        "product_code": row["product_code"], "region": row["region"],
        "project_id": row["project_id"], "project_name": row["project_name"],
        "resource_id": row["resource_id"], "resource_name": row["resource_name"],
        "deducted_at": deducted_at, "usage_start": from_db_time(row["usage_start"]),
        "usage_end": from_db_time(row["usage_end"]) if row["usage_end"] is not None else None,
        "unit_price": row["unit_price"] if listed else None,
        "discount_bp": row["discount_bp"] if listed else None,
        "original_cost": row["original_cost"] if listed else None,
        "discounted_cost": row["discounted_cost"], "deducted": row["deducted"],
        "voucher_paid": row["voucher_paid"], "cash_paid": row["cash_paid"],
        "gift_paid": row["gift_paid"], "precision_diff": row["precision_diff"]}
