"""The deterministic simulation of a small cloud (issue #19, docs/simulation.md), on
both backends: a small run with crashes (a real child SIGKILLed inside its unit of
work), duplicates and jobs run out of order keeps every invariant; one seed gives
one final state hash (on SQLite and PostgreSQL alike), another seed another; a
violated invariant names the seed, the step and a reproduction command; shrinking
finds a smaller failing run. On PostgreSQL, eight workers racing on the same
accounts keep every invariant, though not the hash.
"""

from __future__ import annotations

import pytest

from feecenter.simulation.driver import Config, SimulationFailure, run
from feecenter.simulation.shrink import shrink

SMALL = Config(seed=7, accounts=8, ops=300, hours=12, crash_rate=0.05, dup_rate=0.1)
HASHES: dict[str, str] = {}


@pytest.mark.spec("BAL-6", "ORD-3", "SET-1", "SET-3", "SET-8")
def test_one_seed_gives_one_final_state_another_seed_another(database_factory):
    first = run(database_factory(), SMALL)
    assert run(database_factory(), SMALL).state_hash == first.state_hash
    assert sum(first.crashes.values()) > 0 and first.duplicates > 0
    other = run(database_factory(), Config(**{**SMALL.__dict__, "seed": 8}))
    assert other.state_hash != first.state_hash
    HASHES[database_factory.backend] = first.state_hash
    if len(HASHES) == 2:  # the second backend's run: the same state, byte for byte
        assert HASHES["sqlite"] == HASHES["postgresql"]


@pytest.mark.slow
@pytest.mark.spec("BAL-6", "FRZ-3", "ORD-3", "ORD-4", "SET-1", "SET-3", "SET-9", "ARR-3",
                  "RNW-1", "RNW-2", "RNW-5", "RNW-6")
def test_the_ci_run_keeps_every_invariant(database_factory):
    """The issue's size on both backends: 50 accounts, 5,000 operations, crashes on.
    The driver's commits skip the flush to disk (a killed child's do not). Prepaid
    resources bought two months before expire in it: auto-renewed (some aligned to a
    unified day), failed for the balance, stopped, restored by a renewal and released,
    each as the model predicts."""
    summary = run(database_factory(), Config(seed=19, accounts=50, ops=5000, hours=96,
                                             crash_rate=0.01, dup_rate=0.05,
                                             durable_commits=False))
    assert summary.crashes and summary.kinds["tick"] >= 90
    done = summary.renewal
    assert done["auto_renewed"] and done["auto_failed"] and done["stopped"]
    assert done["released"] and done["restored"] and done["aligned_renewals"]
    assert summary.kinds["auto_renew"] and summary.kinds["unified_day"]


@pytest.mark.spec("RNW-6")
def test_a_release_one_day_early_is_caught(database_factory, monkeypatch):
    """The product's release rule broken (a resource leaves the recycle bin a day before
    its recovery period ends): the model, with its own formula, says it is still there."""
    from datetime import timedelta

    from feecenter.renewal import rules

    rule = rules.release_at
    monkeypatch.setattr(rules, "release_at", lambda stopped_at, days: rule(
        stopped_at, days) - timedelta(days=1))
    with pytest.raises(SimulationFailure) as caught:
        run(database_factory(), Config(seed=3, accounts=10, ops=300, hours=30))
    assert "RNW-6" in str(caught.value) and "--seed 3" in str(caught.value)


@pytest.mark.spec("BIL-2", "INV-1")
def test_a_rollup_that_drops_prepaid_lines_is_caught(database_factory, monkeypatch):
    """The daily roll-up refresh broken (a day's prepaid order lines left out of
    L0-L2): the bill-level invariant finds L0 != Σ L3 once the tick refreshed a day."""
    from feecenter.bills import lines, rollups

    monkeypatch.setattr(rollups, "day_aggregates", lambda conn, day: (
        lines._postpaid_day(conn, day) if lines._postpaid_day(conn, day) is not None
        else lines._prepaid_day(day).where(lines.orders.c.id < 0)))
    with pytest.raises(SimulationFailure) as caught:
        run(database_factory(), Config(seed=3, accounts=10, ops=300, hours=30))
    # first, at the step after the roll-up: invoices' consumed (from the roll-ups) is not
    # the cash of the bill lines and orders the simulation reads itself (INV-1)
    assert "INV-1 invoiceable" in str(caught.value)
    from feecenter.simulation import checks

    monkeypatch.delitem(checks.CHECKS, "invoices")
    with pytest.raises(SimulationFailure) as caught:
        run(database_factory(), Config(seed=3, accounts=10, ops=300, hours=30))
    assert "BIL-2 bill levels" in str(caught.value) and "L3 deducted" in str(caught.value)


def test_a_broken_invariant_stops_the_run_and_shrinks(database_factory, monkeypatch):
    """A deliberately wrong model (a top-up counted twice) is caught at once, named
    with its seed and step, and shrunk to fewer accounts and operations."""
    from feecenter.simulation.model import Model

    counted = Model._adjust

    def doubled(self, op, result):
        counted(self, op, result)
        if op.step > 40:
            self.money_in[op.uin] += op.args["fen"]

    monkeypatch.setattr(Model, "_adjust", doubled)
    config = Config(seed=5, accounts=6, ops=200, hours=8)
    with pytest.raises(SimulationFailure) as caught:
        run(database_factory(), config)
    assert "model money" in str(caught.value) and "--seed 5" in str(caught.value)
    smaller = shrink(config, caught.value, database_factory)
    assert smaller.config.accounts < 6 and smaller.config.ops < 200


@pytest.mark.postgres_only
@pytest.mark.slow
@pytest.mark.spec("BAL-1", "BAL-6", "FRZ-3", "ORD-3", "SET-1", "SET-3", "SET-8")
def test_eight_workers_racing_on_the_same_accounts_keep_every_invariant(database_factory):
    """Payments (some paying the same orders under two keys), refunds, top-ups, usage,
    the job runner and settlement run again race in batches of 16 on three hot
    accounts, with crashes and requests sent twice at once; conflicts are retried
    with the same keys. Every invariant holds after each batch and at the end."""
    summary = run(database_factory(), Config(seed=23, accounts=12, ops=800, hours=16,
                                             crash_rate=0.01, dup_rate=0.1, workers=8))
    assert summary.refused.get("pay:Conflict", 0) > 0  # racing payments: one won each
    assert summary.crashes and summary.duplicates > 0 and summary.kinds["tick"] >= 15
    assert summary.kinds["refund"] > 0 and summary.kinds["rerun"] > 0


@pytest.mark.postgres_only
def test_a_broken_invariant_stops_a_concurrent_run(database_factory, monkeypatch):
    """The model's top-ups counted twice (in the parent, which keeps the model) is
    caught in a run with four workers, and the reproduction names them."""
    from feecenter.simulation.model import Model

    counted = Model._adjust

    def doubled(self, op, result):
        counted(self, op, result)
        if op.step > 40:
            self.money_in[op.uin] += op.args["fen"]

    monkeypatch.setattr(Model, "_adjust", doubled)
    with pytest.raises(SimulationFailure) as caught:
        run(database_factory(), Config(seed=5, accounts=6, ops=200, hours=8, workers=4))
    assert "model money" in str(caught.value) and "--workers 4" in str(caught.value)


def test_concurrent_workers_need_postgresql(tmp_path):
    with pytest.raises(ValueError, match="PostgreSQL"):
        run(f"sqlite:///{tmp_path / 'x.db'}", Config(seed=1, workers=2))


# a few accounts, many applications: an invoice operation after 30 % of the steps
INVOICING = Config(seed=12, accounts=4, ops=400, hours=30)


@pytest.fixture
def invoicing(monkeypatch):
    from feecenter.simulation import plan

    monkeypatch.setattr(plan, "INVOICE_SHARE", 0.3)
    # withdrawals move money and decide on the invoice debt: none in the invoice runs
    monkeypatch.setattr(plan, "WITHDRAWAL_SHARE", 0.0)


@pytest.mark.spec("INV-1", "INV-3", "INV-5", "INV-6")
def test_invoices_keep_their_invariants_and_move_no_money(database_factory, monkeypatch,
                                                          invoicing):
    """Titles, applications (some repeating a request key, some over the available
    amount, with nothing available or special without the details), issuing and
    reversals released or rejected, with crashes: the model's invoiced amounts, numbers
    and red invoices hold. The same run without invoice operations ends in the same
    state but for the invoices: they moved no money and changed no other outcome."""
    from feecenter.db.engine import dispose, make_engine
    from feecenter.simulation import plan
    from feecenter.simulation.state import snapshot

    def final_state(config):
        url = database_factory()
        summary = run(url, config)
        engine = make_engine(url)
        try:
            return summary, snapshot(engine)
        finally:
            dispose(engine)

    config = Config(**{**INVOICING.__dict__, "crash_rate": 0.05})
    summary, with_invoices = final_state(config)
    done = summary.invoices
    assert done["applied"] > 5 and done["key repeated"] and done["refused: over available"]
    assert done["reversal released"] and done["reversal rejected"] and done["red issued"]
    assert summary.crashes
    monkeypatch.setattr(plan, "INVOICE_SHARE", 0.0)
    _, without = final_state(config)
    assert with_invoices.pop("invoices") and not without.pop("invoices")
    assert with_invoices == without


@pytest.mark.spec("INV-1")
def test_an_application_over_the_available_amount_is_caught(database_factory, monkeypatch,
                                                           invoicing):
    """applying broken (the available amount taken from consumption alone, what was
    invoiced before forgotten): an account's second application takes more than is
    left, and the model, with its own invoiced amounts, refuses to accept it."""
    from feecenter.errors import invalid
    from feecenter.invoices import invoiceable, rules, service

    def forgetful(conn, uin, amount):
        available = {(b["entity"], b["tax_category"]): max(b["consumed"], 0)
                     for b in invoiceable.buckets(conn, uin)}
        total = sum(available.values())
        amount = total if amount is None else amount
        if not 0 < amount <= total:
            raise invalid("amount", "超过可开票金额", "over the invoiceable amount")
        return amount, rules.invoices_of(rules.allocate(amount, available))

    monkeypatch.setattr(service, "_plan", forgetful)
    with pytest.raises(SimulationFailure) as caught:
        run(database_factory(), INVOICING)
    assert "INV-1" in str(caught.value) and "--seed 12" in str(caught.value)


@pytest.mark.spec("INV-5")
def test_a_skipped_invoice_number_is_caught(database_factory, monkeypatch, invoicing):
    """issuing broken (the counter moved on twice, so every other number is never
    used): the numbers of an entity's year are no longer 1..n."""
    from feecenter.invoices import issuing

    sequence = issuing.next_sequence

    def skipping(conn, entity, year):
        sequence(conn, entity, year)
        return sequence(conn, entity, year)

    monkeypatch.setattr(issuing, "next_sequence", skipping)
    with pytest.raises(SimulationFailure) as caught:
        run(database_factory(), INVOICING)
    assert "INV-5 numbers of" in str(caught.value)


# a few accounts, many withdrawals: a withdrawal operation after 30 % of the steps
WITHDRAWING = Config(seed=21, accounts=4, ops=300, hours=24, crash_rate=0.05)


@pytest.fixture
def withdrawing(monkeypatch):
    from feecenter.simulation import plan

    monkeypatch.setattr(plan, "WITHDRAWAL_SHARE", 0.3)


@pytest.mark.spec("WDR-1", "WDR-3", "WDR-4", "WDR-5")
def test_withdrawals_keep_their_invariants(database_factory, withdrawing):
    """Withdrawals by the original route (remittances paid back) and offline, some
    above the takeable amount, some repeating a key, with crashes; payout steps paying
    some legs and failing others, failed ones returned to cash or paid offline: the
    model's money and held money, the legs in flight and the pending holds agree."""
    summary = run(database_factory(), WITHDRAWING)
    done = summary.withdrawals
    assert done["applied offline"] and done["applied original"], done
    assert done["refused: over takeable"] and done["legs paid"], done
    assert done["returned to cash"] and done["paid offline instead"], done


@pytest.mark.spec("WDR-4")
def test_a_hold_short_of_its_withdrawal_is_caught(database_factory, monkeypatch, withdrawing):
    """The hold broken (a fen less than the withdrawal's leg): the legs in flight, the
    pending holds and the model's held money no longer agree."""
    from feecenter.funds import service as funds

    hold = funds.hold_for_withdrawal

    def short(conn, clock, uin, legs, **kw):
        return hold(conn, clock, uin, [(k, amount - 1 if amount > 1 else amount, ref)
                                       for k, amount, ref in legs], **kw)
    monkeypatch.setattr(funds, "hold_for_withdrawal", short)
    with pytest.raises(SimulationFailure) as caught:
        run(database_factory(), Config(**{**WITHDRAWING.__dict__, "crash_rate": 0.0}))
    assert "WDR-4 held" in str(caught.value)


# a few accounts, many warning operations: one after 20 % of the steps
WARNING = Config(seed=31, accounts=5, ops=300, hours=40, crash_rate=0.05)


@pytest.fixture
def warning_often(monkeypatch):
    from feecenter.simulation import plan

    monkeypatch.setattr(plan, "WARNING_SHARE", 0.2)


@pytest.mark.spec("XTR-2")
def test_balance_warnings_keep_their_invariants(database_factory, warning_often):
    """Warning settings set (some invalid: refused as the model predicts, nothing
    written) and the day's warning run again after the job's, with crashes: settings as
    the model says, one notice per account and day, each one due by the rules
    recomputed from the bill lines and the model's settings."""
    summary = run(database_factory(), WARNING)
    done = summary.warnings
    assert done["settings set"] and done["refused: days"] and done["refused: amount"], done
    assert done["notices judged"] and done["run warned"], done
    assert summary.crashes


@pytest.mark.spec("XTR-2")
def test_a_second_warning_on_a_day_is_caught(database_factory, monkeypatch, warning_often):
    """The notice key broken (a counter in it): a second run on a day warns again."""
    import itertools

    from feecenter.balance_warnings import service

    runs = itertools.count()
    monkeypatch.setattr(service, "key", lambda uin, day: (
        f"balance_warning:{uin}:{day.isoformat()}:{next(runs)}"))
    with pytest.raises(SimulationFailure) as caught:
        run(database_factory(), Config(**{**WARNING.__dict__, "crash_rate": 0.0}))
    assert "XTR-2 one notice a day" in str(caught.value)


@pytest.mark.spec("XTR-2")
def test_a_warning_not_due_is_caught(database_factory, monkeypatch, warning_often):
    """The rule broken (the days threshold taken 10 days higher): an account with
    enough balance for its threshold is warned, and the check, recomputing the spending
    from the bill lines with the model's settings, finds the notice was not due."""
    from feecenter.balance_warnings import service

    decide = service.rules.decide
    monkeypatch.setattr(service.rules, "decide", lambda available, spent, *, days=5,
                        amount=None: decide(available, spent, amount=amount,
                                            days=None if days is None else days + 10))
    with pytest.raises(SimulationFailure) as caught:
        run(database_factory(), Config(**{**WARNING.__dict__, "crash_rate": 0.0}))
    assert "not due" in str(caught.value)
