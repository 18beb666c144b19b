"""One period settled eight times at once on PostgreSQL (SET-8): the job runner's run,
an operator's rerun and retries racing. Every run succeeds; the period's usage is
billed exactly once (one charge line per resource, one deduction per account and
product, one adjustment per late record); the period is marked settled once; no
database error reaches a caller; reconcile stays clean (BAL-6).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from feecenter.errors import Conflict
from feecenter.ledger.tables import ledger_transactions
from feecenter.periods import HOURLY, period_containing
from feecenter.settlement import service as settlement
from feecenter.settlement.tables import settled_accounts, settled_periods
from tests.helpers import add_cash, assert_reconciled, balance, new_account, run_threads
from tests.test_settlement import hour, ingest, lines, load, open_, settle

pytestmark = [pytest.mark.postgres_only, pytest.mark.spec("SET-8", "BAL-6")]

THREADS = 8
ACCOUNTS = 6
HOURS = 4
VM = "S5.MEDIUM4"  # 0.50 yuan an hour in the sample catalog


def _settle_at_once(rt, period) -> tuple[list[dict], list[Conflict]]:
    """THREADS runs of ``period`` released together, each on its own connections, in
    chunks of two accounts (so the runs meet inside the period, not only at its end)."""
    results, refused, guard = [], [], threading.Lock()

    def run(_):
        try:
            result = settlement.settle_period(rt.engine, rt.clock, "hour", period,
                                              chunk_accounts=2)
        except Conflict as exc:
            with guard:
                refused.append(exc)
            return
        with guard:
            results.append(result)

    assert run_threads(THREADS, run) == []  # anything but a success or a Conflict
    assert len(results) + len(refused) == THREADS
    return results, refused


def _count(rt, table, *where) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


@pytest.fixture
def customers(rt):
    """ACCOUNTS accounts with 10.00 cash and a postpaid VM each."""
    load(rt)
    uins = [new_account(rt, name=f"c{i}") for i in range(ACCOUNTS)]
    resources = {uin: open_(rt, uin, name=f"vm-{uin}") for uin in uins}
    for uin in uins:
        add_cash(rt, uin, 10_00)
    return rt, resources


def test_eight_runs_of_one_hour_at_once_bill_it_once(customers):
    """Each of HOURS hours: eight runs at once (the runs meet at the period's end only
    now and then, so the race is run a few times)."""
    rt, resources = customers
    for n in range(HOURS):
        start, end = hour(n)
        rt.clock.set(end + timedelta(minutes=5))
        ingest(rt, [(f"h{n}-{uin}", uin, rid, VM, "1", start, end)
                    for uin, rid in resources.items()])
        results, refused = _settle_at_once(rt, period_containing(HOURLY, start))
        assert refused == []  # a run that finds the period being settled waits, then skips
        assert sum(r["accounts"] for r in results) == ACCOUNTS  # the runs shared the work
        assert all(r["accounts"] + r["skipped"] == ACCOUNTS for r in results)

    charges = sorted((line["uin"], line["period_key"], line["kind"], line["deducted"])
                     for line in lines(rt))
    assert charges == sorted((uin, f"2026-03-02T{10 + n}", "charge", 50)
                             for uin in resources for n in range(HOURS))
    for uin in resources:
        assert balance(rt, uin).cash == 10_00 - 50 * HOURS
    deducts = _count(rt, ledger_transactions, ledger_transactions.c.kind == "deduct")
    assert deducts == _count(rt, settled_accounts) == ACCOUNTS * HOURS
    assert _count(rt, settled_periods) == HOURS
    assert_reconciled(rt)


def test_eight_runs_of_one_hour_with_late_usage_bill_each_record_once(customers):
    """The runs race in the late pass (usage of the hour before, which came late) too."""
    rt, resources = customers
    (s0, e0), (s1, e1) = hour(0), hour(1)
    rt.clock.set(e0)
    first = list(resources.items())[:3]
    ingest(rt, [(f"h0-{uin}", uin, rid, VM, "1", s0, e0) for uin, rid in first])
    settle(rt, "hour", s0)
    rt.clock.set(e1 + timedelta(minutes=5))
    ingest(rt, [(f"late-{uin}", uin, rid, VM, "1", s0, e0) for uin, rid in resources.items()]
         + [(f"h1-{uin}", uin, rid, VM, "1", s1, e1) for uin, rid in resources.items()])
    results, refused = _settle_at_once(rt, period_containing(HOURLY, s1))

    assert refused == []
    assert sum(r["accounts"] for r in results) == ACCOUNTS
    assert sum(r["adjustment_lines"] for r in results) == ACCOUNTS
    for uin in resources:
        kinds = sorted((line["period_key"], line["kind"]) for line in lines(rt, uin))
        expected = [("2026-03-02T10", "charge")] if (uin, resources[uin]) in first else []
        assert kinds == sorted(expected + [("2026-03-02T10", "adjustment"),
                                           ("2026-03-02T11", "charge")])
        assert balance(rt, uin).cash == 10_00 - 50 * len(kinds)
    assert _count(rt, settled_periods) == 2
    assert_reconciled(rt)
