"""Hot-path statements sent on the DB-API driver inside the caller's transaction:
one at a time (``send``, ``send_rows``), reads together (``reads``) and writes
together (``writes``).

On PostgreSQL every round trip costs the client ~50-100 µs in psycopg before
the server does anything, so a hot path (the payment: docs/orders.md) sends
its reads as ONE statement and its writes as ONE statement: each part a
``WITH`` query of it, in PostgreSQL's own ``$n`` placeholders (psycopg's
``RawCursor``: no query parsing on the client), prepared once per shape
(``prepare=True``). Each goes in a psycopg pipeline block (``conn.pipeline()``)
with what belongs beside it: the transaction's BEGIN and ``SET LOCAL
plan_cache_mode`` before the reads, the unit of work's COMMIT after the writes. Only psycopg's
public API is used; psycopg owns the connection's state (transaction,
prepared statements). On SQLite, where a statement costs microseconds and
there is no round trip, everything runs as it is sent.

Only the fast paths may use this module and ``db.precompiled``: ledger, funds,
orders, resources and settlement posting (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import msgspec
from sqlalchemy import Connection, DateTime, Numeric, bindparam, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from feecenter.db.precompiled import PENDING, Precompiled, pyformat_positional, wrap_error
from feecenter.errors import IdempotencyConflict, LedgerInvariantBroken

_QUEUE = "feecenter.queue"  # conn.info: the reads or writes being queued, if any
WRITE_PARAMETERS = 30_000  # PostgreSQL takes at most 65,535 parameters a statement
INSERT_ROWS = 64  # rows per multi-row INSERT of send_rows; more are sent in chunks
_PLACEHOLDER = re.compile(r"%%|%s")


class Sent:
    """A statement sent with ``send``; its rows are read when asked for."""

    __slots__ = ("_conn", "_cursor", "_sql", "_rows")

    def __init__(self, conn: Connection, cursor, sql: str, rows: list | None = None):
        self._conn, self._cursor, self._sql, self._rows = conn, cursor, sql, rows

    def rows(self) -> list[tuple]:
        if self._rows is None:
            if self._cursor is None:
                raise LedgerInvariantBroken("读取尚未发送完毕", "rows read before the reads ended")
            try:
                self._rows = self._cursor.fetchall()
            except self._conn.dialect.loaded_dbapi.Error as exc:
                raise wrap_error(self._conn, self._sql, (), exc) from exc
            finally:
                self._cursor.close()
        return self._rows


def send(conn: Connection, statement: Precompiled, params: dict, *, returns: bool = False,
         expect: Expect | None = None) -> Sent:
    """Run a precompiled statement, or queue it inside ``reads`` / ``writes``.

    ``returns``: its rows will be read (``Sent.rows()``; inside ``reads``, once
    they end). ``expect``: the rows an INSERT/UPDATE/DELETE must change, else
    its error is raised: at once, or when ``writes`` end. ``params`` is the
    caller's own dict: bind processing converts it in place.
    """
    sql, arrange, processors = statement._compiled(conn.dialect)
    for name, processor in processors.items():
        if name in params:
            params[name] = processor(params[name])
    args = params if arrange is None else arrange(params)
    queue = conn.info.get(_QUEUE)
    if queue is not None:
        return queue.add(statement, sql, args, returns, expect)
    return _dispatch(conn, sql, args, returns, expect)


class Expect(NamedTuple):
    """How many rows a write must change, and the error if it changed another number."""

    rows: int
    error: Callable[[], Exception]


_NOTHING = Sent(None, None, "", [])  # what a statement that returns nothing gives back


def _dispatch(conn: Connection, sql: str, args, returns: bool, expect: Expect | None) -> Sent:
    cursor = Precompiled.driver(conn).cursor()
    try:
        cursor.execute(sql, args)
    except conn.dialect.loaded_dbapi.Error as exc:
        cursor.close()
        raise wrap_error(conn, sql, args, exc) from exc
    if not returns:
        changed = cursor.rowcount
        cursor.close()
        if expect is not None and changed != expect.rows:
            raise expect.error()
        return _NOTHING
    sent = Sent(conn, cursor, sql)
    sent.rows()  # read at once, so no statement is left open
    return sent


def refuse_sqlalchemy_inside(conn, cursor, statement, parameters, context, executemany):
    """A SQLAlchemy statement inside ``reads`` or ``writes`` would run before what
    they queued: only ``send`` and ``send_rows`` may run there. Listens on
    PostgreSQL engines (``db.engine.make_engine``), the ones that queue."""
    if conn.info.get(_QUEUE) is not None:
        raise LedgerInvariantBroken("读取或批量写入中不能执行 SQLAlchemy 语句",
                                    "no SQLAlchemy statement may run inside reads or writes")


# ---------------------------------------------------------------- one statement, pipelined

_CURSOR = "feecenter.raw_cursor"  # connection record info: the cursor of _exchange
_GENERIC_PLANS = b"SET LOCAL plan_cache_mode = force_generic_plan"


def _exchange(conn: Connection, sql: bytes, args: list, *, commit: bool = False) -> tuple:
    """Run ``sql`` (``$n`` placeholders) with ``args`` in the caller's transaction, as
    one psycopg pipeline block; its first row (an empty tuple if it returned none).

    When the statement begins the transaction, ``SET LOCAL plan_cache_mode =
    force_generic_plan`` goes before it in the block: PostgreSQL would plan a
    prepared statement anew for each of its first five runs (~1 ms each for a
    payment's reads), and psycopg deallocates its prepared statements after a
    rollback, which starts that count again. The setting ends with the
    transaction, so other work keeps the server's choice. The transaction's
    BEGIN goes first in the same block: psycopg would send its own BEGIN and
    wait for it, a round trip of its own, so the connection is put in
    autocommit mode (psycopg's documented way to leave transactions to the
    caller) and sends ours; ``end_unit`` takes autocommit off again when the
    unit of work commits or rolls back.

    ``commit``: the unit of work is committing (db.engine's commit listener): its
    COMMIT follows the statement in the block, one round trip for both, and does
    not run if the statement fails. psycopg reads the transaction's state from
    the connection afterwards, so the commit SQLAlchemy then asks of it finds
    nothing left to do. A server error is raised as SQLAlchemy raises it
    (IntegrityError, …) and leaves the transaction failed."""
    driver = Precompiled.driver(conn)  # writes waiting for the commit go first
    cursor = _cursor(conn, driver)
    begins = driver.info.transaction_status == _idle()
    if begins:
        driver.autocommit = True
    try:
        with driver.pipeline():
            if begins:
                cursor.execute(b"BEGIN", prepare=False)
                if not commit:
                    cursor.execute(_GENERIC_PLANS, prepare=False)
            cursor.execute(sql, args, prepare=True)
            if commit:
                cursor.execute(b"COMMIT", prepare=False)
    except conn.dialect.loaded_dbapi.Error as exc:
        if driver.broken:  # the connection is lost: the pool must not hand it out again
            conn.invalidate()
        raise wrap_error(conn, sql.decode(), args, exc) from exc
    finally:
        if commit:
            end_unit(driver, commit=False)
    return (cursor.fetchone() or ()) if cursor.description else ()


def end_unit(driver, *, commit: bool) -> None:
    """End a transaction ``_exchange`` began (the connection in autocommit mode):
    COMMIT or ROLLBACK what is still open, then autocommit off again, so the next
    unit of work on this connection begins the usual way. Nothing for others."""
    if driver.closed or not driver.autocommit:
        return
    if driver.info.transaction_status != _idle():
        driver.commit() if commit else driver.rollback()
    driver.autocommit = False


@functools.cache
def _idle():
    from psycopg.pq import TransactionStatus

    return TransactionStatus.IDLE


def _cursor(conn: Connection, driver):
    """The DB-API connection's cursor for ``_exchange``, made once per connection:
    psycopg's RawCursor (``$n`` placeholders as they are, no parsing), with Python
    ints sent as bigint whatever their size, so that a statement's parameter
    types, and with them its prepared statement, stay the same from one run to
    the next (psycopg would pick smallint, integer or bigint by value; the SQL
    casts each parameter to its column's type)."""
    info = conn.connection.info
    cursor = info.get(_CURSOR)
    if cursor is None or cursor.connection is not driver or cursor.closed:
        from psycopg import RawCursor
        from psycopg.types.numeric import Int8Dumper

        cursor = info[_CURSOR] = RawCursor(driver)
        cursor.adapters.register_dumper(int, Int8Dumper)
    return cursor


# ---------------------------------------------------------------- reads together

def _positional(sql: str, args) -> tuple[str, list]:
    """A statement to queue: psycopg's named form as %s with its values in order."""
    if isinstance(args, dict):
        sql, names = pyformat_positional(sql)
        return sql, [args[name] for name in names]
    return sql, list(args)


class _Reads:
    """Queries queued inside ``reads`` on PostgreSQL, sent as one statement."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.parts: list[tuple[Precompiled, str, list, Sent]] = []

    def add(self, statement: Precompiled, sql: str, args, returns: bool, expect) -> Sent:
        if not returns or expect is not None:
            raise _only_queries()
        sql, args = _positional(sql, args)
        sent = Sent(self.conn, None, sql)
        self.parts.append((statement, sql, args, sent))
        return sent

    def add_positional(self, sql: str, args: list, expect=None) -> Sent:
        raise _only_queries()  # send_rows writes

    def end(self) -> None:
        """``WITH q0(c0, …) AS (…), … SELECT (SELECT json_agg(json_build_array(c0, …))
        FROM q0)::text, …``: each query's rows come back as JSON text, decoded with
        its columns' types; the queries run in the order they were sent (their
        locks are taken in that order)."""
        if not self.parts:
            return
        conn = self.conn
        sql = _reads_sql(tuple((sql, _width(statement)) for statement, sql, _, _ in self.parts))
        texts = _exchange(conn, sql, [v for _, _, values, _ in self.parts for v in values])
        for (statement, _, _, sent), text in zip(self.parts, texts):
            sent._rows = _decode_rows(statement, text)


def _only_queries() -> LedgerInvariantBroken:
    return LedgerInvariantBroken("读取中只能发送查询", "only queries may be sent inside reads")


@functools.cache
def _width(statement: Precompiled) -> int:
    return len(statement.statement.selected_columns)


_READS_SQL: dict[tuple, bytes] = {}


def _reads_sql(parts: tuple[tuple[str, int], ...]) -> bytes:
    found = _READS_SQL.get(parts)
    if found is None:
        number = iter(range(1, 65536))
        queries, results = [], []
        for k, (sql, width) in enumerate(parts):
            if width > 100:  # json_build_array takes at most 100 arguments
                raise ValueError(f"a query read together returns at most 100 columns: {sql}")
            names = ", ".join(f"c{i}" for i in range(width))
            queries.append(f"q{k}({names}) AS ({_native(sql, number)})")
            results.append(f"(SELECT json_agg(json_build_array({names})) FROM q{k})::text")
        found = f"WITH {', '.join(queries)} SELECT {', '.join(results)}".encode()
        if len(_READS_SQL) < 1024:
            _READS_SQL[parts] = found
    return found


_JSON = msgspec.json.Decoder(float_hook=Decimal)


def _decode_rows(statement: Precompiled, text: str | None) -> list[tuple]:
    """JSON rows as the driver would return them: timestamps as naive datetimes,
    numerics as Decimal."""
    if text is None:
        return []
    rows = _JSON.decode(text)
    readers = _json_readers(statement)
    if readers:
        for row in rows:
            for i, reader in readers:
                if row[i] is not None:
                    row[i] = reader(row[i])
    return [tuple(row) for row in rows]


@functools.cache
def _json_readers(statement: Precompiled) -> tuple:
    readers = []
    for i, column in enumerate(statement.statement.selected_columns):
        if isinstance(column.type, DateTime):
            readers.append((i, datetime.fromisoformat))
        elif isinstance(column.type, Numeric) and column.type.asdecimal:
            readers.append((i, Decimal))
    return tuple(readers)


@contextlib.contextmanager
def reads(conn: Connection):
    """Queries ``send`` runs inside (``returns=True``) go to PostgreSQL as ONE
    statement when this ends; read their rows after it. SQLite runs each as
    sent. Nested reads join the outer one.

    One statement is one snapshot, taken before any of its locks is waited
    for: rows locked ``FOR UPDATE`` are read as they are once locked, but a
    later query of the same reads does not see what a transaction committed
    while this one waited (orders.pay looks its key up again before it
    refuses an order paid meanwhile: docs/orders.md, "Concurrency")."""
    with _queued(conn, _Reads):
        yield


# ---------------------------------------------------------------- writes together

class _Writes:
    """Writes queued inside ``writes`` on PostgreSQL, sent as one statement."""

    def __init__(self, conn: Connection, *, with_commit: bool = False) -> None:
        self.conn, self.with_commit = conn, with_commit
        self.parts: list[tuple[str, list, Expect | None]] = []  # (sql with %s, values, expect)
        self.size = 0

    def add(self, statement, sql: str, args, returns: bool, expect) -> Sent:
        if returns:
            raise LedgerInvariantBroken("批量写入中不能读取结果",
                                        "no statement inside writes may return rows")
        sql, args = _positional(sql, args)
        if expect is not None and " RETURNING " in sql:  # the count adds its own
            raise ValueError(f"a write with an expected count returns nothing: {sql}")
        return self.add_positional(sql, args, expect)

    def add_positional(self, sql: str, args: list, expect: Expect | None = None) -> Sent:
        """A write already in positional form (``%s``, its values in that order)."""
        if self.size + len(args) > WRITE_PARAMETERS:
            self.end()  # what is queued so far goes first
        self.parts.append((sql, args, expect))
        self.size += len(args)
        return _NOTHING

    def end(self) -> None:
        """``WITH s0 AS (…), s1 AS (… RETURNING 1) SELECT fc_expect_rows((SELECT
        count(*) FROM s1), $n, 1), …``: each part with an expected count returns a
        row per row it changed, and the server refuses a count that differs (so
        a COMMIT sent after it never runs). With ``with_commit`` the statement
        waits for the COMMIT, or for the next statement on the connection."""
        conn, parts, self.parts, self.size = self.conn, self.parts, [], 0
        if not parts:
            return
        counted = tuple(expect is not None for _, _, expect in parts)
        sql = _writes_sql(tuple(sql for sql, _, _ in parts), counted)
        args = [value for _, values, _ in parts for value in values]
        args += [expect.rows for _, _, expect in parts if expect is not None]
        pending = _Pending(conn, sql, args, [expect for _, _, expect in parts])
        send_pending(conn, commit=False)  # writes waiting from before go first
        if self.with_commit:
            conn.info[PENDING] = pending
        else:
            pending.send(commit=False)


class _Pending:
    """Writes sent as one statement: now, or with the unit of work's COMMIT."""

    __slots__ = ("conn", "sql", "args", "expects")

    def __init__(self, conn: Connection, sql: bytes, args: list, expects: list) -> None:
        self.conn, self.sql, self.args, self.expects = conn, sql, args, expects

    def send(self, *, commit: bool) -> None:
        try:
            _exchange(self.conn, self.sql, self.args, commit=commit)
        except IntegrityError as exc:
            raise _key_conflict(exc.orig) or exc
        except DBAPIError as exc:
            diag = getattr(exc.orig, "diag", None)
            if diag is None or diag.sqlstate != "FC001":
                raise
            raise self.expects[int(diag.message_detail)].error() from exc


def send_pending(conn: Connection, *, commit: bool) -> bool:
    """Send writes waiting for the commit (``writes(conn, with_commit=True)``), with
    the COMMIT if ``commit``; False if none were waiting."""
    pending = conn.info.pop(PENDING, None)
    if pending is None:
        return False
    pending.send(commit=commit)
    return True


_KEY_DETAIL = re.compile(r"Key \(idempotency_key\)=\((.*)\) already exists")


def _key_conflict(exc) -> IdempotencyConflict | None:
    """A unique violation of an idempotency key (every one is a unique
    ``idempotency_key`` column) as the conflict it is; None for other errors."""
    diag = exc.diag
    if diag.sqlstate != "23505" or not (diag.constraint_name or "").endswith("_idempotency_key"):
        return None
    found = _KEY_DETAIL.search(diag.message_detail or "")
    return _idempotency_conflict(found.group(1) if found else "?")


_WRITES_SQL: dict[tuple, bytes] = {}


def _writes_sql(sqls: tuple[str, ...], counted: tuple[bool, ...]) -> bytes:
    found = _WRITES_SQL.get((sqls, counted))
    if found is None:
        number = iter(range(1, 65536))
        queries = [f"s{k} AS ({_native(sql, number)}{' RETURNING 1' if count else ''})"
                   for k, (sql, count) in enumerate(zip(sqls, counted))]
        counts = [f"fc_expect_rows((SELECT count(*) FROM s{k}), ${next(number)}, {k})"
                  for k, count in enumerate(counted) if count]
        found = f"WITH {', '.join(queries)} SELECT {', '.join(counts) or 'NULL'}".encode()
        if len(_WRITES_SQL) < 1024:  # payments of 1-100 orders: a few shapes each
            _WRITES_SQL[sqls, counted] = found
    return found


def _native(sql: str, number) -> str:
    """psycopg's ``%s`` SQL in PostgreSQL's ``$n`` form, numbered on from ``number``
    (``%%`` unescaped: nothing parses the text after this)."""
    return _PLACEHOLDER.sub(lambda m: "%" if m.group() == "%%" else f"${next(number)}", sql)


@contextlib.contextmanager
def writes(conn: Connection, *, with_commit: bool = False):
    """Writes ``send`` and ``send_rows`` run inside go to PostgreSQL as ONE statement
    when this ends, and the rows they changed are counted then (``expect``);
    on SQLite they run as sent. The parts see the database as it was before
    the statement and run in no set order (foreign keys are checked at its
    end): no part may depend on another's rows or change a row another
    changes. Nothing inside may return rows. Nested writes join the outer one.

    An idempotency key taken (by a transaction committed since the caller's
    reads, say) fails the statement as IdempotencyConflict naming it.

    ``with_commit``: the caller's unit of work is about to end. On PostgreSQL
    the statement then waits and goes with the COMMIT, in one round trip, or
    before the next statement on the connection (db.engine's listeners,
    ``Precompiled.driver``); its errors are raised there. A rollback drops it."""
    with _queued(conn, _Writes, with_commit=with_commit):
        yield


@contextlib.contextmanager
def _queued(conn: Connection, kind, **options):
    """Queue on PostgreSQL what is sent inside, as ``kind`` (_Reads or _Writes), and
    send it when the block ends without an error; nested, join the outer queue."""
    if conn.dialect.name != "postgresql" or isinstance(conn.info.get(_QUEUE), kind):
        yield
        return
    queue = conn.info[_QUEUE] = kind(conn, **options)
    try:
        yield
    finally:
        conn.info.pop(_QUEUE, None)
    queue.end()


# ---------------------------------------------------------------- multi-row inserts

@functools.cache  # per table, columns and number of rows (at most INSERT_ROWS)
def _insert_values(table, columns: tuple[str, ...], count: int) -> Precompiled:
    rows = [{name: bindparam(f"{name}_{i}", type_=table.c[name].type) for name in columns}
            for i in range(count)]
    return Precompiled(insert(table).values(rows))


def send_rows(conn: Connection, table, columns: tuple[str, ...], rows: list[dict],
              once_on: str | None = None) -> None:
    """Multi-row INSERTs (sent like ``send``, at most INSERT_ROWS rows each). With
    ``once_on`` an idempotency key column (unique), a key used before refuses
    the rows with IdempotencyConflict naming it; the caller's transaction is
    then to be rolled back."""
    queue = conn.info.get(_QUEUE)
    for start in range(0, len(rows), INSERT_ROWS):
        chunk = rows[start:start + INSERT_ROWS]
        statement = _insert_values(table, columns, len(chunk))
        sql, positional, slots, processed, queued_sql = _rows_plan(statement, conn.dialect)
        values = [chunk[i][column] for _, i, column in slots]
        done: dict = {}  # one column's values share one type: process each value once
        for k, column, processor in processed:
            value = values[k]
            try:
                values[k] = done[column, value]
            except KeyError:
                values[k] = done[column, value] = processor(value)
        if queue is not None:  # a key taken fails the whole statement: _Writes.end
            queue.add_positional(queued_sql, values)
            continue
        args = values if positional else {name: v for (name, _, _), v in zip(slots, values)}
        try:
            _dispatch(conn, sql, args, False, None)
        except IntegrityError as exc:
            refused = once_on and _key_refused(conn, table, once_on, chunk, exc.orig)
            if refused:
                raise refused from exc
            raise


_ROWS_PLANS: dict = {}


def _rows_plan(statement: Precompiled, dialect) -> tuple:
    """(sql, positional, slots, processed, queued_sql) of a multi-row INSERT built by
    _insert_values: each bind ``{column}_{row}`` in the order the values go, as
    (name, row, column), the positions whose values need the type's bind
    processing, and (PostgreSQL) the SQL with ``%s`` placeholders in that order,
    for ``writes`` to queue as it is."""
    key = (id(statement), type(dialect))
    found = _ROWS_PLANS.get(key)
    if found is None:
        sql, _, processors = statement._compiled(dialect)
        compiled = statement.statement.compile(dialect=dialect)
        queued_sql = None
        if compiled.positional:
            names = tuple(compiled.positiontup)
        else:  # pyformat: the names in the order they stand in the SQL
            queued_sql, names = pyformat_positional(sql)
        slots = []
        for name in names:
            column, row = name.rsplit("_", 1)
            slots.append((name, int(row), column))
        processed = [(k, column, processors[name])
                     for k, (name, _, column) in enumerate(slots) if name in processors]
        found = _ROWS_PLANS[key] = (sql, compiled.positional, slots, processed, queued_sql)
    return found


def _key_refused(conn: Connection, table, column: str, chunk: list[dict],
                 error) -> IdempotencyConflict | None:
    """The IdempotencyConflict a unique violation of ``column`` stands for: PostgreSQL
    names the key; SQLite only the column, so the keys already there are looked
    up (its transaction survives a failed statement)."""
    if conn.dialect.name == "postgresql":
        return _key_conflict(error)
    if f"{table.name}.{column}" not in str(error):
        return None
    keys = [row[column] for row in chunk]
    taken = set(conn.execute(select(table.c[column]).where(table.c[column].in_(keys))).scalars())
    repeated = [key for i, key in enumerate(keys) if key in taken or key in keys[:i]]
    return _idempotency_conflict(repeated[0] if repeated else "?")


def _idempotency_conflict(key: str) -> IdempotencyConflict:
    return IdempotencyConflict(f"幂等键已被使用：{key}", f"idempotency key already used: {key}",
                               field="idempotency_key", key=key)
