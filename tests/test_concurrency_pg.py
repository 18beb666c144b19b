"""Concurrent money movements on PostgreSQL: no overdraw, no double payment.

Real threads, each with its own connection and database transaction per
payment, against one customer account (BAL-4: prepaid never overdraws;
BAL-6: balances stay equal to their postings).
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select, text

from feecenter.errors import InsufficientBalance
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger.reconcile import reconcile
from feecenter.ledger.tables import ledger_accounts, ledger_postings, ledger_transactions
from tests.helpers import add_cash, balance, new_account, revenue, run_threads

pytestmark = [pytest.mark.postgres_only, pytest.mark.spec("BAL-4", "BAL-6")]

THREADS = 8
DEBITS_PER_THREAD = 200
DEBIT_FEN = 73
INITIAL_FEN = 100_000  # 1,000.00 yuan: 1,369 debits of 0.73 fit, the 1,600 asked do not


def _cash_account(rt, uin: int) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(ledger_accounts.c.id).where(
            ledger_accounts.c.uin == uin, ledger_accounts.c.kind == "cash")).scalar_one()


@pytest.mark.slow
def test_concurrent_prepaid_debits_never_overdraw(rt):
    uin = new_account(rt)
    add_cash(rt, uin, INITIAL_FEN)
    rev = revenue(rt)
    lock = threading.Lock()
    outcome = {"ok": 0, "refused": 0}
    low_water = [INITIAL_FEN]

    def debit(i):
        for j in range(DEBITS_PER_THREAD):
            try:
                with rt.engine.begin() as conn:
                    funds.spend(conn, rt.clock, uin, DEBIT_FEN, key=f"debit-{i}-{j}",
                                postpaid=False, revenue_account_id=rev)
                result = "ok"
            except InsufficientBalance:
                result = "refused"
            with lock:
                outcome[result] += 1
            if j % 20 == 0:  # watch the balance from outside while the others write
                now = balance(rt, uin).cash
                with lock:
                    low_water[0] = min(low_water[0], now)

    errors = run_threads(THREADS, debit)
    assert errors == []
    attempts = THREADS * DEBITS_PER_THREAD
    assert attempts * DEBIT_FEN > INITIAL_FEN  # demand exceeds supply
    assert outcome["ok"] + outcome["refused"] == attempts
    assert outcome["ok"] == INITIAL_FEN // DEBIT_FEN == 1_369
    assert low_water[0] >= 0

    view = balance(rt, uin)
    assert view.cash == INITIAL_FEN - DEBIT_FEN * outcome["ok"] == 63
    assert view.arrears == 0 and view.available == 63
    assert revenue_total(rt, rev) == DEBIT_FEN * outcome["ok"]

    # the cash account's history: every balance after a debit, once each, never negative
    cash = _cash_account(rt, uin)
    with rt.engine.connect() as conn:
        after = conn.execute(select(ledger_postings.c.balance_after)
                             .where(ledger_postings.c.account_id == cash)
                             .order_by(ledger_postings.c.id)).scalars().all()
        deducts = conn.execute(select(func.count()).select_from(ledger_transactions)
                               .where(ledger_transactions.c.kind == "deduct")).scalar_one()
        entries = conn.execute(select(statement_entries.c.cash_after)
                               .where(statement_entries.c.uin == uin,
                                      statement_entries.c.action_type == "deduct")).scalars().all()
        assert reconcile(conn) == []
    assert after == [INITIAL_FEN - DEBIT_FEN * k for k in range(outcome["ok"] + 1)]
    assert deducts == len(entries) == outcome["ok"]
    assert min(entries) == 63


def revenue_total(rt, account_id: int) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.coalesce(func.sum(ledger_postings.c.amount), 0))
                            .where(ledger_postings.c.account_id == account_id)).scalar_one()


def _waiting_on_locks(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")).scalar_one()


def _one_payment_written(rt, uin: int, key: str, results: list) -> None:
    with rt.engine.connect() as conn:
        txns = conn.execute(select(ledger_transactions.c.id)
                            .where(ledger_transactions.c.idempotency_key == key)).scalars().all()
        entries = conn.execute(select(func.count()).select_from(statement_entries)
                               .where(statement_entries.c.txn_id.in_(txns))).scalar_one()
        assert reconcile(conn) == []
    assert len(txns) == 1, "exactly one ledger transaction per idempotency key"
    assert {r.txn_id for r in results} == set(txns), "every caller sees the same transaction"
    assert sorted(r.created for r in results) == [False] * (len(results) - 1) + [True]
    assert entries == 1, "one 收支明细 entry (BAL-5), not one per caller"
    assert all(r.entry_ids == results[0].entry_ids for r in results)


def test_same_idempotency_key_paid_twice_at_once_is_written_once(rt):
    """The second payment passes its replay check before the first commits, then waits."""
    uin = new_account(rt)
    add_cash(rt, uin, 10_000)
    rev = revenue(rt)
    first_spent, release = threading.Event(), threading.Event()
    results, errors = [], []

    def pay(hold_open: bool):
        try:
            with rt.engine.begin() as conn:
                results.append(funds.spend(conn, rt.clock, uin, 2_500, key="order-42-pay",
                                           postpaid=False, revenue_account_id=rev,
                                           order_id="order-42"))
                if hold_open:
                    first_spent.set()
                    assert release.wait(timeout=30)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            first_spent.set()

    first = threading.Thread(target=pay, args=(True,))
    first.start()
    assert first_spent.wait(timeout=30)
    second = threading.Thread(target=pay, args=(False,))
    second.start()
    deadline = time.monotonic() + 10  # wait until the second blocks on the balance row lock
    while _waiting_on_locks(rt) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _waiting_on_locks(rt) == 1
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert errors == []
    assert len(results) == 2
    _one_payment_written(rt, uin, "order-42-pay", results)
    assert balance(rt, uin).cash == 7_500


def test_racing_repeats_of_one_key(rt):
    """Eight callers fire the same payment together, for several keys in a row."""
    uin = new_account(rt)
    add_cash(rt, uin, 100_000)
    rev = revenue(rt)
    rounds = 10
    results: dict[int, list] = {r: [] for r in range(rounds)}
    barriers = [threading.Barrier(THREADS) for _ in range(rounds)]

    def pay(i):
        for r in range(rounds):
            barriers[r].wait(timeout=30)
            try:
                with rt.engine.begin() as conn:
                    results[r].append(funds.spend(conn, rt.clock, uin, 1_000, key=f"race-{r}",
                                                  postpaid=False, revenue_account_id=rev))
            except BaseException:
                for barrier in barriers:  # let the other threads stop instead of waiting
                    barrier.abort()
                raise

    errors = run_threads(THREADS, pay)
    assert [e for e in errors if not isinstance(e, threading.BrokenBarrierError)] == []
    for r in range(rounds):
        _one_payment_written(rt, uin, f"race-{r}", results[r])
    assert balance(rt, uin).cash == 100_000 - rounds * 1_000
