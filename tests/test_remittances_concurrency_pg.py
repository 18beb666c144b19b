"""Remittances under concurrency (RMT-2, RMT-5, RMT-6, RMT-8; PostgreSQL).

Overlapping statement imports race on real threads: none deadlocks, each
transfer is recorded and credited once (the INSERT that wins the bank
reference is the claim). Eight owners' re-verifications, operators' releases or
assignments of one record race: exactly one claims it (the conditional UPDATE
on its state decides) and the money is credited once. Reconcile stays clean.
SQLite serialises writers, so this runs on PostgreSQL only.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from sqlalchemy import func, select

from feecenter.db.engine import transaction
from feecenter.errors import Conflict
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.remittances import service as remittances
from feecenter.remittances.tables import remittances as remittances_table
from tests.helpers import OPS, assert_reconciled, balance, new_account, run_threads
from tests.test_remittances import SETTINGS, company, line, owner, record

pytestmark = pytest.mark.postgres_only

THREADS = 8


def credits(rt, uin: int) -> tuple[int, int]:
    """(recharge entries, remittance credit transactions) of the account."""
    with rt.engine.connect() as conn:
        entries = conn.execute(select(func.count()).select_from(statement_entries).where(
            statement_entries.c.uin == uin, statement_entries.c.action_type == "recharge")).scalar()
        txns = conn.execute(select(func.count()).select_from(ledger_transactions).where(
            ledger_transactions.c.uin == uin, ledger_transactions.c.kind == "recharge")).scalar()
    return entries, txns


@pytest.mark.spec("RMT-2", "RMT-8")
def test_overlapping_imports_racing_credit_each_transfer_once(rt):
    companies = [company(rt, f"co-{i}") for i in range(4)]
    lines = [line(f"T{i:03d}", companies[i % 4][1], 100 + i, n=i) for i in range(60)]
    batches = [lines[i * 10:i * 10 + 30] for i in range(4)]  # each overlaps the next by 20
    for batch in batches:
        random.Random(len(batch)).shuffle(batch)  # the import sorts them itself
    summaries: list = [None] * 4

    def work(i: int) -> None:
        with transaction(rt.engine) as conn:
            summaries[i] = remittances.import_transfers(
                conn, rt.clock, OPS, batches[i], source="push", digest=f"batch-{i}",
                settings=SETTINGS)

    assert run_threads(4, work) == []  # no deadlock, no conflict
    assert sum(s.credited for s in summaries) == 60
    assert sum(s.credited + s.duplicates for s in summaries) == 120
    for i, (uin, _, _) in enumerate(companies):
        assert balance(rt, uin).cash == sum(100 + n for n in range(60) if n % 4 == i)
        assert credits(rt, uin) == (15, 15)
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(remittances_table)).scalar() == 60
    assert_reconciled(rt)


@pytest.mark.spec("RMT-1")
def test_first_uses_of_the_receiving_number_at_once_agree_on_one_code(rt):
    other = new_account(rt, "fresh")  # no code yet
    codes: list = [None] * THREADS

    def work(i: int) -> None:
        with transaction(rt.engine) as conn:
            codes[i] = remittances.receiving_details(conn, rt.clock, OPS, other, SETTINGS)["code"]

    assert run_threads(THREADS, work) == []
    assert len(set(codes)) == 1


def _race(rt, target) -> Counter:
    outcomes: list = [None] * THREADS

    def work(i: int) -> None:
        try:
            with transaction(rt.engine) as conn:
                outcomes[i] = target(conn, i)["state"]
        except Conflict as refused:
            outcomes[i] = f"conflict:{refused.details['state']}"

    assert run_threads(THREADS, work) == []
    return Counter(outcomes)


@pytest.mark.spec("RMT-5", "RMT-8")
def test_eight_reverifications_of_one_record_credit_it_once(rt):
    uin, number, _ = company(rt)
    with transaction(rt.engine) as conn:
        remittances.import_transfers(conn, rt.clock, OPS, [line("V1", number, 321_00, "代付公司")],
                                     source="mt940", digest="d", settings=SETTINGS)
        remittances.register_payer(conn, rt.clock, OPS, uin, "代付公司")
    me, rid = owner(rt, uin), record(rt, "V1")["id"]
    outcomes = _race(rt, lambda conn, i: remittances.request_reverification(
        conn, rt.clock, me, uin, rid))
    assert outcomes == Counter({"credited": 1, "conflict:credited": THREADS - 1})
    assert balance(rt, uin).cash == 321_00 and credits(rt, uin) == (1, 1)
    assert_reconciled(rt)


@pytest.mark.spec("RMT-6", "RMT-8")
def test_eight_releases_of_one_held_record_credit_it_once(rt):
    uin, number, _ = company(rt)
    with transaction(rt.engine) as conn:
        remittances.import_transfers(conn, rt.clock, OPS,
                                     [line("H1", number, 654_00, memo="保证金")],
                                     source="mt940", digest="d", settings=SETTINGS)
    rid = record(rt, "H1")["id"]
    outcomes = _race(rt, lambda conn, i: remittances.release(conn, rt.clock, OPS, rid))
    assert outcomes == Counter({"credited": 1, "conflict:credited": THREADS - 1})
    assert balance(rt, uin).cash == 654_00 and credits(rt, uin) == (1, 1)
    assert_reconciled(rt)


@pytest.mark.spec("RMT-3", "RMT-8")
def test_eight_assignments_of_one_record_to_two_accounts_credit_one_once(rt):
    first, _, _ = company(rt, "first")
    second, _, _ = company(rt, "second")  # the same verified entity: either would credit
    with transaction(rt.engine) as conn:
        remittances.import_transfers(conn, rt.clock, OPS, [line("A1", SETTINGS.prefixes[0],
                                                                987_00)],
                                     source="mt940", digest="d", settings=SETTINGS)
    rid = record(rt, "A1")["id"]
    outcomes = _race(rt, lambda conn, i: remittances.assign(
        conn, rt.clock, OPS, rid, first if i % 2 else second))
    assert outcomes == Counter({"credited": 1, "conflict:credited": THREADS - 1})
    cash = (balance(rt, first).cash, balance(rt, second).cash)
    assert sorted(cash) == [0, 987_00]
    assert credits(rt, first)[1] + credits(rt, second)[1] == 1
    assert_reconciled(rt)
