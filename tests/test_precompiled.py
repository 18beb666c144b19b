"""db.precompiled: statements compiled once and run on the driver, on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from feecenter.db.engine import transaction
from feecenter.db.precompiled import Precompiled
from feecenter.ledger.tables import ledger_accounts

COLUMNS = ("code", "kind", "uin", "cached", "balance", "created_at")  # not the table's order
_INSERT = Precompiled(insert(ledger_accounts).values(
    {name: bindparam(name, type_=ledger_accounts.c[name].type) for name in COLUMNS}))


def _ready(conn, rt, code: str, uin: int) -> tuple:
    """A row in COLUMNS order with values as the driver takes them."""
    _sql, _names, processors = _INSERT.positional(conn.dialect)
    values = {"code": code, "kind": "misc", "uin": uin, "cached": True, "balance": 7,
              "created_at": rt.clock.now().replace(tzinfo=None)}
    return tuple(processors[n](values[n]) if n in processors else values[n] for n in COLUMNS)


def test_positional_form_for_each_driver(engine):
    sql, names, _ = _INSERT.positional(engine.dialect)
    assert sorted(names) == sorted(COLUMNS)
    assert "%(" not in sql and sql.count("?" if engine.dialect.name == "sqlite" else "%s") == 6


def test_many_ready_writes_rows_given_in_any_column_order(rt):
    with transaction(rt.engine) as conn:
        _INSERT.many_ready(conn, COLUMNS, [_ready(conn, rt, "pc:a", 11),
                                           _ready(conn, rt, "pc:b", 12)])
    with rt.engine.connect() as conn:
        rows = conn.execute(select(ledger_accounts.c.code, ledger_accounts.c.uin,
                                   ledger_accounts.c.balance, ledger_accounts.c.created_at)
                            .where(ledger_accounts.c.code.like("pc:%"))
                            .order_by(ledger_accounts.c.code)).all()
    now = rt.clock.now().replace(tzinfo=None)
    assert [tuple(r) for r in rows] == [("pc:a", 11, 7, now), ("pc:b", 12, 7, now)]


def test_many_ready_refuses_other_columns_and_wraps_driver_errors(rt):
    with transaction(rt.engine) as conn, pytest.raises(ValueError, match="not the columns"):
        _INSERT.many_ready(conn, COLUMNS[:-1], [("x",)])
    with pytest.raises(IntegrityError), transaction(rt.engine) as conn:
        row = _ready(conn, rt, "pc:same", 1)
        _INSERT.many_ready(conn, COLUMNS, [row, row])  # the code is unique
    with rt.engine.connect() as conn:  # rolled back whole
        assert conn.execute(select(ledger_accounts.c.id)
                            .where(ledger_accounts.c.code == "pc:same")).first() is None
