"""The unit of work, ``db.engine.transaction``: all or nothing on both backends.

On SQLite each thread keeps one connection between its units of work and
begins and ends them on the driver; these tests pin what callers rely on:
a failure after any kind of write leaves nothing, threads do not share a
connection, a thread's connection goes back to the pool when it ends, and
``dispose`` leaves a file another process can read in full.
"""

from __future__ import annotations

import gc
import shutil
import sqlite3
import threading

import pytest
from sqlalchemy import func, insert, select

from feecenter.db.engine import dispose, make_engine, transaction
from feecenter.ledger import service as ledger
from feecenter.ledger.service import Posting, Transfer
from feecenter.ledger.tables import ledger_accounts, ledger_postings, ledger_transactions
from tests.helpers import assert_reconciled


class Boom(Exception):
    pass


@pytest.fixture
def pair(rt):
    with transaction(rt.engine) as conn:
        bank = ledger.open_account(conn, rt.clock, "platform:uow:bank", "bank", cached=False)
        cash = ledger.open_account(conn, rt.clock, "uow:1:cash", "cash", uin=1, min_balance=0)
    return bank, cash


def _fund(conn, rt, pair, key: str, amount: int = 500):
    bank, cash = pair
    return ledger.transfer(conn, rt.clock, Transfer(
        idempotency_key=key, kind="test", uin=1,
        postings=(Posting(bank, -amount), Posting(cash, amount))))


def _count(rt, table) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_commits_on_success_and_reads_back(rt, pair):
    with transaction(rt.engine) as conn:
        result = _fund(conn, rt, pair, "ok")
    with transaction(rt.engine) as conn:
        assert ledger.balance_of(conn, pair[1]) == 500
    assert result.created and _count(rt, ledger_postings) == 2
    assert_reconciled(rt)


@pytest.mark.parametrize("also_sqlalchemy", [False, True])
def test_an_error_after_writes_leaves_nothing(rt, pair, also_sqlalchemy):
    """Driver-level writes (the ledger's) alone, or mixed with SQLAlchemy statements."""
    before = (_count(rt, ledger_transactions), _count(rt, ledger_postings),
              _count(rt, ledger_accounts))
    with pytest.raises(Boom), transaction(rt.engine) as conn:
        _fund(conn, rt, pair, "lost")
        if also_sqlalchemy:
            conn.execute(insert(ledger_accounts).values(
                code="uow:lost", kind="misc", balance=0, cached=True,
                created_at=rt.clock.now().replace(tzinfo=None)))
        raise Boom
    assert (_count(rt, ledger_transactions), _count(rt, ledger_postings),
            _count(rt, ledger_accounts)) == before
    with transaction(rt.engine) as conn:  # the connection is usable again
        assert _fund(conn, rt, pair, "after").created
    assert_reconciled(rt)


def test_the_uow_fixture_is_this_unit_of_work_on_the_test_engine(rt, pair, uow):
    with pytest.raises(Boom), uow() as conn:
        _fund(conn, rt, pair, "uow-lost")
        raise Boom
    assert _count(rt, ledger_transactions) == 0
    with uow() as conn:
        assert _fund(conn, rt, pair, "uow-kept").created
    assert _count(rt, ledger_transactions) == 1


def test_a_refused_transfer_rolls_back_and_the_next_unit_runs(rt, pair):
    bank, cash = pair
    with pytest.raises(Exception, match="insufficient|余额不足"), \
            transaction(rt.engine) as conn:
        ledger.transfer(conn, rt.clock, Transfer(
            idempotency_key="overdraw", kind="test", uin=1,
            postings=(Posting(cash, -1), Posting(bank, 1))))
    assert _count(rt, ledger_transactions) == 0
    with transaction(rt.engine) as conn:
        assert _fund(conn, rt, pair, "next").created


def test_sqlite_keeps_one_connection_per_thread(rt, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL units of work check out of the pool")
    seen: dict[str, int] = {}

    def driver_id(name: str) -> None:
        with transaction(rt.engine) as conn:
            seen[name] = id(conn.connection.dbapi_connection)

    driver_id("main-1")
    driver_id("main-2")
    worker = threading.Thread(target=driver_id, args=("worker",))
    worker.start()
    worker.join()
    assert seen["main-1"] == seen["main-2"]
    assert seen["worker"] != seen["main-1"]


@pytest.mark.slow
def test_a_finished_thread_gives_its_connection_back(database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only: held connections")
    engine = make_engine(database_url)
    try:
        def work() -> None:
            with transaction(engine) as conn:
                conn.execute(select(1))

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        del threads, t
        gc.collect()
        assert engine.pool.checkedout() == 0
    finally:
        dispose(engine)


def test_dispose_leaves_a_complete_file(rt, pair, database_url, tmp_path):
    """The WAL is checkpointed when the last connection closes: a copy of the main
    file alone holds every committed row (the test templates rely on this)."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only: the database file")
    with transaction(rt.engine) as conn:
        _fund(conn, rt, pair, "kept")
    dispose(rt.engine)
    copy = tmp_path / "copy.db"
    shutil.copy(database_url.removeprefix("sqlite:///"), copy)
    with sqlite3.connect(copy) as db:
        assert db.execute("SELECT count(*) FROM ledger_postings").fetchone()[0] == 2


def test_created_at_is_stored_as_sqlalchemy_reads_it(rt, pair):
    """The SQLite hot path writes timestamps itself; they read back as the clock's time."""
    rt.clock.advance(microseconds=60)
    with transaction(rt.engine) as conn:
        _fund(conn, rt, pair, "timed")
    with rt.engine.connect() as conn:
        stored = conn.execute(select(ledger_transactions.c.created_at)).scalar_one()
    assert stored == rt.clock.now().replace(tzinfo=None)


def test_a_result_left_unread_does_not_block_the_next_unit(rt, pair, database_url):
    """An unread query result keeps its statement, and an old read snapshot, open
    past its unit's COMMIT; after another connection writes, SQLite would refuse
    that connection the write lock at once (SQLITE_BUSY_SNAPSHOT). The next unit
    of work runs anyway, on a fresh connection."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only: held connections")
    with transaction(rt.engine) as conn:
        _fund(conn, rt, pair, "first")
        unread = conn.execute(select(ledger_postings.c.id))  # two rows, one read
        unread.fetchone()

    def other_thread_writes() -> None:
        with transaction(rt.engine) as other:
            _fund(other, rt, pair, "other")

    worker = threading.Thread(target=other_thread_writes)
    worker.start()
    worker.join()
    with transaction(rt.engine) as conn:
        assert _fund(conn, rt, pair, "next").created
    assert unread is not None  # (kept alive until here on purpose)
    assert_reconciled(rt)
