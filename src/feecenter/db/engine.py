"""Engines and database transactions.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed payment
survives a power cut) and every write transaction starts with
``BEGIN IMMEDIATE`` so two writers never deadlock on a lock upgrade.
PostgreSQL runs with ``synchronous_commit=on`` in READ COMMITTED; money
changes take row locks. ``transaction(engine)`` is the unit of work: all or
nothing.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url


def make_engine(url: str, **kwargs) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    if parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    # No pool_pre_ping: it costs a round trip per unit of work (a third of a payment's
    # time). A connection found dead fails its unit of work, which rolls back, and
    # SQLAlchemy then replaces the pool's connections; clients retry with their
    # idempotency keys. pool_recycle retires connections before idle timeouts bite.
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_recycle=1800, **kwargs)

    @event.listens_for(engine, "connect")
    def _pg_settings(dbapi_conn, _record):
        with dbapi_conn.cursor() as cur:
            cur.execute("SET synchronous_commit = on")
            cur.execute("SET TIME ZONE 'UTC'")
        dbapi_conn.commit()

    return engine


def _sqlite_engine(url: str, **kwargs) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        from pathlib import Path

        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                           **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_settings(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn):
        # straight to the driver: this runs once per unit of work, on every hot path
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE")

    return engine


def is_sqlite(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "sqlite"


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One database transaction: committed on success, rolled back on any error."""
    with engine.begin() as conn:
        yield conn
