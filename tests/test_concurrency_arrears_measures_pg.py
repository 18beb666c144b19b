"""Operators' arrears measures under concurrency (ARR-6, PostgreSQL).

8 real threads take the same measure at once: liquidated damages with one key are
charged once (the others get the first result back), set-offs with eight keys repay
once (the others find nothing left to set off) — a failed withdrawal among them
returned to cash once —, and taking the services offline
stops each resource once. Each measure locks the account's balance rows first, so
the winner commits before a loser reads the key or the balances. SQLite serialises
writers, so this runs on PostgreSQL only.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from feecenter.arrears import measures
from feecenter.arrears.tables import account_events
from feecenter.audit.tables import audit_log
from feecenter.db.engine import transaction
from feecenter.errors import Conflict
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.notifications.tables import in_site_messages
from feecenter.resources.tables import resource_stops
from tests.helpers import OPS, add_cash, assert_reconciled, balance, new_account, run_threads
from tests.test_arrears_measures import owing_with_resources, overdraw
from tests.test_recharges import pay, sandbox  # noqa: F401 - fixtures
from tests.test_withdrawal_payouts import Money

pytestmark = pytest.mark.postgres_only

THREADS = 8


def race(rt, fn, **each) -> tuple[list, list]:
    """Run ``fn`` in THREADS units of work at once; ``each``: kwargs, callables of i."""
    results: list = [None] * THREADS

    def work(i: int) -> None:
        kwargs = {k: (v(i) if callable(v) else v) for k, v in each.items()}
        try:
            with transaction(rt.engine) as conn:
                results[i] = fn(conn, rt.clock, OPS, **kwargs)
        except Conflict as exc:
            results[i] = exc

    errors = run_threads(THREADS, work)
    return results, errors


def count(rt, table, *where) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


@pytest.mark.spec("ARR-6")
def test_eight_damages_with_one_key_charge_once(rt):
    uin = new_account(rt, "race-damages")
    add_cash(rt, uin, 30_00)
    with transaction(rt.engine) as conn:
        funds.platform_account(conn, rt.clock, "liquidated_damages")
    results, errors = race(rt, measures.charge_damages, uin=uin, amount=50_00, reason="违约",
                           key="same-key")
    assert errors == []
    assert sum(r["created"] for r in results) == 1
    assert len({r["id"] for r in results}) == 1 and len({r["txn_id"] for r in results}) == 1
    view = balance(rt, uin)
    assert (view.cash, view.arrears) == (0, 20_00)
    assert count(rt, statement_entries, statement_entries.c.uin == uin,
                 statement_entries.c.action_type == "adj_deduct") == 1
    assert count(rt, account_events, account_events.c.kind == "measure_damages") == 1
    assert count(rt, audit_log, audit_log.c.action == "arrears_damages") == 1
    assert count(rt, in_site_messages, in_site_messages.c.template ==
                 "arrears_measure_damages") == 1
    assert_reconciled(rt)


@pytest.mark.spec("ARR-6", "ARR-4")
def test_eight_set_offs_repay_once(rt):
    uin = new_account(rt, "race-set-off")
    overdraw(rt, uin, 40_00)
    with transaction(rt.engine) as conn:  # a refund credited while in arrears
        funds.refund(conn, rt.clock, uin, key="refund", gift=0, cash=100_00,
                     revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))
    results, errors = race(rt, measures.set_off, uin=uin, key=lambda i: f"set-off-{i}")
    assert errors == []
    won = [r for r in results if isinstance(r, dict)]
    assert len(won) == 1 and won[0]["arrears"] == 40_00
    assert all(r.field == "uin" for r in results if isinstance(r, Conflict))
    view = balance(rt, uin)
    assert (view.cash, view.arrears) == (60_00, 0)
    assert count(rt, statement_entries, statement_entries.c.uin == uin,
                 statement_entries.c.action_type == "repayment") == 1
    assert count(rt, account_events, account_events.c.kind == "measure_set_off") == 1
    assert_reconciled(rt)


@pytest.mark.spec("ARR-6")
def test_eight_take_offline_stop_each_resource_once(rt):
    uin, ids = owing_with_resources(rt)
    results, errors = race(rt, measures.take_offline, uin=uin, reason="停服",
                           key=lambda i: f"off-{i}")
    assert errors == []
    won = [r for r in results if isinstance(r, dict)]
    assert len(won) == 1 and sorted(won[0]["resources"]) == sorted(ids.values())
    assert count(rt, resource_stops, resource_stops.c.uin == uin) == len(ids)
    assert count(rt, account_events, account_events.c.kind == "measure_offline") == 1
    assert_reconciled(rt)


@pytest.mark.spec("ARR-6", "WDR-5")
def test_eight_set_offs_return_a_failed_withdrawal_once(pay):  # noqa: F811
    money = Money(pay)
    done = money.failed(40_00)
    rt, uin = money.rt, money.uin
    overdraw(rt, uin, 30_00)
    results, errors = race(rt, measures.set_off, uin=uin, key=lambda i: f"wdr-set-off-{i}")
    assert errors == []
    won = [r for r in results if isinstance(r, dict)]
    assert len(won) == 1 and won[0]["withdrawals"] == [done["id"]]
    assert all(r.field == "uin" for r in results if isinstance(r, Conflict))
    view = balance(rt, uin)
    assert (view.cash, view.arrears) == (10_00, 0)
    assert money.entries()[-2:] == [("cash", 40_00), ("repayment", -30_00)]
    assert count(rt, audit_log, audit_log.c.action == "withdrawal.return_to_cash") == 1
    assert_reconciled(rt)
