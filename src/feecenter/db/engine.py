"""Engines and the unit of work (database transactions).

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed payment
survives a power cut) and every write transaction starts with
``BEGIN IMMEDIATE`` so two writers never deadlock on a lock upgrade.
PostgreSQL runs with ``synchronous_commit=on`` in READ COMMITTED; money
changes take row locks.

``transaction(engine)`` is the unit of work: all or nothing. On SQLite each
thread keeps one connection checked out between its units of work, because
checking a connection out of the pool and back costs more CPU than a small
transaction's statements (docs/decisions.md). ``dispose(engine)`` releases
the calling thread's connection and closes the pool.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import make_url

from feecenter.config import PostgresTimeouts, postgres_timeouts
from feecenter.db.precompiled import PENDING

# cache_size: 16 MiB of pages per connection instead of SQLite's 2 MiB; bulk writes
# into big tables (usage, bill lines) keep their index pages (docs/decisions.md).
SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                  "busy_timeout=30000", "cache_size=-16384")


class FeeCenterSQLite(SQLiteDialect_pysqlite):
    """pysqlite with our pragmas and ``BEGIN IMMEDIATE``.

    A dialect rather than engine events: an engine with event listeners
    dispatches them around every statement and every transaction.
    """

    supports_statement_cache = True

    def on_connect(self):
        inherited = super().on_connect()

        def connect(dbapi_conn) -> None:
            if inherited is not None:
                inherited(dbapi_conn)
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            for pragma in SQLITE_PRAGMAS:
                dbapi_conn.execute(f"PRAGMA {pragma}")

        return connect

    def do_begin(self, dbapi_connection) -> None:
        if not dbapi_connection.in_transaction:  # ``transaction`` may have begun it
            dbapi_connection.execute("BEGIN IMMEDIATE")


registry.register("sqlite.feecenter", __name__, "FeeCenterSQLite")
log = logging.getLogger("feecenter.db")


def make_engine(url: str, *, timeouts: PostgresTimeouts | None = None, **kwargs) -> Engine:
    """An engine for ``url``: SQLite (our dialect, below) or PostgreSQL through psycopg,
    with ``timeouts`` (default: from the environment, ``config.postgres_timeouts``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    timeouts = timeouts or postgres_timeouts()
    # libpq's own limits, unless the URL sets them (?connect_timeout=…): connecting, and
    # a peer gone silent (keepalives on an idle connection, tcp_user_timeout on data
    # sent and not acknowledged) fails the connection instead of waiting forever.
    client = {"connect_timeout": timeouts.connect_s, "keepalives": 1, "keepalives_idle": 30,
              "keepalives_interval": 10, "keepalives_count": 3,
              "tcp_user_timeout": timeouts.tcp_user_ms}
    connect_args = {k: v for k, v in client.items() if k not in parsed.query}
    connect_args.update(kwargs.pop("connect_args", {}))
    # No pool_pre_ping: it costs a round trip per unit of work (a third of a payment's
    # time). A connection found dead fails its unit of work, which rolls back, and
    # SQLAlchemy then replaces the pool's connections; clients retry with their
    # idempotency keys. pool_recycle retires connections before idle timeouts bite;
    # pool_timeout (30 s) bounds the wait for a free connection.
    engine = create_engine(parsed, pool_size=10, max_overflow=20, pool_recycle=1800,
                           pool_timeout=30, connect_args=connect_args, **kwargs)
    settings = (("synchronous_commit", "on"), ("TimeZone", "UTC"),
                ("statement_timeout", str(timeouts.statement_ms)),
                ("idle_in_transaction_session_timeout", str(timeouts.idle_in_transaction_ms)))

    @event.listens_for(engine, "connect")
    def _pg_settings(dbapi_conn, _record):
        with dbapi_conn.cursor() as cur:  # one round trip, once per connection
            cur.execute("SELECT " + ", ".join("set_config(%s, %s, false)" for _ in settings),
                        [value for pair in settings for value in pair])
        dbapi_conn.commit()

    _watch_pending(engine)
    return engine


def _watch_pending(engine: Engine) -> None:
    """PostgreSQL listeners for db.sending: writes waiting for the commit go with it
    (in the commit's pipeline), or before any other statement, and are dropped by
    a rollback; no SQLAlchemy statement runs inside db.sending's queues."""
    from feecenter.db import sending

    def before_statement(conn, cursor, statement, parameters, context, executemany):
        sending.refuse_sqlalchemy_inside(conn, cursor, statement, parameters, context,
                                         executemany)
        sending.send_pending(conn, commit=False)

    def before_commit(conn) -> None:  # psycopg then finds no transaction to commit
        sending.send_pending(conn, commit=True)
        sending.end_unit(conn.connection.dbapi_connection, commit=True)

    def before_rollback(conn, *_args) -> None:
        if not conn.closed and not conn.invalidated:
            conn.connection.info.pop(PENDING, None)
            sending.end_unit(conn.connection.dbapi_connection, commit=False)

    def before_reset(dbapi_conn, record, _state) -> None:  # on every return to the pool
        record.info.pop(PENDING, None)
        sending.end_unit(dbapi_conn, commit=False)

    event.listen(engine, "before_cursor_execute", before_statement)
    event.listen(engine, "commit", before_commit)
    event.listen(engine, "rollback", before_rollback)
    # savepoints need nothing more: SAVEPOINT and ROLLBACK TO are statements, so the
    # waiting writes go before them
    event.listen(engine.pool, "reset", before_reset)


def _sqlite_engine(url: str, **kwargs) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    url = parsed.set(drivername="sqlite+feecenter")
    # Unbounded: every thread that ran a unit of work keeps its connection.
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                           max_overflow=-1, **kwargs)
    engine._feecenter_held = threading.local()  # type: ignore[attr-defined]
    return engine


def is_sqlite(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "sqlite"


class _Held:
    """One thread's SQLite connection. When the thread ends it is garbage, and the
    pool takes the connection back (SQLAlchemy does that for synchronous drivers)."""

    __slots__ = ("conn", "driver")

    def __init__(self, conn: Connection):
        self.conn = conn
        self.driver = conn.connection.dbapi_connection


class _SQLiteUnit:
    """A unit of work on the thread's held connection, begun and ended on the driver.

    SQLAlchemy learns of the transaction only if a statement runs through it
    (it then "autobegins", and the dialect's ``do_begin`` sees the driver is
    already in a transaction); statements run straight on the driver (the
    ledger's hot paths) cost no SQLAlchemy bookkeeping at all. Either way one
    COMMIT or ROLLBACK ends everything.
    """

    __slots__ = ("engine", "local", "held")

    def __init__(self, engine: Engine, local: threading.local, held: _Held):
        self.engine, self.local, self.held = engine, local, held

    def __enter__(self) -> Connection:
        try:
            self.held.driver.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY_SNAPSHOT:
                raise
            # A query result left unread (or unclosed) in an earlier unit keeps its
            # statement, and so an old read snapshot, open past that unit's COMMIT;
            # SQLite then refuses the write lock at once. Closing the connection
            # ends the statement; the unit runs on a fresh one.
            log.warning("SQLite connection held a stale read; replaced", exc_info=exc)
            self.held.conn.invalidate()
            self.held = self.local.held = _Held(self.engine.connect())
            self.held.driver.execute("BEGIN IMMEDIATE")
        return self.held.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        conn, driver = self.held.conn, self.held.driver
        if exc_type is None:
            try:
                if conn.in_transaction():
                    conn.commit()
                else:
                    driver.commit()
                return
            except BaseException:
                self._rollback(conn, driver)
                raise
        self._rollback(conn, driver)

    @staticmethod
    def _rollback(conn: Connection, driver) -> None:
        if conn.in_transaction():
            conn.rollback()
        if driver.in_transaction:
            driver.rollback()


def transaction(engine: Engine):
    """One database transaction, as a context manager yielding its Connection:
    committed on success, rolled back on any error."""
    local = getattr(engine, "_feecenter_held", None)
    if local is None:
        return engine.begin()
    held = getattr(local, "held", None)
    if held is None or held.conn.closed or held.conn.invalidated:
        held = local.held = _Held(engine.connect())
    if held.conn.in_transaction() or held.driver.in_transaction:
        return engine.begin()  # a unit of work inside another, in one thread
    return _SQLiteUnit(engine, local, held)


def dispose(engine: Engine) -> None:
    """Release this thread's held connection and close the pool's connections
    (on SQLite the last one to close checkpoints the WAL into the file)."""
    local = getattr(engine, "_feecenter_held", None)
    held = getattr(local, "held", None) if local is not None else None
    if held is not None:
        del local.held
        held.conn.close()
    engine.dispose()
