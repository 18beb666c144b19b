"""Real bank statements (tests/data/statements, written by banks and parser
maintainers, not by us) imported end to end into the database: the totals
read from the files are what the import records, a second import changes
nothing, and a refused file imports nothing (RMT-2, RMT-3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from feecenter.db.engine import transaction
from feecenter.errors import InvalidInput
from feecenter.remittances.statement_import import import_statement
from feecenter.remittances.tables import remittance_imports, remittances
from tests.helpers import OPS, assert_reconciled

DATA = Path(__file__).parent / "data" / "statements"

# file -> (credits, their total in minor units): what the files' own lines say
# (tests/test_statements.py checks them against the files' balance fields)
SAMPLES = {"mt940_sepa_excerpt.sta": (4, 106_500_005),
           "camt053_v2_multi_statement.xml": (1, 885),
           "mt940_generic.sta": (0, 0)}


def imported(rt, name: str):
    with transaction(rt.engine) as conn:
        return import_statement(conn, rt.clock, OPS, DATA / name)


@pytest.mark.spec("RMT-2", "RMT-3")
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_real_statement_imports_with_its_totals_once(rt, name):
    credits, total = SAMPLES[name]
    first = imported(rt, name)
    # foreign banks' own accounts (in EUR): every credit is recorded and reported as not
    # ours, its amount kept in its own currency
    assert (first.lines, first.not_ours) == (credits, credits)
    assert first.credited == first.unassigned == first.pending == first.held == 0
    again = imported(rt, name)
    assert (again.lines, again.duplicates, again.not_ours) == (credits, credits, 0)
    with rt.engine.connect() as conn:
        stored = conn.execute(select(func.count(), func.coalesce(func.sum(remittances.c.amount), 0))
                              .where(remittances.c.state == "not_ours")).one()
    assert tuple(stored) == (credits, total)
    assert_reconciled(rt)


@pytest.mark.spec("RMT-2")
@pytest.mark.parametrize("name", ["mt940_sberbank.sta", "camt053_v8_mixed_currencies.xml"])
def test_a_real_statement_that_is_refused_imports_nothing(rt, name):
    with pytest.raises(InvalidInput):
        imported(rt, name)
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(remittances)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(remittance_imports)).scalar_one() == 0
