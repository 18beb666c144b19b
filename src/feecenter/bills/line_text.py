"""The L3 lines of a month as the download center's text cells, formatted by the
database (BIL-7, issue #24): ``line_text_statement`` selects, from the query of
``bills.service.iter_month_lines`` (the UNION ALL of postpaid bill lines and
prepaid order lines, in L3 order), every cell of ``exports.LINE_COLUMNS`` already
as text — the same text ``exports.line_row`` makes of a line in Python. Owns the
SQL formatting constructs (business time, yuan from fen, 1e-8 yuan, discount
from basis points), written once and compiled per dialect, and the two ways the
rows leave the database: ``iter_line_text`` (rows of text, streamed) and, on
PostgreSQL, ``copy_line_csv`` (the CSV written by the server's ``COPY ... TO
STDOUT``).

The cells, as ``line_row`` makes them: times "YYYY-MM-DD HH:MM:SS" in business
time (Asia/Shanghai), seconds truncated; fen as yuan with 2 decimals, 1e-8 yuan
with 8, negative amounts "-0.05" (``money.format_yuan`` / ``format_rated``); the
discount "0.8000" from 8000 basis points; "-" as list price, discount and
original cost of a line not at the list price (BIL-6); "" for a resource without
a name and for a prepaid line's usage end.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import BinaryIO

from sqlalchemy import Connection, Select, String, and_, case, cast, func, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from feecenter.accounts.permissions import Actor
from feecenter.bills import service
from feecenter.clock import BUSINESS_TZ, BUSINESS_YEARS

STREAM_CHUNK = 2_000  # rows fetched at a time by iter_line_text
DASH = "-"  # BIL-6: no list price, discount or original cost
BASE_OFFSET = timedelta(hours=8)  # Asia/Shanghai's standard time, UTC+8


# ---------------------------------------------------------------- business time

@functools.cache
def offset_changes() -> tuple[tuple[datetime, datetime, timedelta], ...]:
    """The [start, end) spans (naive UTC) in which Asia/Shanghai is not UTC+8, from
    the year before BUSINESS_YEARS begins (its first business day starts the UTC
    day before) to 2100: its summer time of 1986-1991 (UTC+9). So a fixed +8 h is
    NOT exact for every business year (BUSINESS_YEARS starts in 1970): the SQL adds
    9 hours in these spans, 8 elsewhere. After 2037 zoneinfo applies the zone's
    POSIX rule, "CST-8", with no summer time: no span past the scan's end
    (tests/test_bill_export_text.py checks sample years up to BUSINESS_YEARS' end).
    Found day by day, each change bisected to the second (~0.1 s, once)."""
    spans, step = [], timedelta(days=1)
    when = datetime(BUSINESS_YEARS.start - 1, 1, 1, tzinfo=timezone.utc)
    end = datetime(2100, 1, 1, tzinfo=timezone.utc)
    offset, since = when.astimezone(BUSINESS_TZ).utcoffset(), None
    while when < end:
        later = when + step
        found = later.astimezone(BUSINESS_TZ).utcoffset()
        if found != offset:
            low, high = when, later  # offset at low, found at high
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(BUSINESS_TZ).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            change = high.replace(tzinfo=None, microsecond=0)
            if found != BASE_OFFSET:
                since = (change, found)
            elif since is not None:
                spans.append((since[0], change, since[1]))
                since = None
            offset = found
        when = later
    if since is not None:
        raise AssertionError("Asia/Shanghai off UTC+8 past 2100: extend offset_changes")
    return tuple(spans)


class business_datetime(FunctionElement):
    """A stored naive-UTC timestamp as business time "YYYY-MM-DD HH:MM:SS" (NULL: NULL)."""

    type = String()
    inherit_cache = True
    name = "business_datetime"


class business_date(FunctionElement):
    """A stored naive-UTC timestamp's business date "YYYY-MM-DD"."""

    type = String()
    inherit_cache = True
    name = "business_date"


class business_month(FunctionElement):
    """A stored naive-UTC timestamp's business month "YYYY-MM"."""

    type = String()
    inherit_cache = True
    name = "business_month"


_SQLITE_TIME = {business_datetime: "datetime", business_date: "date",
                business_month: "month"}
_PG_TIME = {business_datetime: "YYYY-MM-DD HH24:MI:SS", business_date: "YYYY-MM-DD",
            business_month: "YYYY-MM"}


def _hours(offset: timedelta) -> int:
    return int(offset.total_seconds()) // 3600


def _offset_sql(x: str, literal_of: Callable[[datetime], str],
                hours_of: Callable[[int], str]) -> str:
    """SQL: the business-time offset of timestamp ``x``: +8 h outside the spans of
    ``offset_changes`` (tested first: a line of today costs one comparison), the
    span's offset inside one."""
    spans = offset_changes()
    if not spans:
        return hours_of(_hours(BASE_OFFSET))
    whens = " ".join(f"WHEN {x} >= {literal_of(start)} AND {x} < {literal_of(end)} "
                     f"THEN {hours_of(_hours(offset))}" for start, end, offset in spans)
    return (f"CASE WHEN {x} >= {literal_of(spans[-1][1])} OR {x} < {literal_of(spans[0][0])} "
            f"THEN {hours_of(_hours(BASE_OFFSET))} {whens} "
            f"ELSE {hours_of(_hours(BASE_OFFSET))} END")


@compiles(business_datetime, "sqlite")
@compiles(business_date, "sqlite")
@compiles(business_month, "sqlite")
def _business_time_sqlite(element, compiler, **kw) -> str:
    # stored as "YYYY-MM-DD HH:MM:SS.ffffff", text that compares in time order: the
    # spans' bounds are text literals compared with it as stored; the value is cut
    # to the second before datetime() (which rounds .9995 s up to the next second,
    # where Python's isoformat truncates)
    stored = compiler.process(list(element.clauses)[0], **kw)
    offset = _offset_sql(stored, lambda when: f"'{when.isoformat(' ')}'",
                         lambda hours: f"'+{hours} hours'")
    function = _SQLITE_TIME[type(element)]
    value = f"substr({stored}, 1, 19)"
    if function == "month":
        return f"substr(date({value}, {offset}), 1, 7)"
    return f"{function}({value}, {offset})"


@compiles(business_datetime, "postgresql")
@compiles(business_date, "postgresql")
@compiles(business_month, "postgresql")
def _business_time_postgresql(element, compiler, **kw) -> str:
    # to_char truncates the fraction of a second, as Python's isoformat does
    x = compiler.process(list(element.clauses)[0], **kw)
    offset = _offset_sql(x, lambda when: f"TIMESTAMP '{when.isoformat(' ')}'",
                         lambda hours: f"INTERVAL '{hours} hours'")
    return f"to_char({x} + {offset}, '{_PG_TIME[type(element)]}')"


# ---------------------------------------------------------------- amounts

class yuan_text(FunctionElement):
    """Fen as yuan with 2 decimals, "-0.05" below zero (``money.format_yuan``)."""

    type = String()
    inherit_cache = True
    name = "yuan_text"


class rated_text(FunctionElement):
    """1e-8 yuan with 8 decimals (``money.format_rated``)."""

    type = String()
    inherit_cache = True
    name = "rated_text"


class discount_text(FunctionElement):
    """Basis points (not negative) as the share paid with 4 decimals: 8000 -> "0.8000"."""

    type = String()
    inherit_cache = True
    name = "discount_text"


_PLACES = {yuan_text: 2, rated_text: 8, discount_text: 4}


@compiles(yuan_text, "sqlite")
@compiles(rated_text, "sqlite")
@compiles(discount_text, "sqlite")
def _decimals_sqlite(element, compiler, **kw) -> str:
    # integer division and remainder of the magnitude, printf's zero padding: the
    # cheapest form on SQLite (concatenation costs more); printf's %d is 64-bit
    x = compiler.process(list(element.clauses)[0], **kw)
    places = _PLACES[type(element)]
    scale = 10 ** places
    return (f"printf('%s%d.%0{places}d', CASE WHEN {x} < 0 THEN '-' ELSE '' END, "
            f"abs({x}) / {scale}, abs({x}) % {scale})")


@compiles(yuan_text, "postgresql")
@compiles(rated_text, "postgresql")
@compiles(discount_text, "postgresql")
def _decimals_postgresql(element, compiler, **kw) -> str:
    # numeric multiplication is exact and its scale the sum of its factors' (a
    # division's scale follows the significant digits: 19-digit values lost their
    # cents): "-0.05", "0.00", "12.30"
    x = compiler.process(list(element.clauses)[0], **kw)
    places = _PLACES[type(element)]
    return f"(({x})::numeric * 0.{'0' * (places - 1)}1)::text"


# ---------------------------------------------------------------- the lines as text

def line_text_columns(line, month: str) -> list:
    """The cells of ``exports.LINE_COLUMNS`` as SQL text expressions over the columns
    of ``bills.lines.lines_query``'s line shape (``line``: its selected columns)."""
    listed = line.price_kind == "list"
    return [
        line.pay_mode + ":" + cast(line.number, String),
        business_datetime(line.deducted_at),
        business_date(line.deducted_at),
        # the statement selects exactly the lines statistic_month puts in ``month``
        # (bills.service._month_query): their bill month is ``month``
        literal(month, String),
        # usage month: a postpaid line's usage start's month; a prepaid line's usage
        # start is its deduction time, whose month ``_with_months`` gives it
        business_month(line.usage_start),
        line.pay_mode, line.kind, line.product_code, line.region,
        cast(line.project_id, String), line.project_name, line.resource_id,
        func.coalesce(line.resource_name, ""), line.item, line.price_kind,
        business_datetime(line.usage_start),
        func.coalesce(business_datetime(line.usage_end), ""),
        case((and_(listed, line.unit_price.is_not(None)), rated_text(line.unit_price)),
             else_=DASH),
        case((listed, discount_text(line.discount_bp)), else_=DASH),
        case((listed, rated_text(line.original_cost)), else_=DASH),
        rated_text(line.discounted_cost), yuan_text(line.deducted),
        yuan_text(line.voucher_paid), yuan_text(line.cash_paid), yuan_text(line.gift_paid),
        rated_text(line.precision_diff),
    ]


def line_text_statement(conn: Connection, actor: Actor, uin: int,
                        month: str) -> tuple[Select, dict]:
    """(statement, parameters): the account's L3 lines of ``month`` in L3 order
    (deduction time, pay mode, id), each row the export's cells as text in
    ``exports.LINE_COLUMNS`` order. FINANCE and the month checked by
    ``bills.service.month_lines_statement``."""
    every, params = service.month_lines_statement(conn, actor, uin, month)
    return every.with_only_columns(*line_text_columns(every.selected_columns, month)), params


def iter_line_text(conn: Connection, actor: Actor, uin: int, month: str) -> Iterator[tuple]:
    """The rows of ``line_text_statement``, streamed (``STREAM_CHUNK`` at a time; a
    server-side cursor on PostgreSQL); closing the iterator closes the cursor."""
    statement, params = line_text_statement(conn, actor, uin, month)
    result = conn.execute(statement, params, execution_options={"yield_per": STREAM_CHUNK})
    return _rows(result)


def _rows(result) -> Iterator[tuple]:
    try:
        yield from result
    finally:
        result.close()


def copy_line_csv(conn: Connection, actor: Actor, uin: int, month: str, out: BinaryIO,
                  progress: Callable[[int], None], every: int) -> int:
    """PostgreSQL: the rows of ``line_text_statement`` as CSV records (UTF-8, "\\n"
    ends a record, fields quoted only when they hold a comma, a quote or a line
    break — as ``csv.writer``), written by the server's ``COPY (...) TO STDOUT``
    (psycopg's ``cursor.copy``) inside ``conn``'s transaction, each record to
    ``out`` as it comes; ``progress(records written)`` every ``every`` records.
    The number of records. Empty cells go out as NULL, which COPY writes bare
    (an empty string it would write as ``""``)."""
    statement, params = line_text_statement(conn, actor, uin, month)
    cells = [func.nullif(cell, "") for cell in statement.selected_columns]
    compiled = statement.with_only_columns(*cells).compile(dialect=conn.dialect)
    expanded = compiled.construct_expanded_state(params)  # the IN lists' values too
    driver = conn.connection.driver_connection  # psycopg's, in conn's transaction
    written = 0
    with driver.cursor() as cursor:
        if driver.info.encoding != "utf-8":
            cursor.execute("SET LOCAL client_encoding TO 'UTF8'")
        with cursor.copy(f"COPY ({expanded.statement}) TO STDOUT (FORMAT csv)",
                         expanded.parameters) as copy:
            for record in copy:  # one CopyData message: one record
                out.write(record)
                written += 1
                if written % every == 0:
                    progress(written)
        counted = cursor.rowcount
    if counted != written:
        raise AssertionError(f"COPY wrote {counted} records, {written} were read")
    return written


__all__ = ["line_text_statement", "line_text_columns", "iter_line_text", "copy_line_csv",
           "offset_changes"]
