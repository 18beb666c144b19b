"""db.sending: reads and writes sent inside ``reads`` / ``writes`` go to PostgreSQL
as one statement each when they end (SQLite runs them as sent); on both, what
lands, what is read and what is refused is the same."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import Numeric, bindparam, cast, func, insert, literal_column, select, update
from sqlalchemy.exc import IntegrityError

from feecenter.db import sending
from feecenter.db.engine import transaction
from feecenter.db.precompiled import Precompiled
from feecenter.errors import Conflict, IdempotencyConflict, LedgerInvariantBroken
from feecenter.ledger.tables import ledger_accounts, ledger_transactions

_A = ledger_accounts.c
_INSERT = Precompiled(insert(ledger_accounts).values(
    {n: bindparam(n, type_=_A[n].type) for n in ("code", "kind", "uin", "cached", "balance",
                                                  "created_at")}))
# "%" (the modulo operator, escaped as %% for psycopg) beside placeholders
_RAISE_PERCENT = Precompiled(update(ledger_accounts)
                             .where(_A.code.like(literal_column("'batch:%'")))
                             .values(balance=_A.balance % literal_column("1000")
                                     + bindparam("by", type_=_A.balance.type)))


def _account(rt, code: str, balance: int = 0) -> dict:
    return {"code": code, "kind": "misc", "uin": 7, "cached": True, "balance": balance,
            "created_at": rt.clock.now().replace(tzinfo=None)}


def _balances(rt) -> dict[str, int]:
    with rt.engine.connect() as conn:
        return dict(conn.execute(select(_A.code, _A.balance)
                                 .where(_A.code.like("batch:%"))).all())


def _changed_another_number() -> Conflict:
    return Conflict("改动行数不符", "changed another number of rows", field="balance")


def test_writes_land_and_the_rows_each_changed_are_counted(rt):
    with transaction(rt.engine) as conn, sending.writes(conn):
        sending.send(conn, _INSERT, _account(rt, "batch:a", 5))
        sending.send(conn, _INSERT, _account(rt, "batch:b", 6))
    with transaction(rt.engine) as conn, sending.writes(conn):
        sending.send(conn, _RAISE_PERCENT, {"by": 10},
                     expect=sending.Expect(2, _changed_another_number))
    assert _balances(rt) == {"batch:a": 15, "batch:b": 16}


def test_another_count_or_a_failing_part_leaves_nothing(rt):
    with transaction(rt.engine) as conn:
        sending.send(conn, _INSERT, _account(rt, "batch:a", 5))
    with pytest.raises(Conflict, match="another number"):
        with transaction(rt.engine) as conn, sending.writes(conn):
            sending.send(conn, _INSERT, _account(rt, "batch:c"))
            sending.send(conn, _RAISE_PERCENT, {"by": 1},
                         expect=sending.Expect(1, _changed_another_number))  # a, not c: 1
            sending.send(conn, _RAISE_PERCENT, {"by": 1},
                         expect=sending.Expect(3, _changed_another_number))
    with pytest.raises(IntegrityError), transaction(rt.engine) as conn, sending.writes(conn):
        sending.send(conn, _INSERT, _account(rt, "batch:d"))
        sending.send(conn, _INSERT, _account(rt, "batch:d"))  # the code is unique
    assert _balances(rt) == {"batch:a": 5}


def test_a_large_batch_goes_in_several_statements(rt, monkeypatch):
    monkeypatch.setattr(sending, "WRITE_PARAMETERS", 14)  # two inserts a statement
    with transaction(rt.engine) as conn, sending.writes(conn):
        for i in range(5):
            sending.send(conn, _INSERT, _account(rt, f"batch:{i}", i))
    assert _balances(rt) == {f"batch:{i}": i for i in range(5)}


@pytest.mark.postgres_only  # SQLite runs each statement as it is sent
def test_nothing_inside_a_batch_may_read(rt):
    with transaction(rt.engine) as conn:
        with pytest.raises(LedgerInvariantBroken, match="writes"), sending.writes(conn):
            sending.send(conn, _INSERT, _account(rt, "batch:e"))
            conn.execute(select(_A.id))
        with pytest.raises(LedgerInvariantBroken, match="writes"), sending.writes(conn):
            sending.send(conn, _RAISE_PERCENT, {"by": 1}, returns=True)
    assert _balances(rt) == {}  # the batches ended with errors: nothing was sent


_READ_BACK = Precompiled(select(_A.code, _A.balance, cast(_A.balance, Numeric(20, 2)), _A.cached,
                                _A.max_balance, _A.created_at)
                         .where(_A.code.like(literal_column("'batch:%'")),
                                _A.balance >= bindparam("least", type_=_A.balance.type))
                         .order_by(_A.code))
_HOW_MANY = Precompiled(select(func.count(_A.id)).where(_A.uin == bindparam("uin",
                                                                            type_=_A.uin.type)))


def test_reads_together_return_what_each_query_returns_alone(rt):
    rt.clock.advance(microseconds=123456)  # a timestamp with its fraction
    with transaction(rt.engine) as conn, sending.writes(conn):
        sending.send(conn, _INSERT, _account(rt, "batch:x", 5))
        sending.send(conn, _INSERT, _account(rt, "batch:y", 9))
    with transaction(rt.engine) as conn:
        alone = (_READ_BACK.rows(conn, {"least": 1}), _HOW_MANY.rows(conn, {"uin": 7}),
                 _READ_BACK.rows(conn, {"least": 99}))
        with sending.reads(conn):
            sent = (sending.send(conn, _READ_BACK, {"least": 1}, returns=True),
                    sending.send(conn, _HOW_MANY, {"uin": 7}, returns=True),
                    sending.send(conn, _READ_BACK, {"least": 99}, returns=True))
        together = tuple(s.rows() for s in sent)
    assert together == alone
    assert [row[0] for row in together[0]] == ["batch:x", "batch:y"] and together[2] == []
    if conn.dialect.name == "postgresql":  # the driver's own types, through JSON
        assert together[0][0][2] == Decimal("5.00") and isinstance(together[0][0][5], datetime)
        assert together[0][0][5].microsecond == 123456 and together[0][1][4] is None


@pytest.mark.postgres_only  # SQLite runs each statement as it is sent
def test_rows_are_read_after_the_reads_end_and_only_queries_go_in(rt):
    with transaction(rt.engine) as conn:
        with sending.reads(conn):
            sent = sending.send(conn, _HOW_MANY, {"uin": 7}, returns=True)
            with pytest.raises(LedgerInvariantBroken, match="before the reads ended"):
                sent.rows()
            with pytest.raises(LedgerInvariantBroken, match="only queries"):
                sending.send(conn, _INSERT, _account(rt, "batch:z"))
        assert sent.rows() == [(0,)]


def _txn_row(rt, key: str) -> dict:
    return {"idempotency_key": key, "request_hash": "h", "kind": "test", "uin": 7,
            "reference": None, "memo": None, "reverses_txn_id": None,
            "created_at": rt.clock.now().replace(tzinfo=None)}


def test_a_key_taken_is_an_idempotency_conflict_inside_writes_too(rt):
    columns = tuple(_txn_row(rt, "k"))
    with transaction(rt.engine) as conn:
        sending.send_rows(conn, ledger_transactions, columns, [_txn_row(rt, "taken")],
                          once_on="idempotency_key")
    with pytest.raises(IdempotencyConflict) as refused:
        with transaction(rt.engine) as conn, sending.writes(conn):
            sending.send(conn, _INSERT, _account(rt, "batch:w"))
            sending.send_rows(conn, ledger_transactions, columns,
                              [_txn_row(rt, "fresh"), _txn_row(rt, "taken")],
                              once_on="idempotency_key")
    assert refused.value.field == "idempotency_key" and "taken" in str(refused.value)
    with rt.engine.connect() as conn:
        keys = conn.execute(select(ledger_transactions.c.idempotency_key)).scalars().all()
    assert keys == ["taken"] and _balances(rt) == {}


# ---------------------------------------------------------------- writes with the commit

def test_writes_with_the_commit_land_and_go_first_when_anything_else_runs(rt):
    with transaction(rt.engine) as conn:
        with sending.writes(conn, with_commit=True):
            sending.send(conn, _INSERT, _account(rt, "batch:a", 5))
        # a statement after them sees them: they are sent before it
        assert conn.execute(select(_A.balance).where(_A.code == "batch:a")).scalar() == 5
        with sending.writes(conn, with_commit=True):
            sending.send(conn, _RAISE_PERCENT, {"by": 1},
                         expect=sending.Expect(1, _changed_another_number))
        # and before a precompiled statement on the driver
        assert _SELECT_BALANCE.rows(conn, {"code": "batch:a"}) == [(6,)]
        with sending.writes(conn, with_commit=True):
            sending.send(conn, _RAISE_PERCENT, {"by": 10},
                         expect=sending.Expect(1, _changed_another_number))
    assert _balances(rt) == {"batch:a": 16}  # the last went with the COMMIT


def test_a_wrong_count_sent_with_the_commit_fails_it_and_leaves_nothing(rt):
    with transaction(rt.engine) as conn:
        sending.send(conn, _INSERT, _account(rt, "batch:a", 5))
    with pytest.raises(Conflict, match="another number"):
        with transaction(rt.engine) as conn, sending.writes(conn, with_commit=True):
            sending.send(conn, _INSERT, _account(rt, "batch:b", 1))
            sending.send(conn, _RAISE_PERCENT, {"by": 10},
                         expect=sending.Expect(3, _changed_another_number))  # changes 1 or 2
    assert _balances(rt) == {"batch:a": 5}
    with pytest.raises(RuntimeError):  # a rollback drops writes still waiting
        with transaction(rt.engine) as conn:
            with sending.writes(conn, with_commit=True):
                sending.send(conn, _INSERT, _account(rt, "batch:c", 1))
            raise RuntimeError("the caller fails after the writes")
    with transaction(rt.engine) as conn:  # the connection is clean for the next unit
        sending.send(conn, _INSERT, _account(rt, "batch:d", 2))
    assert _balances(rt) == {"batch:a": 5, "batch:d": 2}


_SELECT_BALANCE = Precompiled(select(_A.balance).where(
    _A.code == bindparam("code", type_=_A.code.type)))


def test_prepared_statements_survive_a_rollback(rt):
    """psycopg deallocates every prepared statement after a rollback once it has
    prepared its own (after five runs of one statement): ours are prepared again."""
    for attempt in range(3):
        with pytest.raises(RuntimeError):
            with transaction(rt.engine) as conn:
                for _ in range(6):  # psycopg prepares this one
                    conn.execute(select(func.count()).select_from(ledger_accounts)).scalar()
                with sending.writes(conn):
                    sending.send(conn, _INSERT, _account(rt, f"batch:x{attempt}"))
                raise RuntimeError("roll back")
        with transaction(rt.engine) as conn, sending.writes(conn):
            sending.send(conn, _INSERT, _account(rt, f"batch:{attempt}", attempt))
    assert _balances(rt) == {"batch:0": 0, "batch:1": 1, "batch:2": 2}


_PARAMETERS = Precompiled(select(
    bindparam("flag", type_=ledger_accounts.c.cached.type),
    bindparam("small", type_=_A.balance.type), bindparam("big", type_=_A.balance.type),
    bindparam("text", type_=_A.code.type), bindparam("none", type_=_A.code.type),
    bindparam("at", type_=_A.created_at.type)))


@pytest.mark.postgres_only  # SQLite returns its own stored forms (1, text times)
def test_reads_together_take_every_kind_of_parameter(rt):
    """Parameters go as psycopg adapts them (ints as bigint whatever their size, so a
    statement keeps one prepared statement); the values come back as they went."""
    moment = datetime(2026, 3, 2, 2, 0, 0, 5)
    runs = [{"flag": True, "small": 1, "big": 10**15, "text": "现金", "none": None, "at": moment},
            {"flag": False, "small": 70000, "big": -1, "text": "%s", "none": None, "at": moment}]
    with transaction(rt.engine) as conn:
        for params in runs:
            with sending.reads(conn):
                sent = sending.send(conn, _PARAMETERS, dict(params), returns=True)
            assert sent.rows() == [tuple(params.values())]


@pytest.mark.postgres_only  # prepared statements: PostgreSQL
def test_a_shape_keeps_one_prepared_statement_whatever_its_values(rt):
    """Ints go as bigint whatever their size (psycopg would pick smallint, integer or
    bigint by value, and a statement whose parameter types change is prepared
    anew): one prepared statement per shape, reused."""
    moment = datetime(2026, 3, 2, 2, 0)
    with transaction(rt.engine) as conn:
        for small, big in [(1, 2), (70000, 10**12), (-5, 40000), (0, 0)]:
            with sending.reads(conn):
                sending.send(conn, _PARAMETERS, {"flag": True, "small": small, "big": big,
                                                 "text": "t", "none": None, "at": moment},
                             returns=True)
        prepared = conn.exec_driver_sql(
            "SELECT parameter_types::text[] FROM pg_prepared_statements "
            "WHERE left(statement, 7) = 'WITH q0'").scalars().all()
    assert prepared == [["boolean", "bigint", "bigint", "character varying",
                         "character varying", "timestamp without time zone"]]


def test_writes_waiting_for_the_commit_keep_their_order(rt):
    with transaction(rt.engine) as conn:
        with sending.writes(conn, with_commit=True):
            sending.send(conn, _INSERT, _account(rt, "batch:a", 5))
        with sending.writes(conn, with_commit=True):  # needs the row of the first
            sending.send(conn, _RAISE_PERCENT, {"by": 2},
                         expect=sending.Expect(1, _changed_another_number))
        with sending.writes(conn):
            sending.send(conn, _RAISE_PERCENT, {"by": 3},
                         expect=sending.Expect(1, _changed_another_number))
    assert _balances(rt) == {"batch:a": 10}


def test_failed_payments_leave_no_prepared_statements_behind(rt):
    """Failed runs do not pile prepared statements up. psycopg owns them: it
    deallocates every one after a rollback of a transaction that used one (as a
    payment does: its reads are prepared and ran before its writes fail) and
    prepares them again when next needed."""
    if rt.engine.dialect.name != "postgresql":
        pytest.skip("prepared statements: PostgreSQL")
    columns = tuple(_txn_row(rt, "k"))
    with transaction(rt.engine) as conn:
        sending.send_rows(conn, ledger_transactions, columns, [_txn_row(rt, "taken")],
                          once_on="idempotency_key")
    for _ in range(4):
        with pytest.raises(IdempotencyConflict):
            with transaction(rt.engine) as conn:
                with sending.reads(conn):
                    sending.send(conn, _HOW_MANY, {"uin": 7}, returns=True)
                with sending.writes(conn, with_commit=True):
                    sending.send_rows(conn, ledger_transactions, columns,
                                      [_txn_row(rt, "taken")], once_on="idempotency_key")
    with transaction(rt.engine) as conn:
        with sending.writes(conn):
            sending.send(conn, _INSERT, _account(rt, "batch:b", 1))
        prepared = conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements").scalar()
    assert prepared <= 2 and _balances(rt) == {"batch:b": 1}


def test_writes_waiting_for_the_commit_and_savepoints(rt):
    """Writes queued before a savepoint survive its rollback; writes queued inside
    it are undone with it."""
    with transaction(rt.engine) as conn:
        with sending.writes(conn, with_commit=True):
            sending.send(conn, _INSERT, _account(rt, "batch:before", 1))
        savepoint = conn.begin_nested()
        with sending.writes(conn, with_commit=True):
            sending.send(conn, _INSERT, _account(rt, "batch:inside", 2))
        savepoint.rollback()
    assert _balances(rt) == {"batch:before": 1}


@pytest.mark.postgres_only  # plans of prepared statements: PostgreSQL
def test_a_transaction_begun_by_reads_together_plans_its_statements_generically(rt):
    """Each of a prepared statement's first five runs would otherwise be planned
    anew (~1 ms for a payment's reads); the setting ends with the transaction."""
    def plan_mode(conn) -> str:
        with sending.reads(conn):
            sent = sending.send(conn, _PLAN_MODE, {}, returns=True)
        return sent.rows()[0][0]

    with transaction(rt.engine) as conn:
        assert plan_mode(conn) == "force_generic_plan"
    with transaction(rt.engine) as conn:
        conn.exec_driver_sql("SELECT 1")  # begun by SQLAlchemy: the server's own choice
        assert plan_mode(conn) == "auto"
    with transaction(rt.engine) as conn:  # and not left behind by the first
        assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "auto"


_PLAN_MODE = Precompiled(select(func.current_setting(literal_column("'plan_cache_mode'"))))
