"""PostgreSQL engines never wait forever: a statement (lock waits included) is
cancelled after statement_timeout, a transaction left idle by its client is ended
by the server, connecting and a silent peer are bounded by libpq's timeouts
(docs/decisions.md, "No wait without a timeout")."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import DBAPIError, OperationalError

from feecenter.config import PostgresTimeouts, postgres_timeouts
from feecenter.db import sending
from feecenter.db.engine import dispose, make_engine, transaction
from feecenter.db.precompiled import Precompiled
from feecenter.ledger.tables import ledger_accounts

_A = ledger_accounts.c
_LOCKED = Precompiled(select(_A.id, _A.balance).where(
    _A.code == bindparam("code", type_=_A.code.type)).with_for_update())


def test_timeouts_come_from_the_environment(monkeypatch):
    for name in ("CONNECT_TIMEOUT_S", "STATEMENT_TIMEOUT_MS", "IDLE_IN_TRANSACTION_TIMEOUT_MS",
                 "TCP_USER_TIMEOUT_MS"):
        monkeypatch.delenv(f"FEECENTER_PG_{name}", raising=False)
    assert postgres_timeouts() == PostgresTimeouts(10, 60_000, 120_000, 30_000)
    monkeypatch.setenv("FEECENTER_PG_STATEMENT_TIMEOUT_MS", "5000")
    monkeypatch.setenv("FEECENTER_PG_CONNECT_TIMEOUT_S", "0")  # 0: no limit, if one insists
    assert postgres_timeouts() == PostgresTimeouts(0, 5_000, 120_000, 30_000)
    monkeypatch.setenv("FEECENTER_PG_STATEMENT_TIMEOUT_MS", "5s")
    with pytest.raises(ValueError, match="FEECENTER_PG_STATEMENT_TIMEOUT_MS"):
        postgres_timeouts()


@pytest.fixture
def short(database_url):
    """An engine with short timeouts on this test's PostgreSQL database."""
    engine = make_engine(database_url, timeouts=PostgresTimeouts(
        connect_s=5, statement_ms=300, idle_in_transaction_ms=400, tcp_user_ms=5_000))
    yield engine
    dispose(engine)


@pytest.mark.postgres_only
def test_the_session_and_the_client_carry_the_limits(short):
    with short.connect() as conn:
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "300ms"
        assert conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar() == "400ms"
        client = conn.connection.driver_connection.info.get_parameters()
    assert client["connect_timeout"] == "5" and client["tcp_user_timeout"] == "5000"
    assert client["keepalives"] == "1"


@pytest.mark.postgres_only
def test_a_long_statement_is_cancelled(short):
    began = time.monotonic()
    with pytest.raises(OperationalError, match="statement timeout"):
        with transaction(short) as conn:
            conn.exec_driver_sql("SELECT pg_sleep(30)")
    assert time.monotonic() - began < 10


@pytest.mark.postgres_only
def test_reads_together_waiting_for_a_lock_are_cancelled_and_the_connection_recovers(short, rt):
    with transaction(rt.engine) as conn:
        conn.execute(insert(ledger_accounts).values(code="timeout:a", kind="misc", uin=7,
                                                    cached=True, balance=5,
                                                    created_at=rt.clock.now()
                                                    .replace(tzinfo=None)))
    holder = rt.engine.connect()
    holder.execute(select(_A.id).where(_A.code == "timeout:a").with_for_update())
    try:
        with pytest.raises(DBAPIError, match="statement timeout"):
            with transaction(short) as conn, sending.reads(conn):
                sending.send(conn, _LOCKED, {"code": "timeout:a"}, returns=True)
    finally:
        holder.rollback()
        holder.close()
    with transaction(short) as conn:  # the pool's connection works on
        with sending.reads(conn):
            sent = sending.send(conn, _LOCKED, {"code": "timeout:a"}, returns=True)
    assert [row[1] for row in sent.rows()] == [5]


@pytest.mark.postgres_only
def test_a_transaction_its_client_left_idle_is_ended_by_the_server(short):
    with pytest.raises(DBAPIError, match="idle-in-transaction timeout"):
        with transaction(short) as conn:
            conn.exec_driver_sql("SELECT 1")
            time.sleep(1.0)  # a client stuck between statements, holding its locks
            conn.exec_driver_sql("SELECT 1")
    with transaction(short) as conn:  # SQLAlchemy replaced the lost connection
        assert conn.exec_driver_sql("SELECT 2").scalar() == 2
