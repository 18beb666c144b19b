"""SET-8 × SET-9: a period settled again after the late pass billed its late usage charges
nothing more. The account had no usage when the period first completed, so it had no
``settled_accounts`` row; the late pass billed the usage that came later as adjustment
lines, and a rerun of the period (a job retry, an operator) must not charge it again as a
charge line. Whichever of the period's own run, the late pass or a rerun gets there first,
each period's usage is billed exactly once — also across a SIGKILL inside the late pass
and with eight threads racing on PostgreSQL. And an older period settled for the first
time out of order does not hide usage that arrived late for a later one.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from feecenter.clock import FixedClock
from feecenter.db.engine import dispose, make_engine
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_postings
from feecenter.periods import HOURLY, period_containing
from feecenter.settlement import service as settlement
from feecenter.settlement.tables import bill_lines, settled_accounts
from tests.conftest import START
from tests.helpers import (add_cash, assert_reconciled, balance, new_account, row_counts,
                           run_threads)
from tests.test_settlement import hour, ingest, lines, load, open_, settle
from tests.test_settlement_crash import run_until_killed
from tests.test_settlement_crash import snapshot as full_snapshot
from tests.test_usage_corrections import send

VM = "S5.MEDIUM4"  # 0.50 yuan an hour in the sample catalog


@pytest.fixture
def quiet(rt):
    """An account with 10.00 cash and a postpaid VM; hour 0 settled (and completed)
    while the account had no usage in it; the clock then in hour 1."""
    load(rt)
    uin = new_account(rt)
    rid = open_(rt, uin, name="web-1")
    add_cash(rt, uin, 10_00)
    s0, e0 = hour(0)
    rt.clock.set(e0)
    assert settle(rt, "hour", s0)["accounts"] == 0
    rt.clock.set(e0 + timedelta(minutes=20))
    return rt, uin, rid


def state(rt, uin):
    """What settlement wrote for the account: its lines, balances, 收支明细 and postings."""
    return (lines(rt, uin), balance(rt, uin),
            row_counts(rt, statement_entries, ledger_postings, settled_accounts))


def billed(rt, uin, period_key):
    """(quantity, fen) the account's lines of ``period_key`` billed, all kinds together."""
    b = bill_lines.c
    with rt.engine.connect() as conn:
        return tuple(int(v) for v in conn.execute(select(
            func.coalesce(func.sum(b.quantity), 0), func.coalesce(func.sum(b.deducted), 0))
            .where(b.uin == uin, b.period_key == period_key)).one())


def settle_hour(rt, n):
    """Settle hour n at its end (its late pass bills what came late for earlier hours)."""
    start, end = hour(n)
    rt.clock.set(end)
    return settle(rt, "hour", start)


@pytest.mark.spec("SET-8", "SET-9")
def test_an_hour_settled_again_after_the_late_pass_billed_it_charges_nothing_more(quiet):
    rt, uin, rid = quiet
    s0, e0 = hour(0)
    ingest(rt, [("late-0", uin, rid, VM, "1", s0, e0)])  # hour 0's usage, after hour 0 ran
    assert settle_hour(rt, 1)["adjustment_lines"] == 1
    [adjustment] = lines(rt, uin)
    assert (adjustment["kind"], adjustment["period_key"], adjustment["deducted"]) == (
        "adjustment", "2026-03-02T10", 50)
    before = state(rt, uin)

    rt.clock.advance(minutes=30)
    again = settle(rt, "hour", s0)  # a job retry or an operator settles hour 0 again
    assert (again["accounts"], again["skipped"], again["lines"]) == (0, 1, 0)
    assert state(rt, uin) == before
    settle(rt, "hour", hour(1)[0])
    settle_hour(rt, 2)
    settle(rt, "hour", s0)
    assert state(rt, uin) == before
    assert billed(rt, uin, "2026-03-02T10") == (1_000_000, 50)
    assert balance(rt, uin).cash == 10_00 - 50
    assert_reconciled(rt)


@pytest.mark.spec("SET-8", "SET-9")
def test_an_hour_settled_again_before_the_late_pass_bills_its_late_usage_as_the_charge(quiet):
    rt, uin, rid = quiet
    s0, e0 = hour(0)
    ingest(rt, [("late-0", uin, rid, VM, "1", s0, e0)])
    assert settle(rt, "hour", s0)["accounts"] == 1  # the rerun gets there first
    assert settle_hour(rt, 1)["adjustment_lines"] == 0
    settle(rt, "hour", s0)
    [charge] = lines(rt, uin)
    assert (charge["kind"], charge["period_key"], charge["deducted"]) == (
        "charge", "2026-03-02T10", 50)
    assert balance(rt, uin).cash == 10_00 - 50
    assert_reconciled(rt)


@pytest.mark.spec("SET-8", "SET-9")
@pytest.mark.parametrize("corrected, fen", [("3", 50 + 1_00), ("0.5", 50 - 25)])
def test_a_corrected_late_hour_settled_again_charges_nothing_more(quiet, corrected, fen):
    rt, uin, rid = quiet
    send(rt, uin, rid, "1", 0, event="late-0")  # late, billed by hour 1's late pass
    assert settle_hour(rt, 1)["adjustment_lines"] == 1
    assert send(rt, uin, rid, corrected, 1, event="late-0").corrected == 1
    rt.clock.advance(minutes=10)
    assert settle(rt, "hour", hour(0)[0])["accounts"] == 0  # rerun before the correction's pass
    assert [line["kind"] for line in lines(rt, uin)] == ["adjustment"]
    assert settle_hour(rt, 2)["adjustment_lines"] == 1  # the correction, billed once
    before = state(rt, uin)
    settle(rt, "hour", hour(0)[0])
    settle(rt, "hour", hour(1)[0])
    assert state(rt, uin) == before
    quantity = int(float(corrected) * 1_000_000)
    assert billed(rt, uin, "2026-03-02T10") == (quantity, fen)
    assert [line["kind"] for line in lines(rt, uin)] == ["adjustment", "adjustment"]
    assert balance(rt, uin).cash == 10_00 - fen
    assert_reconciled(rt)


@pytest.mark.spec("SET-8", "SET-9")
def test_an_older_hour_settled_for_the_first_time_late_hides_no_late_usage(rt):
    """The late pass reads what arrived since the latest earlier hour's run completed,
    not since whichever earlier hour completed last: hour 0, settled for the first time
    after hour 1 (a backfill, a retry), must not hide hour 1's late usage."""
    load(rt)
    uin = new_account(rt)
    rid = open_(rt, uin)
    add_cash(rt, uin, 10_00)
    (s0, _), (s1, e1) = hour(0), hour(1)
    settle_hour(rt, 1)  # hour 0 not run yet
    rt.clock.set(e1 + timedelta(minutes=20))
    ingest(rt, [("late-1", uin, rid, VM, "1", s1, e1)])  # late for hour 1
    rt.clock.set(e1 + timedelta(minutes=30))
    assert settle(rt, "hour", s0)["accounts"] == 0  # hour 0 completes now, out of order
    assert settle_hour(rt, 2)["adjustment_lines"] == 1
    assert billed(rt, uin, "2026-03-02T11") == (1_000_000, 50)
    settle(rt, "hour", s1)
    assert billed(rt, uin, "2026-03-02T11") == (1_000_000, 50)
    assert balance(rt, uin).cash == 10_00 - 50
    assert_reconciled(rt)


# ---------------------------------------------------------------- a crash inside the late pass

QUIET_ACCOUNTS = 6
HOUR0, HOUR1 = START, START + timedelta(hours=1)


def build_quiet(url, monkeypatch):
    """Accounts with a VM; the odd ones have usage in hour 0, which is settled; then late
    usage for hour 0 of every account and hour 1's usage arrive. Two builds are alike."""
    import itertools

    from feecenter.resources import service as resources
    from tests.test_settlement_crash import ingest as ingest_hours

    counter = itertools.count()
    monkeypatch.setattr(resources, "new_resource_id",
                        lambda product: f"{product}-{next(counter):010d}")
    rt = _Rt(url)
    load(rt)
    owned = []
    for n in range(QUIET_ACCOUNTS):
        uin = new_account(rt, name=f"quiet{n}")
        add_cash(rt, uin, [30, 10_00][n % 2] + n, key=f"c{n}")
        owned.append((n, uin, open_(rt, uin)))
    rt.clock.set(HOUR1)
    ingest_hours(rt, [(f"a{n}", uin, vm, VM, "1", HOUR0) for n, uin, vm in owned if n % 2])
    settlement.settle_period(rt.engine, rt.clock, "hour", period_containing(HOURLY, HOUR0))
    rt.clock.set(HOUR1 + timedelta(hours=1, minutes=5))
    ingest_hours(rt, [row for n, uin, vm in owned for row in (
        (f"late{n}", uin, vm, VM, f"0.{n + 2}", HOUR0),
        (f"b{n}", uin, vm, VM, "1", HOUR1))])
    return rt


class _Rt:
    def __init__(self, url):
        self.engine = make_engine(url)
        self.clock = FixedClock(START)


def settle_both(rt):
    """Hour 1 (its late pass bills hour 0's late usage), then hour 0 again."""
    settlement.settle_period(rt.engine, rt.clock, "hour", period_containing(HOURLY, HOUR1),
                             chunk_accounts=2)
    rerun = settlement.settle_period(rt.engine, rt.clock, "hour",
                                     period_containing(HOURLY, HOUR0))
    assert (rerun["accounts"], rerun["lines"]) == (0, 0)


@pytest.mark.slow
@pytest.mark.spec("SET-8", "SET-9")
def test_a_late_pass_killed_before_commit_then_rerun_bills_each_hour_once(
        database_factory, monkeypatch, tmp_path):
    clean = build_quiet(database_factory(), monkeypatch)
    settle_both(clean)
    expected = full_snapshot(clean)
    hour0 = [line for line in expected["lines"] if dict(line)["period_key"] == "2026-03-02T10"]
    # hour 0 of each account: its charge (odd accounts) and its one late adjustment
    assert sorted(dict(line)["kind"] for line in hour0) == sorted(
        ["charge"] * (QUIET_ACCOUNTS // 2) + ["adjustment"] * QUIET_ACCOUNTS)
    assert len(expected["settled"]) == 2 * QUIET_ACCOUNTS  # hour 0 and hour 1, every account

    url = database_factory()
    crashed = build_quiet(url, monkeypatch)
    # killed in the late pass after the 3rd account's (a quiet one's) adjustment was
    # written, before its settled_accounts row and the commit
    run_until_killed(url, crashed, "post_lines", 2, tmp_path)
    assert full_snapshot(crashed) != expected
    settle_both(crashed)
    assert full_snapshot(crashed) == expected
    settle_both(crashed)
    assert full_snapshot(crashed) == expected
    for world in (clean, crashed):
        dispose(world.engine)


# ---------------------------------------------------------------- eight threads (PostgreSQL)

@pytest.mark.postgres_only
@pytest.mark.spec("SET-8", "SET-9")
def test_eight_threads_rerunning_an_hour_and_its_late_pass_bill_it_once(quiet):
    rt, uin, rid = quiet
    s0, e0 = hour(0)
    ingest(rt, [("late-0", uin, rid, VM, "1", s0, e0)])
    rt.clock.set(hour(1)[1])
    hour0, hour1 = period_containing(HOURLY, s0), period_containing(HOURLY, hour(1)[0])

    def race(i):
        if i % 2:
            settlement.settle_period(rt.engine, rt.clock, "hour", hour0)
        else:
            settlement.settle_late_usage(rt.engine, rt.clock, "hour", hour1)

    assert run_threads(8, race) == []
    settle(rt, "hour", hour(1)[0])  # whatever the threads left
    settle(rt, "hour", s0)
    [line] = lines(rt, uin)  # a charge or an adjustment, whichever got there first
    assert (line["period_key"], line["quantity"], line["deducted"]) == (
        "2026-03-02T10", 1_000_000, 50)
    assert balance(rt, uin).cash == 10_00 - 50
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(settled_accounts).where(
            settled_accounts.c.uin == uin,
            settled_accounts.c.period_key == "2026-03-02T10")).scalar_one() == 1
    assert_reconciled(rt)


@pytest.mark.spec("SET-8", "SET-9")
def test_revision_0014_writes_the_row_the_late_pass_did_not_write_before_the_fix(quiet):
    """A database from before the fix: late usage billed by the late pass, and no row for
    the account and period. Upgrading writes it, so a rerun charges nothing more."""
    from alembic import command

    from feecenter.db.migrate import alembic_config, upgrade

    rt, uin, rid = quiet
    s0, e0 = hour(0)
    ingest(rt, [("late-0", uin, rid, VM, "1", s0, e0)])
    assert settle_hour(rt, 1)["adjustment_lines"] == 1
    with rt.engine.begin() as conn:  # as the late pass left it before the fix
        conn.execute(settled_accounts.delete().where(
            settled_accounts.c.uin == uin, settled_accounts.c.period_key == "2026-03-02T10"))
    command.downgrade(alembic_config(rt.engine), "0013")
    upgrade(rt.engine)
    with rt.engine.connect() as conn:
        row = conn.execute(select(settled_accounts.c.amount, settled_accounts.c.txn_id).where(
            settled_accounts.c.uin == uin,
            settled_accounts.c.period_key == "2026-03-02T10")).one()
    [adjustment] = lines(rt, uin)
    assert (row.amount, row.txn_id) == (50, adjustment["txn_id"])
    before = state(rt, uin)
    rt.clock.advance(minutes=30)
    assert settle(rt, "hour", s0)["accounts"] == 0
    assert state(rt, uin) == before
    assert_reconciled(rt)
