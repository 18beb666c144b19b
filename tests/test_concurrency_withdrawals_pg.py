"""Withdrawals under 8 concurrent requests (PostgreSQL): applications for 60 % of the
withdrawable amount each make exactly one (the account's balance rows locked FOR
UPDATE first, the withdrawable amount and every source's refundable money re-read
under the lock), and one key makes one withdrawal (WDR-1, WDR-4)."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from feecenter.errors import InvalidInput
from feecenter.ledger.tables import ledger_holds
from feecenter.withdrawals.tables import withdrawal_legs, withdrawals
from tests.helpers import assert_reconciled, balance, new_account, run_threads
from tests.withdrawal_seed import paid_recharge, takeable, withdraw

pytestmark = pytest.mark.postgres_only

THREADS = 8


@pytest.fixture
def funded(rt):
    uin = new_account(rt)
    for amount in (60_00, 40_00, 100_00):
        paid_recharge(rt, uin, amount)
        rt.clock.advance(days=1)
    assert takeable(rt, uin) == 200_00
    return rt, uin


def _held(rt) -> tuple[int, int, int]:
    with rt.engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(withdrawals)).scalar(),
                conn.execute(select(func.coalesce(func.sum(withdrawal_legs.c.amount), 0))).scalar(),
                conn.execute(select(func.coalesce(func.sum(ledger_holds.c.amount), 0))
                             .where(ledger_holds.c.state == "pending")).scalar())


@pytest.mark.spec("WDR-1", "WDR-4")
def test_eight_applications_for_60_percent_each_make_exactly_one(funded):
    rt, uin = funded
    outcomes: list = [None] * THREADS

    def work(i: int) -> None:
        try:
            withdraw(rt, uin, 120_00, key=f"race-{i}")
            outcomes[i] = "applied"
        except InvalidInput as exc:
            outcomes[i] = exc.field

    assert run_threads(THREADS, work) == []
    assert Counter(outcomes) == {"applied": 1, "amount": THREADS - 1}
    count, legs, held = _held(rt)
    assert (count, legs, held) == (1, 120_00, 120_00)
    assert held <= 200_00
    assert balance(rt, uin).cash == 80_00 and takeable(rt, uin) == 80_00
    assert_reconciled(rt)


@pytest.mark.spec("WDR-4")
def test_eight_applications_with_one_key_make_one_withdrawal(funded):
    rt, uin = funded
    results: list = [None] * THREADS

    def work(i: int) -> None:
        results[i] = withdraw(rt, uin, 150_00, key="same")["id"]

    assert run_threads(THREADS, work) == []
    assert len(set(results)) == 1 and None not in results
    assert _held(rt) == (1, 150_00, 150_00)
    assert balance(rt, uin).cash == 50_00
    assert_reconciled(rt)
