"""Random sequences of ledger operations against a real database (BAL-6).

A Hypothesis state machine drives transfers, two-phase holds, idempotent
repeats and reversals on a handful of accounts, keeps a plain Python model
of what every balance must be, and after every step checks the database
against it: every transaction sums to zero, every cached balance equals its
postings (reconcile() finds nothing), no bounded account is outside its
bounds, nothing was written by a refused operation.

The test runs on each backend (the ``engine`` fixture: a fresh database of
its own). Every Hypothesis example starts from empty ledger tables: the
machine only writes those, and emptying them takes milliseconds where making
a PostgreSQL database takes ~0.4 s (too slow per example, and for shrinking).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, invariant, precondition, rule,
                                 run_state_machine_as_test)
from sqlalchemy import delete, func, select

from feecenter.clock import FixedClock
from feecenter.errors import Conflict, IdempotencyConflict, InsufficientBalance
from feecenter.ledger import service as ledger
from feecenter.ledger.reconcile import reconcile
from feecenter.ledger.service import HoldLeg, Posting, Transfer
from feecenter.ledger.tables import (ledger_accounts, ledger_hold_legs, ledger_holds,
                                     ledger_postings, ledger_transactions)
from tests.conftest import START

LEDGER_TABLES = (ledger_hold_legs, ledger_holds, ledger_postings, ledger_transactions,
                 ledger_accounts)  # children first

# name -> (cached, min_balance, max_balance)
ACCOUNTS = {
    "cash_a": (True, 0, None),      # customer money: never below zero (no overdraw)
    "cash_b": (True, 0, None),
    "free": (True, None, None),     # unbounded
    "arrears": (True, None, 0),     # never above zero
    "platform": (False, None, None),  # uncached: balance summed from postings
}
ESCROWS = {"escrow_a": (True, 0, None), "escrow_b": (True, 0, None)}
PAYERS = sorted(ACCOUNTS)
SOURCES = ["cash_a", "cash_b", "free", "arrears"]  # holds take money from cached accounts

amounts = st.integers(min_value=1, max_value=30_000)
picks = st.integers(min_value=0, max_value=10_000)

SETTINGS = settings(max_examples=25, stateful_step_count=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@dataclass
class TxnRecord:
    spec: Transfer
    txn_id: int
    reversed_by: tuple[str, int] | None = None  # (key, reversal txn id)


@dataclass
class HoldRecord:
    key: str
    legs: list[tuple[str, str, int]]  # (source, escrow, amount)
    hold_id: int
    state: str = "pending"
    posted: int | None = None


class LedgerMachine(RuleBasedStateMachine):
    engine = None  # set by the test: the engine of its fresh database

    def __init__(self):
        super().__init__()
        self.clock = FixedClock(START)
        self.bounds: dict[str, tuple[bool, int | None, int | None]] = {**ACCOUNTS, **ESCROWS}
        with self.engine.begin() as conn:
            for table in LEDGER_TABLES:  # the previous example's rows
                conn.execute(delete(table))
            self.ids = {name: ledger.open_account(conn, self.clock, f"sm:{name}", name,
                                                  uin=7 if name != "platform" else None,
                                                  min_balance=low, max_balance=high,
                                                  cached=cached)
                        for name, (cached, low, high) in self.bounds.items()}
        self.names = {i: name for name, i in self.ids.items()}
        self.balance = {name: 0 for name in self.bounds}
        self.txns = 0
        self.postings = 0
        self.records: list[TxnRecord] = []
        self.holds: list[HoldRecord] = []
        self.serial = 0

    # ------------------------------------------------------------ model helpers

    def _key(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    def _fits(self, name: str, value: int) -> bool:
        cached, low, high = self.bounds[name]
        return not cached or ((low is None or value >= low) and (high is None or value <= high))

    def _attempt(self, legs: dict[str, int], call):
        """Run ``call`` in a unit of work; it succeeds iff the model says the legs fit."""
        legs = {name: amount for name, amount in legs.items() if amount}
        assert sum(legs.values()) == 0
        after = {name: self.balance[name] + amount for name, amount in legs.items()}
        if all(self._fits(name, value) for name, value in after.items()):
            with self.engine.begin() as conn:
                result = call(conn)
            self.balance.update(after)
            self.txns += 1
            self.postings += len(legs)
            return result
        with pytest.raises(InsufficientBalance):
            with self.engine.begin() as conn:
                call(conn)
        return None

    def _refused(self, error, call):
        with pytest.raises(error):
            with self.engine.begin() as conn:
                call(conn)

    def _spec_legs(self, spec: Transfer) -> dict[str, int]:
        return {self.names[p.account_id]: p.amount for p in spec.postings}

    # ------------------------------------------------------------ transfers

    @rule(payer=st.sampled_from(PAYERS), payees=st.lists(st.sampled_from(PAYERS), min_size=1,
                                                         max_size=2, unique=True),
          amount=amounts, cut=st.integers(min_value=1, max_value=29_999))
    def transfer(self, payer, payees, amount, cut):
        payees = [p for p in payees if p != payer] or [p for p in PAYERS if p != payer][:1]
        legs = {payer: -amount}
        if len(payees) == 2 and cut < amount:
            legs.update({payees[0]: cut, payees[1]: amount - cut})
        else:
            legs[payees[0]] = amount
        spec = Transfer(idempotency_key=self._key("t"), kind="test", uin=7,
                        postings=tuple(Posting(self.ids[n], a) for n, a in legs.items()))
        result = self._attempt(legs, lambda conn: ledger.transfer(conn, self.clock, spec))
        if result is not None:
            assert result.created
            assert result.balances_after == {self.ids[n]: self.balance[n] for n in legs
                                              if self.bounds[n][0]}
            self.records.append(TxnRecord(spec, result.txn_id))

    @precondition(lambda self: self.records)
    @rule(pick=picks)
    def repeat_transfer(self, pick):
        record = self.records[pick % len(self.records)]
        with self.engine.begin() as conn:
            result = ledger.transfer(conn, self.clock, record.spec)
        assert (result.txn_id, result.created) == (record.txn_id, False)

    @precondition(lambda self: self.records)
    @rule(pick=picks, extra=amounts)
    def reuse_key_for_other_content(self, pick, extra):
        record = self.records[pick % len(self.records)]
        legs = list(record.spec.postings)
        legs[0] = Posting(legs[0].account_id, legs[0].amount - extra)
        legs[-1] = Posting(legs[-1].account_id, legs[-1].amount + extra)
        if any(p.amount == 0 for p in legs):
            return
        changed = Transfer(idempotency_key=record.spec.idempotency_key, kind=record.spec.kind,
                           uin=record.spec.uin, postings=tuple(legs))
        self._refused(IdempotencyConflict, lambda conn: ledger.transfer(conn, self.clock, changed))

    @precondition(lambda self: self.records)
    @rule(pick=picks)
    def reverse(self, pick):
        record = self.records[pick % len(self.records)]
        key = self._key("rev")
        if record.reversed_by is not None:
            self._refused(Conflict, lambda conn: ledger.reverse(conn, self.clock,
                                                                record.txn_id, key))
            return
        legs = {name: -amount for name, amount in self._spec_legs(record.spec).items()}
        result = self._attempt(legs, lambda conn: ledger.reverse(conn, self.clock,
                                                                 record.txn_id, key))
        if result is not None:
            assert result.created
            record.reversed_by = (key, result.txn_id)
            spec = Transfer(idempotency_key=key, kind="reversal", uin=record.spec.uin,
                            postings=tuple(Posting(self.ids[n], a) for n, a in legs.items()),
                            request_hash=ledger.content_hash(["reverse", record.txn_id]),
                            reverses_txn_id=record.txn_id)
            self.records.append(TxnRecord(spec, result.txn_id))

    @precondition(lambda self: any(r.reversed_by for r in self.records))
    @rule(pick=picks)
    def repeat_reversal(self, pick):
        done = [r for r in self.records if r.reversed_by]
        record = done[pick % len(done)]
        key, reversal_id = record.reversed_by
        with self.engine.begin() as conn:
            result = ledger.reverse(conn, self.clock, record.txn_id, key)
        assert (result.txn_id, result.created) == (reversal_id, False)

    # ------------------------------------------------------------ holds

    @rule(legs=st.lists(st.tuples(st.sampled_from(SOURCES), st.sampled_from(sorted(ESCROWS)),
                                  amounts), min_size=1, max_size=2))
    def create_hold(self, legs):
        key = self._key("h")
        net: dict[str, int] = defaultdict(int)
        for source, escrow, amount in legs:
            net[source] -= amount
            net[escrow] += amount
        hold_legs = [HoldLeg(self.ids[s], self.ids[e], a) for s, e, a in legs]
        hold_id = self._attempt(net, lambda conn: ledger.create_hold(
            conn, self.clock, key, hold_legs, uin=7, reference=f"res:{key}"))
        if hold_id is not None:
            self.holds.append(HoldRecord(key, legs, hold_id))

    @precondition(lambda self: self.holds)
    @rule(pick=picks, change=st.booleans())
    def repeat_hold(self, pick, change):
        hold = self.holds[pick % len(self.holds)]
        legs = [HoldLeg(self.ids[s], self.ids[e], a + (1 if change and i == 0 else 0))
                for i, (s, e, a) in enumerate(hold.legs)]

        def create(conn):
            return ledger.create_hold(conn, self.clock, hold.key, legs, uin=7,
                                      reference=f"res:{hold.key}")

        if change:
            self._refused(IdempotencyConflict, create)
        else:
            with self.engine.begin() as conn:
                assert create(conn) == hold.hold_id

    def _settle_legs(self, hold: HoldRecord, destination: str | None, amount: int):
        """The postings post_hold (destination) or void_hold (None) must write."""
        legs: dict[str, int] = defaultdict(int)
        left = amount
        for source, escrow, held in hold.legs:
            paid = min(left, held)
            left -= paid
            legs[escrow] -= held
            if paid:
                legs[destination] += paid
            legs[source] += held - paid
        return legs

    @precondition(lambda self: any(h.state == "pending" for h in self.holds))
    @rule(pick=picks, destination=st.sampled_from(PAYERS),
          percent=st.integers(min_value=0, max_value=100), full=st.booleans())
    def post_hold(self, pick, destination, percent, full):
        pending = [h for h in self.holds if h.state == "pending"]
        hold = pending[pick % len(pending)]
        total = sum(a for _, _, a in hold.legs)
        amount = total if full else max(1, total * percent // 100)
        legs = self._settle_legs(hold, destination, amount)
        result = self._attempt(legs, lambda conn: ledger.post_hold(
            conn, self.clock, hold.hold_id, self.ids[destination], None if full else amount))
        if result is not None:
            hold.state, hold.posted = "posted", amount

    @precondition(lambda self: any(h.state == "pending" for h in self.holds))
    @rule(pick=picks)
    def void_hold(self, pick):
        pending = [h for h in self.holds if h.state == "pending"]
        hold = pending[pick % len(pending)]
        legs = self._settle_legs(hold, None, 0)
        result = self._attempt(legs, lambda conn: ledger.void_hold(conn, self.clock,
                                                                   hold.hold_id))
        if result is not None:
            hold.state, hold.posted = "voided", 0

    @precondition(lambda self: any(h.state != "pending" for h in self.holds))
    @rule(pick=picks, post=st.booleans())
    def settle_again(self, pick, post):
        settled = [h for h in self.holds if h.state != "pending"]
        hold = settled[pick % len(settled)]
        if post:
            self._refused(Conflict, lambda conn: ledger.post_hold(
                conn, self.clock, hold.hold_id, self.ids["platform"]))
        else:
            self._refused(Conflict, lambda conn: ledger.void_hold(conn, self.clock,
                                                                  hold.hold_id))

    # ------------------------------------------------------------ invariants

    @invariant()
    def ledger_matches_the_model(self):
        with self.engine.connect() as conn:
            unbalanced = conn.execute(
                select(ledger_postings.c.txn_id).group_by(ledger_postings.c.txn_id)
                .having(func.sum(ledger_postings.c.amount) != 0)).all()
            assert unbalanced == []
            assert reconcile(conn) == []
            cached = dict(conn.execute(select(ledger_accounts.c.code, ledger_accounts.c.balance)
                                       .where(ledger_accounts.c.cached.is_(True))).all())
            actual = {name: ledger.balance_of(conn, i) for name, i in self.ids.items()}
            counts = (conn.execute(select(func.count()).select_from(ledger_transactions))
                      .scalar_one(),
                      conn.execute(select(func.count()).select_from(ledger_postings))
                      .scalar_one())
            holds = {row.id: (row.state, row.posted_amount) for row in
                     conn.execute(select(ledger_holds.c.id, ledger_holds.c.state,
                                         ledger_holds.c.posted_amount))}
        assert actual == self.balance
        assert sum(actual.values()) == 0
        for name, value in actual.items():
            assert self._fits(name, value), (name, value)
            if self.bounds[name][0]:
                assert cached[f"sm:{name}"] == value
        assert counts == (self.txns, self.postings), "a refused or repeated call wrote rows"
        assert holds == {h.hold_id: (h.state, h.posted) for h in self.holds}
        held = defaultdict(int)
        for hold in self.holds:
            if hold.state == "pending":
                for _, escrow, amount in hold.legs:
                    held[escrow] += amount
        assert {e: self.balance[e] for e in ESCROWS} == {e: held[e] for e in ESCROWS}


@pytest.mark.slow
@pytest.mark.spec("BAL-6")
def test_random_ledger_operations_keep_every_invariant(engine):
    machine = type(f"LedgerMachineOn{engine.dialect.name.title()}", (LedgerMachine,),
                   {"engine": engine})
    run_state_machine_as_test(machine, settings=SETTINGS)
