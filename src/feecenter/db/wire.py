"""One PostgreSQL round trip for a hot path's statement, on libpq itself.

``exchange`` sends a statement (prepared on first use per connection) with a
BEGIN before it when no transaction is open, as one libpq pipeline, and
returns its first row. It goes through ``psycopg.pq``, the documented libpq
binding psycopg is built on, not through a psycopg cursor: a cursor round
trip costs the client ~85 µs of CPU on the benchmark host, and psycopg sends
the transaction's BEGIN as a round trip of its own; this costs ~25 µs and
no extra round trip (docs/decisions.md, "The wire"). psycopg stays in charge
of the connection: it reads the transaction state from libpq, so its own
COMMIT and ROLLBACK close what BEGIN opened here.

Parameters go as text and their types are inferred by the server from where
they stand (column types, comparisons); values are what the DB-API would
take: None, bool, int, str, Decimal, date and naive datetime.

A transaction begun here plans these statements generically
(``SET LOCAL plan_cache_mode = force_generic_plan``, sent with its BEGIN):
left to itself PostgreSQL plans a prepared statement anew for each of its
first five runs, ~1 ms each for a payment's reads, and it prepares them anew
whenever psycopg deallocates every statement (``forget_prepared``). The
setting lasts the transaction, so the statements psycopg prepared itself (after
their fifth run on the connection) are planned generically there too: the coupon
part of a payment, which runs after its writes. Hot paths look rows up by key,
where one plan serves every value.
"""

from __future__ import annotations

import select
from datetime import date, datetime
from decimal import Decimal

from psycopg import errors, pq
from sqlalchemy import Connection

from feecenter.db.precompiled import Precompiled, wrap_error

_PREPARED = "feecenter.prepared"  # connection record info: sql -> statement name
_STALE = "feecenter.stale"  # names that may still exist on the server, to deallocate
_SEQ = "feecenter.prepared_seq"
_READY = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
_IDLE = pq.TransactionStatus.IDLE
_GENERIC_PLANS = b"SET LOCAL plan_cache_mode = force_generic_plan"


def exchange(conn: Connection, sql: str, args: list, *, commit: bool = False
             ) -> tuple[bytes | None, ...]:
    """Run ``sql`` (``$n`` placeholders) with ``args`` in the caller's transaction,
    beginning it if needed, in one round trip; its first row as text values (an
    empty tuple if it returned none). ``commit``: the transaction's COMMIT goes
    in the same round trip, after it (not run if it fails). A server error is
    raised as SQLAlchemy raises it (IntegrityError, …) and leaves the
    transaction failed."""
    driver = Precompiled.driver(conn)
    pgconn = driver.pgconn
    info = conn.connection.info
    prepared = info.setdefault(_PREPARED, {})
    name = prepared.get(sql)
    parse = name is None
    if parse:
        info[_SEQ] = info.get(_SEQ, 0) + 1
        name = f"fc_{info[_SEQ]}".encode()
    idle = pgconn.transaction_status == _IDLE
    stale = info.pop(_STALE, []) if idle else []  # inside a transaction an error would abort it
    values = _texts(args)
    try:
        results = _pipeline(pgconn, name, sql.encode() if parse else None, values, begin=idle,
                            deallocate=stale, commit=commit)
    except BaseException:
        conn.invalidate()  # the connection is mid-exchange: it cannot be trusted again
        raise
    at = 2 * idle  # the Parse's result follows BEGIN and SET LOCAL
    if parse and len(results) > at and results[at].status in _READY:
        prepared[sql] = name  # the Parse held, whatever came after it
    failed = next((r for r in results if r.status not in _READY), None)
    if failed is not None:
        exc = errors.error_from_result(failed, encoding=driver.info.encoding)
        raise wrap_error(conn, sql, args, exc) from exc
    last = next((r for r in reversed(results) if r.status == pq.ExecStatus.TUPLES_OK), None)
    if last is None or last.ntuples == 0:
        return ()
    return tuple(last.get_value(0, i) for i in range(last.nfields))


def forget_prepared(info: dict, driver=None) -> None:
    """psycopg deallocates every prepared statement of the session after a rollback
    or DDL (``DEALLOCATE ALL``, when it has prepared some of its own): called
    before those (db.engine's listeners), so that ours are prepared again, under
    new names. The old names are deallocated at the start of a later exchange
    (they may exist still, if psycopg had nothing to deallocate). ``driver``:
    a rollback's connection; psycopg sends nothing when no transaction is open."""
    if driver is not None and driver.pgconn.transaction_status == _IDLE:
        return
    prepared = info.get(_PREPARED)
    if prepared:
        info.setdefault(_STALE, []).extend(prepared.values())
        prepared.clear()


def _pipeline(pgconn, name: bytes, sql: bytes | None, values: list, *, begin: bool,
              deallocate: list[bytes], commit: bool) -> list:
    """[DEALLOCATE each stale name, Sync …], [BEGIN, SET LOCAL generic plans], [Parse],
    Bind/Execute, [COMMIT], Sync: the main segment's results (a stale name already
    gone fails its own segment only)."""
    pgconn.enter_pipeline_mode()
    for stale in deallocate:
        pgconn.send_query_params(b"DEALLOCATE " + stale, None)
        pgconn.pipeline_sync()
    if begin:
        pgconn.send_query_params(b"BEGIN", None)
        pgconn.send_query_params(_GENERIC_PLANS, None)
    if sql is not None:
        pgconn.send_prepare(name, sql)
    pgconn.send_query_prepared(name, values)
    if commit:
        pgconn.send_query_params(b"COMMIT", None)
    pgconn.pipeline_sync()
    fd = pgconn.socket
    while pgconn.flush():  # nonblocking: the rest goes once the socket takes it
        readable, _, _ = select.select([fd], [fd], [])
        if readable:
            pgconn.consume_input()
    results, syncs = [], len(deallocate) + 1
    while True:
        while pgconn.is_busy():
            select.select([fd], [], [])
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            continue  # the end of one statement's results
        if result.status == pq.ExecStatus.PIPELINE_SYNC:
            syncs -= 1
            if not syncs:
                break
            results = []  # a DEALLOCATE's segment: its outcome does not matter
        elif result.status != pq.ExecStatus.PIPELINE_ABORTED:
            results.append(result)
    pgconn.exit_pipeline_mode()
    return results


def _texts(args: list) -> list[bytes | None]:
    """The parameters in PostgreSQL's text form; ints and strs inline, and each
    distinct timestamp once (a payment repeats its time a dozen times)."""
    seen: dict = {}

    def other(value):
        key = (type(value), value)  # True == 1 == Decimal(1): the type keeps them apart
        found = seen.get(key)
        if found is None:
            found = seen[key] = _text(value)
        return found

    return [b"%d" % v if type(v) is int else v.encode() if type(v) is str
            else None if v is None else other(v) for v in args]


def _text(value) -> bytes | None:
    """A parameter in PostgreSQL's text form."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, (int, Decimal)):
        return str(value).encode()
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise TypeError(f"an aware datetime cannot be stored as it is: {value!r}")
        return value.isoformat(" ").encode()
    if isinstance(value, date):
        return value.isoformat().encode()
    raise TypeError(f"no text form for a {type(value).__name__} parameter")
