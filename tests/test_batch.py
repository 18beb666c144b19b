"""ledger.batch: writes sent inside go to PostgreSQL as one statement when the
batch ends (SQLite runs them as sent); on both, what lands and what is refused
is the same."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, insert, literal_column, select, update
from sqlalchemy.exc import IntegrityError

from feecenter.db.engine import transaction
from feecenter.db.precompiled import Precompiled
from feecenter.errors import Conflict, LedgerInvariantBroken
from feecenter.ledger import service as ledger
from feecenter.ledger.tables import ledger_accounts

_A = ledger_accounts.c
_INSERT = Precompiled(insert(ledger_accounts).values(
    {n: bindparam(n, type_=_A[n].type) for n in ("code", "kind", "uin", "cached", "balance",
                                                  "created_at")}))
# "%" (the modulo operator, escaped as %% for psycopg) beside placeholders
_RAISE_PERCENT = Precompiled(update(ledger_accounts)
                             .where(_A.code.like(literal_column("'batch:%'")))
                             .values(balance=_A.balance % literal_column("1000")
                                     + bindparam("by", type_=_A.balance.type))
                             .returning(_A.id))


def _account(rt, code: str, balance: int = 0) -> dict:
    return {"code": code, "kind": "misc", "uin": 7, "cached": True, "balance": balance,
            "created_at": rt.clock.now().replace(tzinfo=None)}


def _balances(rt) -> dict[str, int]:
    with rt.engine.connect() as conn:
        return dict(conn.execute(select(_A.code, _A.balance)
                                 .where(_A.code.like("batch:%"))).all())


def test_a_batch_writes_every_part_and_gives_each_check_its_rows(rt):
    seen = []
    with transaction(rt.engine) as conn, ledger.batch(conn):
        ledger.send(conn, _INSERT, _account(rt, "batch:a", 5))
        ledger.send(conn, _INSERT, _account(rt, "batch:b", 6))
    with transaction(rt.engine) as conn:
        with ledger.batch(conn):
            ledger.send(conn, _RAISE_PERCENT, {"by": 10}, check=seen.append)
            assert seen == [] or conn.dialect.name == "sqlite"  # PostgreSQL: checked at the end
        assert len(seen) == 1 and len(seen[0]) == 2 and all(len(row) == 1 for row in seen[0])
    assert _balances(rt) == {"batch:a": 15, "batch:b": 16}


def test_a_failing_check_or_part_leaves_nothing(rt):
    def refuse(rows):
        raise Conflict("不该改动", "should not have changed", field="balance")

    with pytest.raises(Conflict), transaction(rt.engine) as conn, ledger.batch(conn):
        ledger.send(conn, _INSERT, _account(rt, "batch:c"))
        ledger.send(conn, _RAISE_PERCENT, {"by": 1}, check=refuse)
    with pytest.raises(IntegrityError), transaction(rt.engine) as conn, ledger.batch(conn):
        ledger.send(conn, _INSERT, _account(rt, "batch:d"))
        ledger.send(conn, _INSERT, _account(rt, "batch:d"))  # the code is unique
    assert _balances(rt) == {}


def test_a_large_batch_goes_in_several_statements(rt, monkeypatch):
    monkeypatch.setattr(ledger, "_BATCH_PARAMETERS", 14)  # two inserts a statement
    with transaction(rt.engine) as conn, ledger.batch(conn):
        for i in range(5):
            ledger.send(conn, _INSERT, _account(rt, f"batch:{i}", i))
    assert _balances(rt) == {f"batch:{i}": i for i in range(5)}


@pytest.mark.postgres_only  # SQLite runs each statement as it is sent
def test_nothing_inside_a_batch_may_read(rt):
    with transaction(rt.engine) as conn:
        with pytest.raises(LedgerInvariantBroken, match="batch"), ledger.batch(conn):
            ledger.send(conn, _INSERT, _account(rt, "batch:e"))
            conn.execute(select(_A.id))
        with pytest.raises(LedgerInvariantBroken, match="batch"), ledger.batch(conn):
            ledger.send(conn, _RAISE_PERCENT, {"by": 1}, returns=True)
    assert _balances(rt) == {}  # the batches ended with errors: nothing was sent
