"""Statements compiled once per dialect and run straight on the DB-API driver.

SQLAlchemy's per-execution work (parameter and result processing, cursor
and result objects, events) costs 30-100 µs a statement: more than the
statement itself on SQLite, and a large part of a round trip on PostgreSQL
(docs/benchmarks.md). The hot paths (ledger transfers and hold batches, the
payment, settlement's bill lines) run their statements through
``Precompiled`` instead: SQLAlchemy still writes the SQL for the
connection's dialect, and it runs on the same DB-API connection inside the
caller's transaction.
"""

from __future__ import annotations

import operator
import re
from datetime import datetime

from sqlalchemy import Connection, DateTime
from sqlalchemy.exc import DBAPIError


_NAMED = re.compile(r"(?<!%)%\((\w+)\)s")  # a psycopg bind, not an escaped %%(
_AS_POSITIONAL: dict[str, tuple[str, tuple[str, ...]]] = {}


def pyformat_positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """psycopg's named ``%(name)s`` SQL as ``%s`` placeholders, with the bind names
    in the order the values go (remembered per SQL text)."""
    found = _AS_POSITIONAL.get(sql)
    if found is None:
        found = _AS_POSITIONAL[sql] = (_NAMED.sub("%s", sql), tuple(_NAMED.findall(sql)))
    return found


PENDING = "feecenter.pending"  # conn.info: writes waiting for the commit (db.sending)

class Precompiled:
    """A Core statement compiled once per dialect and run on the DB-API cursor.

    Bind processors are applied as SQLAlchemy would (``rows``, ``many``), or
    the caller passes DB-ready values in bind order (``positional``,
    ``many_ready``). Driver errors are re-raised as SQLAlchemy's
    (IntegrityError, …). No expanding parameters; result rows are plain
    tuples with no type processing.
    """

    def __init__(self, statement):
        self.statement = statement
        self._by_dialect: dict = {}
        self._positional: dict = {}
        self._last: tuple = (None, None)  # (dialect, its compiled form): the hot lookup

    def _compiled(self, dialect):
        last_dialect, found = self._last
        if last_dialect is dialect:
            return found
        key = (type(dialect), dialect.paramstyle, dialect.server_version_info)
        found = self._by_dialect.get(key)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            if ("POSTCOMPILE" in compiled.string or compiled.escaped_bind_names
                    or any(b.value is not None or b.callable for b in compiled.binds.values())):
                # expanding, renamed or valued parameters: conn.execute() handles those
                raise ValueError(f"statement cannot run directly: {compiled.string}")
            processors = {}
            for name, bind in compiled.binds.items():
                processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    processors[name] = _faster(bind.type, processor)
            if compiled.positional:
                names = tuple(compiled.positiontup)
                arrange = lambda params: tuple([params[n] for n in names])  # noqa: E731
            else:
                arrange = None
            found = self._by_dialect[key] = (compiled.string, arrange, processors)
        self._last = (dialect, found)
        return found

    def positional(self, dialect) -> tuple[str, tuple[str, ...], dict]:
        """(sql, bind names in order, processors) with positional placeholders: the
        dialect's own (SQLite's ``?``) or, for psycopg's named ``%(name)s``, ``%s`` in
        order of appearance. The caller passes DB-ready values in that order."""
        key = (type(dialect), dialect.paramstyle, dialect.server_version_info)
        found = self._positional.get(key)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            sql, _arrange, processors = self._compiled(dialect)
            if compiled.positional:
                found = (sql, tuple(compiled.positiontup), processors)
            elif dialect.paramstyle == "pyformat":
                found = (*pyformat_positional(sql), processors)
            else:
                raise ValueError(f"no positional form for paramstyle {dialect.paramstyle}")
            self._positional[key] = found
        return found

    def many_ready(self, conn: Connection, columns: tuple[str, ...], rows: list[tuple]) -> None:
        """One executemany of DB-ready tuples whose values follow ``columns``: the
        statement's binds, each once (an INSERT of those columns). Rows are passed
        as they are when ``columns`` is the order SQLAlchemy wrote the binds in
        (the table's column order), else rearranged."""
        if not rows:
            return
        sql, names, _processors = self.positional(conn.dialect)
        if names != columns:
            if sorted(names) != sorted(columns):
                raise ValueError(f"binds {names} are not the columns {columns}")
            pick = operator.itemgetter(*[columns.index(name) for name in names])
            rows = [pick(row) for row in rows]
        cursor = self.driver(conn).cursor()
        try:
            cursor.executemany(sql, rows)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise wrap_error(conn, sql, rows[:1], exc) from exc
        finally:
            cursor.close()

    @staticmethod
    def driver(conn: Connection):
        """The DB-API connection, in a transaction, with any writes waiting for the
        commit (db.sending.writes) sent first: everything on it runs in order."""
        pending = conn.info.pop(PENDING, None) if PENDING in conn.info else None
        if pending is not None:
            pending.send(commit=False)
        driver = conn.connection.dbapi_connection
        # what autobegin would do on conn.execute(); SQLite's ``transaction`` begins
        # on the driver itself (db.engine), which then needs no SQLAlchemy bookkeeping
        if not conn.in_transaction() and not getattr(driver, "in_transaction", False):
            conn.begin()
        return driver

    @staticmethod
    def _args(arrange, processors, params: list[dict]) -> list:
        if processors:
            done: dict = {}  # a batch repeats values (one created_at): process each once
            processed = []
            for row in params:
                row = dict(row)
                for name, processor in processors.items():
                    if name in row:
                        value = row[name]
                        try:
                            row[name] = done[name, value]
                        except KeyError:
                            row[name] = done[name, value] = processor(value)
                        except TypeError:  # unhashable: no memo
                            row[name] = processor(value)
                processed.append(row)
            params = processed
        return params if arrange is None else [arrange(row) for row in params]

    def rows(self, conn: Connection, params: dict) -> list[tuple]:
        sql, arrange, processors = self._compiled(conn.dialect)
        if processors:
            params = dict(params)
            for name, processor in processors.items():
                if name in params:
                    params[name] = processor(params[name])
        args = params if arrange is None else arrange(params)
        cursor = self.driver(conn).cursor()
        try:
            cursor.execute(sql, args)
            return cursor.fetchall() if cursor.description else []
        except conn.dialect.loaded_dbapi.Error as exc:
            raise wrap_error(conn, sql, args, exc) from exc
        finally:
            cursor.close()

    def many(self, conn: Connection, params: list[dict]) -> None:
        if not params:
            return
        sql, arrange, processors = self._compiled(conn.dialect)
        args = self._args(arrange, processors, params)
        cursor = self.driver(conn).cursor()
        try:
            cursor.executemany(sql, args)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise wrap_error(conn, sql, args, exc) from exc
        finally:
            cursor.close()


def _faster(type_, processor):
    """SQLAlchemy's SQLite DateTime text for a naive datetime is what ``isoformat``
    writes in C, for a quarter of the time: use that where it is (checked here, with
    and without microseconds); anything else (None, dates, aware values) goes to
    SQLAlchemy's processor."""
    samples = (datetime(2026, 1, 2, 3, 4, 5), datetime(2026, 12, 31, 23, 59, 59, 60))
    if not isinstance(type_, DateTime) or any(
            processor(t) != t.isoformat(" ", "microseconds") for t in samples):
        return processor

    def time_text(value):
        if value.__class__ is datetime and value.tzinfo is None:
            return value.isoformat(" ", "microseconds")
        return processor(value)

    return time_text


_TIME_READERS: dict = {}


def time_reader(dialect):
    """Stored DateTime values as the driver returns them -> naive datetimes (SQLite
    returns text, parsed by SQLAlchemy's own result processor; psycopg datetimes)."""
    reader = _TIME_READERS.get(type(dialect))
    if reader is None:
        processor = DateTime().dialect_impl(dialect).result_processor(dialect, None)
        reader = _TIME_READERS[type(dialect)] = processor or (lambda value: value)
    return reader


def wrap_error(conn: Connection, sql: str, args, exc: Exception) -> Exception:
    return DBAPIError.instance(sql, args, exc, conn.dialect.loaded_dbapi.Error,
                               dialect=conn.dialect)
