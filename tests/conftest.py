"""Test fixtures: every database test runs on SQLite and on PostgreSQL.

Each test gets a fresh database of its own: on SQLite a copy of a migrated
template file, on PostgreSQL ``CREATE DATABASE … TEMPLATE`` of a migrated
template made once per run. PostgreSQL comes from FEECENTER_TEST_PG_URL
(default: the local server, user postgres). Without a reachable server the
PostgreSQL cases are skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
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

pytest_plugins = ["tests.compat_harness"]  # the compat_shop fixture

PG_ADMIN_URL = os.environ.get("FEECENTER_TEST_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKENDS = [b for b in os.environ.get("FEECENTER_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]
START = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai, a Monday
MASTER_KEY = Fernet.generate_key().decode()


def pytest_configure(config):
    configure_master_key(MASTER_KEY)


def _pg_admin():
    return sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


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
    """URL of a fresh, migrated database of this test's own."""
    url, drop = new_database(request, _backend_param(request), tmp_path)
    yield url
    drop()


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


def _serve(runtime):
    import socket
    import threading
    import time

    import uvicorn

    from feecenter.api.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
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

    from feecenter.cli import app

    monkeypatch.setenv("FEECENTER_DATABASE_URL", database_url)
    monkeypatch.setenv("FEECENTER_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("FEECENTER_HOME", str(tmp_path))
    runner = CliRunner()

    def run(*args, ok=True):
        result = runner.invoke(app, [str(a) for a in args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        if ok:
            assert result.exit_code == 0, result.output
        return result

    def run_json(*args, ok=True):
        result = run(*args, "--json", ok=ok)
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1, result.stdout  # exactly one JSON object
        return result.exit_code, json.loads(lines[0])

    run.json = run_json
    return run
