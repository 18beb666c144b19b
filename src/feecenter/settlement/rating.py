"""Rating a period's usage (SET-2, SET-7): what each resource × billing item costs.

Set-based, for a whole period at once:

- ``period_usage``: the period's usage per (account, resource, item) of
  postpaid resources whose product settles on the cycle — one ``GROUP BY``
  query; a record belongs to the period its ``usage_end`` closes. Each
  becomes a ``RatedLine``, grouped by account.
- ``attach_facts``: name, product, region and the project with its current
  name of the lines' resources — one query per chunk of accounts, run inside
  the deducting transaction, so a line carries the project the resource is
  in at deduction time (SET-7).
- ``month_to_date``: what the month already billed of the lines whose price
  depends on it (graduated tiers continue through the business month, per
  resource and item; a fixed price is charged by the month's first line) —
  one query per such billing item, over the lines of the resources that need
  it (``bill_lines``' unique index: resource, item, cycle, period key).
- ``rate_lines``: every line priced from a ``PriceBook`` loaded once per
  period, exactly as ``catalog.quote`` prices it.

A ``RatedLine`` keeps its metered ``quantity``, the part of it used while the
resource was stopped (``stopped``, ARR-3: never priced) and the ``chargeable``
part that is priced: the rest, less what resource packages cover (SET-10, see
``settlement.extensions``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter

from sqlalchemy import (BigInteger, Connection, DateTime, Select, and_, bindparam, case, cast,
                        func, select)
from sqlalchemy.exc import DBAPIError

from feecenter.catalog.pricebook import PriceBook
from feecenter.clock import db_time
from feecenter.errors import FeeCenterError
from feecenter.periods import Period
from feecenter.resources.tables import projects, resources
from feecenter.settlement.model import RatedLine, ResourceFacts
from feecenter.settlement.tables import bill_lines
from feecenter.usage.tables import usage_records

MAX_IDS_PER_QUERY = 5_000  # resource ids in one IN list (SQLite allows 32,766 parameters)
STREAM_BATCH = 10_000      # rows fetched at a time by stream_on_driver
_CURSOR_NUMBERS = itertools.count()  # names of PostgreSQL server-side cursors


@dataclass
class MonthToDate:
    """What the business month billed before, per (resource, item), where it matters."""

    before: dict[tuple[str, str], int] = field(default_factory=dict)  # quantity billed
    fixed_charged: set[tuple[str, str]] = field(default_factory=set)  # fixed price paid


# ---------------------------------------------------------------- reading

def period_usage(conn: Connection, cycle: str, period: Period,
                 book: PriceBook) -> dict[int, list[RatedLine]]:
    """The period's usage of postpaid resources settling on ``cycle``, one unpriced line
    per (account, resource, item): accounts in uin order, an account's lines in
    (resource, item) order. One GROUP BY query."""
    codes = sorted(code for code, facts in book.products.items()
                   if facts.postpaid_cycle == cycle)
    if not codes:
        return {}
    u, r = usage_records.c, resources.c
    rows = stream_on_driver(conn, (
        select(u.uin, u.resource_id, u.billing_item, cast(func.sum(u.quantity), BigInteger),
               cast(func.sum(u.stopped_quantity), BigInteger))
        .join(resources, r.id == u.resource_id)
        .where(u.usage_end > db_time(period.start), u.usage_end <= db_time(period.end),
               r.pay_mode == "postpaid", r.product_code.in_(codes))
        .group_by(u.uin, u.resource_id, u.billing_item)))
    by_account: dict[int, list[RatedLine]] = {}
    shared: dict = {}  # one object per account number and item code (memory)
    for uin, resource_id, item, quantity, stopped in rows:
        lines = by_account.get(uin)
        if lines is None:
            lines = by_account[uin] = []
            shared[uin] = uin
        lines.append(RatedLine(shared[uin], resource_id, shared.setdefault(item, item),
                               quantity, stopped))
    order = attrgetter("resource_id", "item")  # in Python: a collation may order otherwise
    for lines in by_account.values():
        lines.sort(key=order)
    return dict(sorted(by_account.items()))


def attach_facts(conn: Connection, lines: list[RatedLine]) -> None:
    """Set each line's resource facts as they are now: one query over the postpaid
    resources of the lines' accounts (a uin range), and by id for any resource no
    longer postpaid since its usage was read (it is billed as it was metered)."""
    if not lines:
        return
    r = resources.c
    facts = _facts(conn, and_(r.uin >= min(line.uin for line in lines),
                              r.uin <= max(line.uin for line in lines), r.pay_mode == "postpaid"))
    missing = sorted({line.resource_id for line in lines} - facts.keys())
    for start in range(0, len(missing), MAX_IDS_PER_QUERY):
        facts.update(_facts(conn, r.id.in_(missing[start:start + MAX_IDS_PER_QUERY])))
    for line in lines:
        line.facts = facts[line.resource_id]


def _facts(conn: Connection, where) -> dict[str, ResourceFacts]:
    r, p = resources.c, projects.c
    rows = rows_on_driver(conn, select(r.id, r.name, r.product_code, r.region, r.project_id,
                                       p.name)
                          .join(projects, p.id == r.project_id).where(where))
    shared: dict = {}  # one object per product, region and project name (memory)
    return {resource_id: ResourceFacts(name, shared.setdefault(product, product),
                                       shared.setdefault(region, region), project_id,
                                       shared.setdefault(project_name, project_name))
            for resource_id, name, product, region, project_id, project_name in rows}


def rows_on_driver(conn: Connection, stmt: Select) -> list[tuple]:
    """All rows of a SELECT run on the DB-API cursor (see ``stream_on_driver``)."""
    return list(stream_on_driver(conn, stmt))


def stream_on_driver(conn: Connection, stmt: Select, batch: int = STREAM_BATCH
                     ) -> Iterator[tuple]:
    """Run a SELECT on the DB-API cursor, in the connection's transaction, and yield its
    rows as plain tuples, ``batch`` at a time (on PostgreSQL from a server-side cursor,
    so a million rows never sit in memory at once) — without SQLAlchemy's per-row
    result processing (~1 µs a row, on a million rows a period). SQLAlchemy still
    writes the SQL for the dialect; parameters are plain values, datetimes converted as
    SQLAlchemy stores them; the selected columns must need no result processing
    (integers and text)."""
    dialect = conn.dialect
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    to_db = DateTime().dialect_impl(dialect).bind_processor(dialect)
    params = {name: to_db(value) if to_db and isinstance(value, datetime) else value
              for name, value in compiled.construct_params().items()}
    args = tuple(params[name] for name in compiled.positiontup) if compiled.positional \
        else params
    if not conn.in_transaction():
        conn.begin()
    driver = conn.connection.dbapi_connection
    cursor = driver.cursor() if dialect.name == "sqlite" else driver.cursor(
        name=f"fc_stream_{next(_CURSOR_NUMBERS)}")
    try:
        cursor.execute(compiled.string, args)
        while rows := cursor.fetchmany(batch):
            yield from rows
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(compiled.string, args, exc, dialect.loaded_dbapi.Error,
                                  dialect=dialect) from exc
    finally:
        cursor.close()


def month_to_date(conn: Connection, cycle: str, period: Period, lines: list[RatedLine],
                  book: PriceBook, *, include_period: bool = False) -> MonthToDate:
    """What the month billed before ``period`` (through it with ``include_period``: a late
    adjustment continues after what the period billed) for the lines whose price depends
    on it; per billing item, one query per MAX_IDS_PER_QUERY resources."""
    wanted: dict[str, set[str]] = {}
    needs = book.needs_month_to_date
    for line in lines:
        if needs(line.uin, line.facts.product, line.item, line.facts.region):
            wanted.setdefault(line.item, set()).add(line.resource_id)
    found = MonthToDate()
    b = bill_lines.c
    fixed_paid = func.max(case((and_(b.price_kind == "fixed", b.discounted_amount > 0), 1),
                               else_=0))
    upto = b.period_key <= period.key if include_period else b.period_key < period.key
    # tiers continue on charged usage
    charged = func.sum(b.quantity - b.package_quantity - b.stopped_quantity)
    stmt = (select(b.resource_id, charged, fixed_paid)
            .where(b.resource_id.in_(bindparam("ids", expanding=True)),
                   b.billing_item == bindparam("item"), b.cycle == cycle,
                   b.period_key >= period.key[:7], upto)  # keys start with the business month
            .group_by(b.resource_id))
    for item, ids in sorted(wanted.items()):
        ordered = sorted(ids)
        for start in range(0, len(ordered), MAX_IDS_PER_QUERY):
            rows = conn.execute(stmt, {"ids": ordered[start:start + MAX_IDS_PER_QUERY],
                                       "item": item})
            for resource_id, quantity, fixed in rows:
                found.before[(resource_id, item)] = int(quantity)
                if fixed:
                    found.fixed_charged.add((resource_id, item))
    return found


# ---------------------------------------------------------------- pricing

def unpriceable(conn: Connection, book: PriceBook, lines: list[RatedLine]) -> dict[int, str]:
    """Accounts with a line the book cannot price, and why (the catalog's own
    refusal: no price in force for the item in that region, say). Read only,
    before anything is written, so the caller can settle the other accounts."""
    failed: dict[int, str] = {}
    terms = book.terms
    for line in lines:
        product, region = line.facts.product, line.facts.region
        if line.uin in failed or terms(line.uin, product, line.item, region):
            continue
        try:  # what the book lacks, the catalog may still price (or says why not)
            # the chargeable quantity: never negative, even on a late adjustment's line
            book.quote(conn, line.uin, product, line.item, region, line.chargeable)
        except FeeCenterError as exc:
            failed[line.uin] = f"{line.resource_id} {line.item}: {exc.message}"
    return failed


def rate_lines(conn: Connection, book: PriceBook, lines: list[RatedLine],
               month: MonthToDate) -> None:
    """SET-2: price each line's chargeable quantity at the book's instant; tiers continue
    the month to date; a fixed price already charged this month is not charged again."""
    before, fixed_charged, rate = month.before, month.fixed_charged, book.rate
    for line in lines:
        key = (line.resource_id, line.item)
        priced = rate(conn, line.uin, line.facts.product, line.item, line.facts.region,
                      line.chargeable, before.get(key, 0))
        if priced.price_kind == "fixed" and key in fixed_charged:
            priced = priced._replace(amount=0)  # a fixed price is charged once a month
        line.rate = priced
