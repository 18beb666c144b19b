"""The test databases themselves (tests/conftest.py): on PostgreSQL a worker's
database emptied between tests must be as good as a fresh copy of the template.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from feecenter.db.base import id_sequence
from feecenter.db.engine import dispose, make_engine, transaction
from feecenter.db.schema import metadata
from tests.helpers import add_cash, api_key, new_account


def _oid(conn, name: str) -> int:
    return conn.execute(text("SELECT oid FROM pg_database WHERE datname = :n"),
                        {"n": name}).scalar_one()


def _state(worker):
    """(rows in every table, next id of users' and transactions' sequences, sessions
    other than this one and the worker's own, the database's oid)."""
    engine = make_engine(worker.url)
    try:
        with engine.connect() as conn:
            rows = sum(conn.execute(select(func.count()).select_from(t)).scalar_one()
                       for t in metadata.sorted_tables)
            ids = tuple(conn.execute(text(f"SELECT nextval({id_sequence(t)})")).scalar_one()
                        for t in ("users", "ledger_transactions"))
            others = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid() "
                "AND pid <> :own"), {"own": worker._connection().info.backend_pid}).scalar_one()
            oid = _oid(conn, conn.execute(text("SELECT current_database()")).scalar_one())
        return rows, ids, others, oid
    finally:
        dispose(engine)


@pytest.mark.postgres_only
def test_a_worker_database_is_emptied_like_a_fresh_one(rt, database_url, request):
    worker = request.getfixturevalue("pg_worker_database")
    assert database_url == worker.url
    _, _, _, oid = _state(worker)
    uin = new_account(rt, "left-behind")
    add_cash(rt, uin, 100)
    api_key(rt, uin)
    # a session the test leaves behind: an open transaction holding row and advisory locks
    stray = make_engine(worker.url).connect()
    stray.execute(text("SELECT pg_advisory_lock(42)"))
    stray.execute(text("UPDATE users SET login = login"))
    with transaction(rt.engine) as conn:  # a table of the test's own
        conn.execute(text("CREATE TABLE scratch (id INT PRIMARY KEY)"))
        conn.execute(text("INSERT INTO scratch VALUES (1)"))

    worker.reset()
    stray.invalidate()  # terminated by the reset: dropped without a ROLLBACK
    assert _state(worker) == (0, (1, 1), 0, oid)  # emptied, not made again
    with make_engine(worker.url).connect() as conn:
        assert conn.execute(text("SELECT to_regclass('scratch')")).scalar_one() is None
        assert conn.execute(text("SELECT pg_try_advisory_lock(42)")).scalar_one()
    worker.reset()


@pytest.mark.postgres_only
def test_a_worker_database_whose_schema_changed_is_made_again(rt, database_url, request):
    worker = request.getfixturevalue("pg_worker_database")
    _, _, _, oid = _state(worker)
    new_account(rt, "altered")
    with transaction(rt.engine) as conn:
        conn.execute(text("ALTER TABLE users ADD COLUMN nickname TEXT"))
    dispose(rt.engine)

    worker.reset()
    rows, ids, others, new_oid = _state(worker)
    assert (rows, ids, others) == (0, (1, 1), 0) and new_oid != oid  # from the template
    with make_engine(worker.url).connect() as conn:
        columns = conn.execute(text(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'users' AND column_name = 'nickname'")).scalar_one()
    assert columns == 0
