"""Test fixtures: every database test runs on SQLite and on PostgreSQL.

Each test starts on an empty, migrated database. On SQLite that is a copy of
a migrated template file. On PostgreSQL each xdist worker makes one database
(``CREATE DATABASE … TEMPLATE`` of a template migrated once per run) and
empties it after every test (``_WorkerDatabase.reset``: the rows deleted, the
sequences restarted, sessions left behind terminated; a changed schema makes
the database again); tests marked ``fresh_database`` and ``database_factory``
get databases of their own, made from the template. PostgreSQL comes from
FEECENTER_TEST_PG_URL (default: the local server, user postgres). Without a
reachable server the PostgreSQL cases are skipped, except under CI=true,
where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from feecenter.auth.service import configure_master_key
from feecenter.clock import FixedClock
from feecenter.db.engine import dispose, make_engine, transaction
from feecenter.db.migrate import upgrade
from feecenter.runtime import Runtime

pytest_plugins = ["tests.compat_harness", "tests.rest_harness"]  # compat_shop, rest_shop

PG_ADMIN_URL = os.environ.get("FEECENTER_TEST_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKENDS = [b for b in os.environ.get("FEECENTER_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]
START = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai, a Monday
MASTER_KEY = Fernet.generate_key().decode()


def pytest_configure(config):
    configure_master_key(MASTER_KEY)


def _pg_admin():
    return sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def _admin_sql(statement: str) -> None:
    admin = _pg_admin()
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(statement)
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    dispose(engine)  # the last connection closing checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def pg_template():
    try:
        admin = _pg_admin()
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "no server"
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    name = f"fc_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = make_engine(_pg_url(name))
    upgrade(engine)
    dispose(engine)
    yield name
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


# What a database's schema is made of, as one digest: relations, columns, constraints,
# indexes, functions, triggers, types, schemas, extensions, per-database settings and
# the Alembic revision. Equal to the template's: only rows can differ.
_SCHEMA_DIGEST = """
SELECT md5(string_agg(item, E'\\n' ORDER BY item)) FROM (
  SELECT 'ns ' || nspname AS item FROM pg_namespace
   WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
  UNION ALL
  SELECT 'rel ' || c.oid::regclass::text || ' ' || c.relkind::text || ' '
         || c.relpersistence::text
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
  UNION ALL
  SELECT 'col ' || a.attrelid::regclass::text || '.' || a.attname || ' '
         || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull || ' '
         || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
     AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'con ' || conrelid::regclass::text || ' ' || conname || ' '
         || pg_get_constraintdef(oid) FROM pg_constraint
   WHERE connamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname LIKE 'pg\\_%'
                              OR nspname = 'information_schema')
  UNION ALL
  SELECT 'idx ' || pg_get_indexdef(i.indexrelid) FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
  UNION ALL
  SELECT 'seq ' || seqrelid::regclass::text || ' ' || seqtypid::regtype::text || ' '
         || seqstart || ' ' || seqincrement || ' ' || seqmax || ' ' || seqmin || ' '
         || seqcache || ' ' || seqcycle FROM pg_sequence
  UNION ALL
  SELECT 'fn ' || p.oid::regprocedure::text || ' ' || md5(p.prosrc) || ' '
         || md5(coalesce(array_to_string(p.proconfig, ','), ''))
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
  UNION ALL
  SELECT 'trg ' || tgrelid::regclass::text || ' ' || tgname || ' ' || tgenabled::text
    FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL
  SELECT 'type ' || t.oid::regtype::text || ' ' || t.typtype::text FROM pg_type t
    JOIN pg_namespace n ON n.oid = t.typnamespace
   WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
     AND t.typtype IN ('d', 'e', 'r', 'm')
  UNION ALL
  SELECT 'ext ' || extname || ' ' || extversion FROM pg_extension
  UNION ALL
  SELECT 'set ' || array_to_string(setconfig, ',') FROM pg_db_role_setting
   WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
  UNION ALL
  SELECT 'alembic ' || version_num FROM alembic_version
) AS items
"""

# Above this many rows a table is truncated rather than deleted from. A DELETE of the
# few rows a test writes costs milliseconds where a TRUNCATE makes new files for the
# table and its indexes (~10-25 ms a table here).
_TRUNCATE_FROM_ROWS = 5_000
_RESET_LOG = os.environ.get("FEECENTER_TEST_RESET_LOG")


class _WorkerDatabase:
    """One PostgreSQL database for the tests of this xdist worker, emptied between
    them (``reset``) rather than made again from the template (~0.4 s a test).

    Safe because only rows differ from the template when a test ends: ``reset``
    terminates the sessions a test left (their locks, advisory locks included, and
    their prepared statements go with them), drops tables the test made, and
    compares the schema with the template's (``_SCHEMA_DIGEST``); anything else
    changed, or any failure, and the database is made again from the template.
    Rows go from every table but ``alembic_version`` (no migration seeds rows:
    checked here), every sequence restarts (ids start at 1 again, as on a fresh
    database, ``db.base.id_sequence``'s included).
    """

    def __init__(self, template: str):
        from feecenter.db.schema import metadata

        self.template = template
        self.name = f"fc_w_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:8]}"
        self.url = _pg_url(self.name)
        self.tables = [t.name for t in metadata.sorted_tables]  # parents first
        self._conn = None
        self._create()
        conn = self._connection()
        found = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert found == {*self.tables, "alembic_version"}, (
            "the migrated template's tables differ from db.schema's", found ^ {*self.tables})
        assert not self._rows(conn), (
            "a migration seeds rows: the worker database's reset would delete them; "
            "restore them in _WorkerDatabase.reset or mark the tests fresh_database")
        self.digest = conn.execute(_SCHEMA_DIGEST).fetchone()[0]

    def _create(self) -> None:
        _admin_sql(f'CREATE DATABASE "{self.name}" TEMPLATE "{self.template}"')

    def _connection(self):
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            url = sa.engine.make_url(self.url).set(drivername="postgresql")
            self._conn = psycopg.connect(url.render_as_string(hide_password=False),
                                         autocommit=True)
            self._conn.execute("SET synchronous_commit = off")  # test data: no WAL flush
        return self._conn

    def _rows(self, conn) -> dict[str, int]:
        """The tables holding rows, with their row counts up to _TRUNCATE_FROM_ROWS."""
        counts = " UNION ALL ".join(
            f"SELECT {i}, count(*) FROM (SELECT FROM \"{name}\" "
            f"LIMIT {_TRUNCATE_FROM_ROWS}) AS t{i} HAVING count(*) > 0"
            for i, name in enumerate(self.tables))
        return {self.tables[i]: n for i, n in conn.execute(counts)}

    def reset(self) -> None:
        """Empty the database after a test; on anything unexpected make it again."""
        started = time.perf_counter()
        try:
            self._empty()
            outcome = "emptied"
        except Exception as exc:  # noqa: BLE001 - the template is the safe answer to anything
            self.drop()
            self._create()
            outcome = f"made again ({exc!r})"
        if _RESET_LOG:  # FEECENTER_TEST_RESET_LOG=file: one line a test, to see what resets cost
            with open(_RESET_LOG, "a") as log:
                log.write(f"{self.name} {time.perf_counter() - started:.3f}s {outcome}\n")

    def _empty(self) -> None:
        conn = self._connection()
        others = ("FROM pg_stat_activity WHERE datname = current_database() "
                  "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
        if conn.execute(f"SELECT pg_terminate_backend(pid) {others}").fetchall():
            deadline = time.monotonic() + 10
            while conn.execute(f"SELECT count(*) {others}").fetchone()[0]:
                if time.monotonic() > deadline:
                    raise TimeoutError("sessions of the test outlived their termination")
                time.sleep(0.01)
        extra = [r[0] for r in conn.execute(
            "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version' AND tablename <> ALL(%s)", [self.tables])]
        if extra:  # a table of the test's own (tests/test_jobs.py's test_effects)
            conn.execute(f"DROP TABLE {', '.join(extra)} CASCADE")
        if conn.execute(_SCHEMA_DIGEST).fetchone()[0] != self.digest:
            raise RuntimeError("the test changed the schema")
        rows = self._rows(conn)
        with conn.transaction():
            big = [name for name, n in rows.items() if n >= _TRUNCATE_FROM_ROWS]
            if big:
                conn.execute("TRUNCATE " + ", ".join(f'"{n}"' for n in big) + " CASCADE")
            for name in reversed(self.tables):  # children first
                if name in rows and name not in big:
                    conn.execute(f'DELETE FROM "{name}"')
            conn.execute("SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, "
                         "start_value, false) FROM pg_sequences WHERE last_value IS NOT NULL")

    def drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        _admin_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_worker_database(pg_template):
    """This worker's PostgreSQL database (see _WorkerDatabase); dropped at the end."""
    worker = _WorkerDatabase(pg_template)
    yield worker
    worker.drop()


def _pg_url(database: str) -> str:
    return sa.engine.make_url(PG_ADMIN_URL).set(database=database).render_as_string(
        hide_password=False)


def new_database(request, backend: str, directory) -> tuple[str, Callable[[], None]]:
    """A fresh, migrated database on ``backend``: its URL and a function that drops it.

    SQLite: a copy of the migrated template file in ``directory``. PostgreSQL:
    ``CREATE DATABASE … TEMPLATE`` of the migrated template (~0.4 s each: a test
    needing many fresh states had better empty its tables between them).
    """
    if backend == "sqlite":
        path = Path(directory) / f"fc_{uuid.uuid4().hex[:8]}.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}", lambda: None
    template = request.getfixturevalue("pg_template")
    name = f"fc_t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return _pg_url(name), drop


def _backend_param(request) -> str:
    if request.param == "sqlite" and request.node.get_closest_marker("postgres_only"):
        pytest.skip("PostgreSQL-only test")
    return request.param


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """URL of an empty, migrated database that is this test's alone while it runs.

    On PostgreSQL: this worker's database, emptied when the test ends (or, for
    a test marked ``fresh_database``, one made from the template for it).
    """
    backend = _backend_param(request)
    if backend == "sqlite" or request.node.get_closest_marker("fresh_database"):
        url, drop = new_database(request, backend, tmp_path)
        yield url
        drop()
        return
    worker = request.getfixturevalue("pg_worker_database")
    yield worker.url
    worker.reset()


@pytest.fixture(params=BACKENDS)
def database_factory(request, tmp_path):
    """For tests that need many fresh databases (one per Hypothesis example, say).

    Yields ``make() -> url`` on this test's backend; every database it made is
    dropped at teardown (a caller may drop earlier with ``make.drop(url)``).
    """
    backend = _backend_param(request)
    drops: dict[str, Callable[[], None]] = {}

    def make() -> str:
        url, drop = new_database(request, backend, tmp_path)
        drops[url] = drop
        return url

    def drop_one(url: str) -> None:
        drops.pop(url)()

    make.backend = backend
    make.drop = drop_one
    yield make
    for drop in drops.values():
        drop()


@pytest.fixture
def clock():
    return FixedClock(START)


@pytest.fixture
def engine(database_url):
    eng = make_engine(database_url)
    yield eng
    dispose(eng)


@pytest.fixture
def uow(engine):
    """Production's unit of work on this test's engine: ``with uow() as conn:`` is
    ``with transaction(engine) as conn:`` (db/engine.py), committed on success and
    rolled back on any error; on SQLite it runs on the thread's held connection,
    as the API, CLI and jobs do. Prefer it to ``engine.begin()`` in tests."""
    return lambda: transaction(engine)


@pytest.fixture
def rt(engine, clock, database_url):
    from feecenter.config import Settings

    return Runtime(engine=engine, clock=clock,
                   settings=Settings(home=None, database_url=database_url, master_key=MASTER_KEY))


@pytest.fixture
def live_server(engine, database_url):
    """The real app served by uvicorn on a free local port, on the real clock.

    Yields (runtime, "127.0.0.1:PORT"). Signed clients use time.time(), so the
    server's clock is the system clock here.
    """
    from feecenter.clock import SystemClock
    from feecenter.config import Settings

    runtime = Runtime(engine=engine, clock=SystemClock(),
                      settings=Settings(home=None, database_url=database_url,
                                        master_key=MASTER_KEY))
    yield from _serve(runtime)


@pytest.fixture
def live_server_on_test_clock(rt):
    """The real app served on ``rt`` and its FixedClock: clients must sign with that
    clock's time (tests that need a date of their own, not the real one)."""
    yield from _serve(rt)


def _serve(runtime, tls=None):
    """Serve ``runtime``'s app on a free port of 127.0.0.1, over HTTPS when ``tls`` is
    (certificate file, key file) — ``feecenter.cli.tls.local_tls`` makes a pair."""
    import socket
    import threading
    import time

    import uvicorn

    from feecenter.api.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cert, key = tls or (None, None)
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port,
                                           log_level="warning", ssl_certfile=cert,
                                           ssl_keyfile=key))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30  # a loaded machine (CI beside other work) is slow to start it
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "server did not start"
    yield runtime, f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def cli(database_url, monkeypatch, tmp_path):
    """The real `feecenter` CLI in-process on this test's database.

    ``cli(*args, ok=True)`` returns the click result (asserting exit 0 unless
    ok=False); ``cli.json(*args)`` adds --json and returns (exit code, the one
    JSON object printed — more than one line fails the contract).
    """
    import json

    from typer.testing import CliRunner

    from feecenter.cli.main import app

    monkeypatch.setenv("FEECENTER_DATABASE_URL", database_url)
    monkeypatch.setenv("FEECENTER_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("FEECENTER_HOME", str(tmp_path))
    runner = CliRunner()

    def run(*args, ok=True, input=None):  # noqa: A002 - click's name: what stdin reads
        result = runner.invoke(app, [str(a) for a in args], input=input)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        if ok:
            assert result.exit_code == 0, result.output
        return result

    def run_json(*args, ok=True, input=None):  # noqa: A002
        result = run(*args, "--json", ok=ok, input=input)
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1, result.stdout  # exactly one JSON object
        return result.exit_code, json.loads(lines[0])

    run.json = run_json
    return run
