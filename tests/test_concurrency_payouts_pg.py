"""Nothing paid twice under concurrency (WDR-5, PostgreSQL): 8 operators at once
return the same failed withdrawal to cash, pay it offline, or import the same
payout batch result, and 8 sender runs work the same online leg. Exactly one of
them moves the money (the withdrawal row locked, then a conditional UPDATE of the
legs on their state whose row count decides); the others get a 409 or find the leg
settled, and reconcile is clean. SQLite serialises writers, so this runs on
PostgreSQL only.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from feecenter.db.engine import transaction
from feecenter.errors import Conflict
from feecenter.ledger.tables import ledger_holds, ledger_transactions
from feecenter.withdrawals import payouts
from feecenter.withdrawals.tables import withdrawal_legs
from tests.helpers import OPS, assert_reconciled, balance, run_threads
from tests.test_recharges import pay, sandbox  # noqa: F401 - fixtures
from tests.test_withdrawal_payouts import BANK, Money

pytestmark = pytest.mark.postgres_only

THREADS = 8


def race(rt, action) -> Counter:
    """Run ``action(conn)`` in 8 transactions at once; count "ok" and "conflict"."""
    outcomes: list = [None] * THREADS

    def work(i: int) -> None:
        try:
            with transaction(rt.engine) as conn:
                outcomes[i] = action(conn)
        except Conflict:
            outcomes[i] = "conflict"

    assert run_threads(THREADS, work) == []
    return Counter("conflict" if o == "conflict" else "ok" for o in outcomes)


def txn_count(rt, kind: str) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(ledger_transactions)
                            .where(ledger_transactions.c.kind == kind)).scalar()


@pytest.mark.spec("WDR-5")
def test_eight_returns_to_cash_return_the_money_once(pay):  # noqa: F811
    money = Money(pay)
    done = money.failed(45_00)
    before = balance(money.rt, money.uin).cash
    counts = race(money.rt, lambda conn: payouts.return_to_cash(
        conn, money.rt.clock, OPS, done["id"], reason="退回余额"))
    assert counts == Counter({"ok": 1, "conflict": THREADS - 1})
    assert balance(money.rt, money.uin).cash - before == 45_00
    assert money.entries().count(("cash", 45_00)) == 1
    with money.rt.engine.connect() as conn:
        holds = conn.execute(select(ledger_holds.c.state).where(
            ledger_holds.c.uin == money.uin)).scalars().all()
    assert holds == ["voided"]  # voided back to cash once
    assert_reconciled(money.rt)


@pytest.mark.spec("WDR-5")
def test_eight_pay_offline_calls_queue_one_bank_leg(pay):  # noqa: F811
    money = Money(pay)
    done = money.failed(12_00)
    counts = race(money.rt, lambda conn: payouts.pay_offline(
        conn, money.rt.clock, OPS, done["id"], BANK, reason="改线下"))
    assert counts == Counter({"ok": 1, "conflict": THREADS - 1})
    states = [leg["state"] for leg in money.get(done["id"])["legs"]]
    assert states == ["rerouted", "queued"]
    assert_reconciled(money.rt)


@pytest.mark.spec("WDR-3", "WDR-5")
def test_eight_imports_of_one_result_pay_each_leg_once(pay):  # noqa: F811
    money = Money(pay)
    money.recharge(60_00)
    made = [money.withdraw(fen, route="offline", bank=BANK) for fen in (10_00, 20_00)]
    with transaction(money.rt.engine) as conn:
        batch = payouts.export_batch(conn, money.rt.clock, OPS)
    with money.rt.engine.connect() as conn:
        leg_ids = list(conn.execute(select(withdrawal_legs.c.id).where(
            withdrawal_legs.c.batch_id == batch["batch_id"])).scalars())
    result = "leg_id,result,reason\n" + "".join(f"{i},paid,\n" for i in leg_ids)
    paid_before = txn_count(money.rt, "withdrawal_payout")
    outcomes: list = [None] * THREADS

    def work(i: int) -> None:
        with transaction(money.rt.engine) as conn:
            outcomes[i] = payouts.import_batch_result(conn, money.rt.clock, OPS,
                                                      batch["batch_id"], result)

    assert run_threads(THREADS, work) == []
    assert sum(o["paid"] for o in outcomes) == len(leg_ids)
    assert sum(o["already"] for o in outcomes) == len(leg_ids) * (THREADS - 1)
    assert txn_count(money.rt, "withdrawal_payout") - paid_before == len(leg_ids)
    assert {money.get(w["id"])["state"] for w in made} == {"paid"}
    assert_reconciled(money.rt)


@pytest.mark.spec("WDR-2")
def test_eight_sender_runs_refund_one_leg_once(pay):  # noqa: F811
    money = Money(pay)
    money.recharge(33_00)
    made = money.withdraw(33_00)
    outcomes: list = [None] * THREADS

    def work(i: int) -> None:
        outcomes[i] = money.send(withdrawal_id=made["id"])

    assert run_threads(THREADS, work) == []
    assert sum(o["paid"] for o in outcomes) == 1
    leg = money.get(made["id"])["legs"][0]
    assert leg["state"] == "paid" and len(money.refunds(leg["out_refund_no"])) == 1
    assert_reconciled(money.rt)
