"""The job runner (docs/jobs.md; issue #4 item 7): period arithmetic, enqueue and claim,
idempotent reruns, crash recovery, several workers, the simulator and the CLI.

SET-4 (when periods fall due) and the runner's half of SET-8 (a period run
twice, or crashed and rerun, is run to completion exactly once) are shown
here; that the settlement job itself posts nothing twice is settlement's test.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from feecenter.accounts.permissions import SYSTEM
from feecenter.catalog import service as catalog
from feecenter.clock import BUSINESS_TZ, FixedClock, db_time, parse_business_time
from feecenter.errors import InvalidInput
from feecenter.jobs import DAILY, HOURLY, MONTHLY, REGISTRY, Registry, load_all, runner
from feecenter.jobs.tables import job_cursors, job_runs
from feecenter.orders import service as orders
from feecenter.periods import (MAX_PERIODS_PER_CALL, Period, due_periods, hour_boundaries,
                               period_containing, period_from_key, periods_between)
from tests.helpers import OPS, add_cash, new_account

SH = BUSINESS_TZ
UTC = timezone.utc


def sh(*args) -> datetime:
    return datetime(*args, tzinfo=SH)


# ---------------------------------------------------------------- periods (pure)

def test_periods_are_business_time_with_stable_keys():
    when = datetime(2026, 1, 31, 16, 30, tzinfo=UTC)  # 2026-02-01 00:30 in Shanghai
    hour = period_containing(HOURLY, when)
    assert (hour.key, hour.start, hour.end) == (
        "2026-02-01T00", datetime(2026, 1, 31, 16, tzinfo=UTC), datetime(2026, 1, 31, 17, tzinfo=UTC))
    day = period_containing(DAILY, when)
    assert (day.key, day.start, day.end) == ("2026-02-01", datetime(2026, 1, 31, 16, tzinfo=UTC),
                                             datetime(2026, 2, 1, 16, tzinfo=UTC))
    month = period_containing(MONTHLY, when)
    assert (month.key, month.start, month.end) == ("2026-02", datetime(2026, 1, 31, 16, tzinfo=UTC),
                                                   datetime(2026, 2, 28, 16, tzinfo=UTC))
    for p in (hour, day, month):
        assert period_from_key(p.cadence, p.key) == p
        assert p.start.tzinfo is not None and p.end > p.start


@pytest.mark.spec("SET-4")
def test_on_1_february_januarys_last_hour_last_day_and_month_are_all_due():
    feb_1 = sh(2026, 2, 1, 0, 0)
    last_hour = period_from_key(HOURLY, "2026-01-31T23")
    last_day = period_from_key(DAILY, "2026-01-31")
    january = period_from_key(MONTHLY, "2026-01")
    assert last_hour.end == last_day.end == january.end == feb_1
    just_before = feb_1 - timedelta(microseconds=1)
    for period in (last_hour, last_day, january):
        assert period.is_due(feb_1)
        assert not period.is_due(just_before)  # none is due before it has ended
    assert due_periods(HOURLY, sh(2026, 1, 31, 23), feb_1).periods == [last_hour]
    assert due_periods(DAILY, sh(2026, 1, 31), feb_1).periods == [last_day]
    assert due_periods(MONTHLY, sh(2026, 1, 1), feb_1).periods == [january]
    assert due_periods(MONTHLY, sh(2026, 1, 1), just_before).periods == []
    assert due_periods(DAILY, sh(2026, 1, 31), just_before).periods == []


@pytest.mark.spec("SET-4")
def test_a_lag_delays_due_but_not_the_period():
    day = period_from_key(DAILY, "2026-01-31")
    lag = timedelta(hours=2)
    assert not day.is_due(sh(2026, 2, 1, 1, 59), lag)
    assert day.is_due(sh(2026, 2, 1, 2, 0), lag)
    assert due_periods(DAILY, sh(2026, 1, 30), sh(2026, 2, 1, 1), lag=lag).periods == [
        period_from_key(DAILY, "2026-01-30")]


def test_cross_month_cross_year_and_leap_february():
    assert period_from_key(HOURLY, "2025-12-31T23").next().key == "2026-01-01T00"
    assert period_from_key(DAILY, "2025-12-31").next().key == "2026-01-01"
    assert period_from_key(MONTHLY, "2025-12").next().key == "2026-01"
    assert period_from_key(MONTHLY, "2026-01").previous().key == "2025-12"
    assert period_from_key(DAILY, "2028-03-01").previous().key == "2028-02-29"
    feb_2028 = period_from_key(MONTHLY, "2028-02")
    assert feb_2028.end - feb_2028.start == timedelta(days=29)
    assert period_from_key(MONTHLY, "2026-02").end - period_from_key(MONTHLY, "2026-02").start \
        == timedelta(days=28)
    # Hours of the year 2025 -> 2026 turn, listed across the boundary, in order and gap-free.
    listed = due_periods(HOURLY, sh(2025, 12, 31, 22), sh(2026, 1, 1, 2)).periods
    assert [p.key for p in listed] == ["2025-12-31T22", "2025-12-31T23", "2026-01-01T00",
                                       "2026-01-01T01"]
    assert all(a.end == b.start for a, b in zip(listed, listed[1:]))
    # A whole year of days and months, gap-free.
    days = periods_between(DAILY, sh(2025, 1, 1), sh(2026, 1, 1)).periods
    assert len(days) == 365 and days[0].key == "2025-01-01" and days[-1].key == "2025-12-31"
    months = periods_between(MONTHLY, sh(2025, 1, 1), sh(2026, 1, 1)).periods
    assert [p.key for p in months] == [f"2025-{m:02d}" for m in range(1, 13)]
    assert sum((p.end - p.start for p in months), timedelta()) == timedelta(days=365)


@pytest.mark.parametrize("cadence,key", [
    (HOURLY, "2026-01-31T24"), (HOURLY, "2026-01-31 23"), (DAILY, "2026-02-30"),
    (DAILY, "2026-1-01"), (MONTHLY, "2026-13"), (MONTHLY, "2026-01-01"), (DAILY, ""),
])
def test_malformed_period_keys_are_refused(cadence, key):
    with pytest.raises(ValueError):
        period_from_key(cadence, key)


def test_listing_is_bounded_and_says_so():
    capped = due_periods(HOURLY, sh(2026, 1, 1), sh(2026, 1, 2), limit=5)
    assert len(capped.periods) == 5 and capped.capped
    rest = due_periods(HOURLY, capped.periods[-1].end, sh(2026, 1, 2))
    assert len(rest.periods) == 19 and not rest.capped
    with pytest.raises(ValueError):
        due_periods(HOURLY, sh(2020, 1, 1), sh(2026, 1, 1), limit=MAX_PERIODS_PER_CALL + 1)
    with pytest.raises(ValueError):
        hour_boundaries(sh(2026, 1, 1), sh(2026, 1, 3), limit=24)
    assert len(hour_boundaries(sh(2026, 1, 1, 0, 30), sh(2026, 1, 1, 3), limit=24)) == 3
    with pytest.raises(ValueError):
        period_containing("weekly", sh(2026, 1, 1))
    with pytest.raises(ValueError):
        period_containing(HOURLY, datetime(2026, 1, 1))  # naive: which zone?


# ---------------------------------------------------------------- registry

def test_registration_is_a_plain_call_or_decorator_and_refuses_conflicts():
    reg = Registry()

    @reg.job("demo.tick", HOURLY, description="tick")
    def tick(engine, clock, period):
        return {}

    assert tick.__name__ == "tick" and reg.get("demo.tick").func is tick
    reg.register("demo.tick", HOURLY, tick, description="tick")  # same again: fine
    with pytest.raises(ValueError):
        reg.register("demo.tick", DAILY, tick)  # same name, different job
    for bad in ("tick", "Demo.Tick", "demo..tick", "demo.tick-1", "a." + "b" * 80):
        with pytest.raises(ValueError):
            reg.register(bad, HOURLY, tick)
    with pytest.raises(ValueError):
        reg.register("demo.other", "weekly", tick)
    with pytest.raises(ValueError):
        reg.register("demo.other", HOURLY, tick, lag=timedelta(hours=-1))


def test_load_all_registers_the_orders_job():
    registry = load_all()
    assert registry is REGISTRY
    spec = registry.get("orders.expire_unpaid")
    assert spec.cadence == HOURLY and spec.lag == timedelta(0)


# ---------------------------------------------------------------- runner on both databases

class Recorder:
    """A job whose effect is a row per period in a table of the test's own,
    written idempotently (insert-if-absent), as the job contract asks."""

    def __init__(self, engine, fail_first: int = 0, fail_always: bool = False):
        self.calls: Counter[str] = Counter()
        self.completions: Counter[str] = Counter()
        self.fail_first = fail_first
        self.fail_always = fail_always
        self.lock = threading.Lock()
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS test_effects ("
                              "period_key VARCHAR(20) PRIMARY KEY, job VARCHAR(80) NOT NULL)"))

    def __call__(self, engine, clock, period: Period) -> dict:
        with self.lock:
            self.calls[period.key] += 1
            attempt = self.calls[period.key]
        with engine.begin() as conn:
            inserted = conn.execute(text(
                "INSERT INTO test_effects (period_key, job) VALUES (:k, 'x') "
                "ON CONFLICT (period_key) DO NOTHING"), {"k": period.key}).rowcount
        if self.fail_always or attempt <= self.fail_first:  # after the effect is committed
            raise RuntimeError(f"boom in {period.key} (attempt {attempt})")
        with self.lock:
            self.completions[period.key] += 1
        return {"key": period.key, "inserted": inserted}


def effects(engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT period_key, COUNT(*) FROM test_effects "
                                 "GROUP BY period_key")).all()
    return {k: n for k, n in rows}


def runs(engine, job: str | None = None) -> list[dict]:
    query = select(job_runs).order_by(job_runs.c.period_end, job_runs.c.id)
    if job:
        query = query.where(job_runs.c.job == job)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def registry_with(name: str, cadence: str, func, **options) -> Registry:
    reg = Registry()
    reg.register(name, cadence, func, **options)
    return reg


def test_enqueue_is_insert_if_absent_and_never_skips_a_period(engine):
    clock = FixedClock(sh(2026, 3, 2, 10, 20))
    recorder = Recorder(engine)
    reg = registry_with("test.hourly", HOURLY, recorder)  # no start: first seen "now"
    first = runner.enqueue_due(engine, clock, registry=reg)
    assert first.inserted == {"test.hourly": 0}  # 10:00-11:00 is not over yet
    with engine.connect() as conn:
        cursor = conn.execute(select(job_cursors)).mappings().one()
    assert cursor["first_period_start"] == db_time(sh(2026, 3, 2, 10))
    clock.set(sh(2026, 3, 2, 13, 5))  # three hours later, nothing ran in between
    assert runner.enqueue_due(engine, clock, registry=reg).inserted == {"test.hourly": 3}
    assert runner.enqueue_due(engine, clock, registry=reg).inserted == {"test.hourly": 0}
    assert [r["period_key"] for r in runs(engine)] == ["2026-03-02T10", "2026-03-02T11",
                                                       "2026-03-02T12"]
    assert {r["state"] for r in runs(engine)} == {"pending"}
    # A cadence change under the same name is refused loudly, not guessed at.
    other = registry_with("test.hourly", DAILY, recorder)
    with pytest.raises(RuntimeError, match="new name"):
        runner.enqueue_due(engine, clock, registry=other)


@pytest.mark.spec("SET-8")
def test_enqueuing_again_never_resets_or_duplicates_a_run(engine):
    """Two enqueuers racing (or a cursor behind its rows) insert nothing twice and
    leave finished runs finished."""
    clock = FixedClock(sh(2026, 3, 2, 10, 0))
    recorder = Recorder(engine)
    reg = registry_with("test.hourly", HOURLY, recorder, start=sh(2026, 3, 2, 7, 0))
    runner.run_pass(engine, clock, registry=reg)
    before = runs(engine)
    assert [r["state"] for r in before] == ["done"] * 3
    with engine.begin() as conn:  # as if another enqueuer had not seen our cursor move
        conn.execute(update(job_cursors).values(next_period_start=db_time(sh(2026, 3, 2, 7, 0))))
    assert runner.enqueue_due(engine, clock, registry=reg).inserted == {"test.hourly": 0}
    assert runs(engine) == before
    assert runner.run_due(engine, clock, registry=reg).outcomes == []
    assert set(recorder.calls.values()) == {1}


def test_a_large_backlog_is_enqueued_in_bounded_steps(engine):
    clock = FixedClock(sh(2026, 3, 2, 0, 0))
    reg = registry_with("test.hourly", HOURLY, lambda e, c, p: {}, start=sh(2026, 2, 28, 0, 0))
    first = runner.enqueue_due(engine, clock, registry=reg, max_periods=20)
    assert first.inserted == {"test.hourly": 20} and first.capped == ["test.hourly"]
    second = runner.enqueue_due(engine, clock, registry=reg, max_periods=20)
    assert second.inserted == {"test.hourly": 20} and second.capped == ["test.hourly"]
    third = runner.enqueue_due(engine, clock, registry=reg, max_periods=20)
    assert third.inserted == {"test.hourly": 8} and third.capped == []  # 48 hours in all
    keys = [r["period_key"] for r in runs(engine)]
    assert len(keys) == len(set(keys)) == 48


@pytest.mark.spec("SET-8")
def test_running_a_period_twice_changes_nothing(engine):
    clock = FixedClock(sh(2026, 3, 2, 10, 0))
    recorder = Recorder(engine)
    reg = registry_with("test.hourly", HOURLY, recorder, start=sh(2026, 3, 2, 7, 0))
    first = runner.run_pass(engine, clock, registry=reg, worker_id="w1")
    assert [o.outcome for o in first.runs.outcomes] == ["done"] * 3
    assert [o.period_key for o in first.runs.outcomes] == ["2026-03-02T07", "2026-03-02T08",
                                                           "2026-03-02T09"]
    before = runs(engine)
    again = runner.run_pass(engine, clock, registry=reg, worker_id="w2")
    assert again.runs.outcomes == [] and again.enqueued == {"test.hourly": 0}
    assert runs(engine) == before  # not a column changed
    assert set(recorder.calls.values()) == {1} and effects(engine) == {k: 1 for k in recorder.calls}
    row = before[0]
    assert row["state"] == "done" and row["attempts"] == 1 and row["claimed_by"] == "w1"
    assert json.loads(row["result"]) == {"key": "2026-03-02T07", "inserted": 1}
    assert row["finished_at"] == db_time(clock.now())


@pytest.mark.spec("SET-8")
def test_a_run_that_raises_is_retried_later_and_completes_exactly_once(engine):
    clock = FixedClock(sh(2026, 3, 2, 10, 0))
    recorder = Recorder(engine, fail_first=1)
    reg = registry_with("test.daily", DAILY, recorder, start=sh(2026, 3, 1),
                        retry_delay=timedelta(minutes=2))
    assert runner.enqueue_due(engine, clock, registry=reg).inserted == {"test.daily": 1}
    report = runner.run_due(engine, clock, registry=reg, worker_id="w1")
    assert [o.outcome for o in report.outcomes] == ["retry"]
    (row,) = runs(engine)
    assert (row["state"], row["attempts"]) == ("pending", 1)
    assert "boom in 2026-03-01 (attempt 1)" in row["last_error"]
    assert row["retry_at"] == db_time(clock.now() + timedelta(minutes=2))
    assert runner.run_due(engine, clock, registry=reg).outcomes == []  # backing off
    clock.advance(minutes=2)
    report = runner.run_due(engine, clock, registry=reg, worker_id="w2")
    assert [(o.outcome, o.attempts) for o in report.outcomes] == [("done", 2)]
    (row,) = runs(engine)
    assert (row["state"], row["attempts"], row["claimed_by"]) == ("done", 2, "w2")
    assert recorder.completions == {"2026-03-01": 1}
    assert effects(engine) == {"2026-03-01": 1}  # the crashed attempt's effect, not doubled
    assert json.loads(row["result"])["inserted"] == 0  # the rerun found it already there


def test_after_max_attempts_a_run_fails_until_an_operator_retries_it(engine):
    clock = FixedClock(sh(2026, 3, 2, 10, 0))
    recorder = Recorder(engine, fail_always=True)
    reg = registry_with("test.daily", DAILY, recorder, start=sh(2026, 3, 1), max_attempts=3,
                        retry_delay=timedelta(minutes=1))
    outcomes = []
    for _ in range(5):
        outcomes += [o.outcome for o in runner.run_pass(engine, clock, registry=reg).runs.outcomes]
        clock.advance(hours=1)
    assert outcomes == ["retry", "retry", "failed"]
    (row,) = runs(engine)
    assert (row["state"], row["attempts"]) == ("failed", 3) and row["finished_at"] is not None
    assert runner.list_runs(engine, state="failed")["total"] == 1
    recorder.fail_always = False
    assert runner.retry_failed(engine, clock, job="test.daily") == 1
    report = runner.run_due(engine, clock, registry=reg)
    assert [o.outcome for o in report.outcomes] == ["done"]
    assert effects(engine) == {"2026-03-01": 1}


def _leave_as_a_dead_worker_would(engine, clock, key: str, attempts: int = 1) -> None:
    """The row state a worker killed mid-run leaves: running, claimed, leased."""
    now = db_time(clock.now())
    with engine.begin() as conn:
        assert conn.execute(update(job_runs).where(job_runs.c.period_key == key).values(
            state="running", attempts=attempts, claimed_by="dead-worker", claimed_at=now,
            started_at=now, lease_until=now + timedelta(minutes=15))).rowcount == 1


@pytest.mark.spec("SET-8")
def test_a_lost_worker_is_resumed_after_its_lease_and_completes_once(engine):
    clock = FixedClock(sh(2026, 3, 2, 10, 0))
    recorder = Recorder(engine)
    reg = registry_with("test.hourly", HOURLY, recorder, start=sh(2026, 3, 2, 9, 0))
    runner.enqueue_due(engine, clock, registry=reg)
    recorder(engine, clock, period_from_key(HOURLY, "2026-03-02T09"))  # half-done work
    _leave_as_a_dead_worker_would(engine, clock, "2026-03-02T09")
    assert runner.run_due(engine, clock, registry=reg).outcomes == []  # lease still held
    clock.advance(minutes=15)
    report = runner.run_due(engine, clock, registry=reg, worker_id="rescuer")
    assert [(o.outcome, o.attempts) for o in report.outcomes] == [("done", 2)]
    (row,) = runs(engine)
    assert (row["state"], row["claimed_by"], row["lease_until"]) == ("done", "rescuer", None)
    assert effects(engine) == {"2026-03-02T09": 1}


def test_a_run_whose_worker_is_lost_too_often_is_failed_not_rerun(engine):
    clock = FixedClock(sh(2026, 3, 2, 10, 0))
    recorder = Recorder(engine)
    reg = registry_with("test.hourly", HOURLY, recorder, start=sh(2026, 3, 2, 9, 0),
                        max_attempts=2)
    runner.enqueue_due(engine, clock, registry=reg)
    _leave_as_a_dead_worker_would(engine, clock, "2026-03-02T09", attempts=2)
    clock.advance(minutes=16)
    report = runner.run_due(engine, clock, registry=reg)
    assert report.outcomes == [] and report.expired_leases == 1
    (row,) = runs(engine)
    assert row["state"] == "failed" and "dead-worker lost" in row["last_error"]
    assert recorder.calls == {}


def test_a_job_returning_a_non_dict_is_a_failure(engine):
    clock = FixedClock(sh(2026, 3, 2, 10, 0))
    reg = registry_with("test.hourly", HOURLY, lambda e, c, p: [1, 2],
                        start=sh(2026, 3, 2, 9, 0))
    report = runner.run_pass(engine, clock, registry=reg)
    assert [o.outcome for o in report.runs.outcomes] == ["retry"]
    assert "expected a dict" in runs(engine)[0]["last_error"]


def test_an_interrupted_run_is_handed_back_uncounted(engine):
    clock = FixedClock(sh(2026, 3, 2, 10, 0))

    def interrupted(engine, clock, period):
        raise KeyboardInterrupt

    reg = registry_with("test.hourly", HOURLY, interrupted, start=sh(2026, 3, 2, 9, 0))
    runner.enqueue_due(engine, clock, registry=reg)
    with pytest.raises(KeyboardInterrupt):
        runner.run_due(engine, clock, registry=reg)
    (row,) = runs(engine)
    assert (row["state"], row["attempts"], row["lease_until"]) == ("pending", 0, None)


KILLED_WORKER = textwrap.dedent("""
    import sys, time
    from datetime import datetime
    from sqlalchemy import text
    from feecenter.clock import FixedClock
    from feecenter.db.engine import make_engine
    from feecenter.jobs import HOURLY, Registry, runner

    url, now, marker = sys.argv[1], datetime.fromisoformat(sys.argv[2]), sys.argv[3]
    engine = make_engine(url)

    def slow(engine, clock, period):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO test_effects (period_key, job) VALUES (:k, 'x') "
                              "ON CONFLICT (period_key) DO NOTHING"), {"k": period.key})
        open(marker, "w").write(period.key)
        time.sleep(120)  # killed here, half-way

    reg = Registry()
    reg.register("test.hourly", HOURLY, slow, start=datetime.fromisoformat(sys.argv[4]))
    runner.run_pass(engine, FixedClock(now), registry=reg, worker_id="doomed")
""")


@pytest.mark.spec("SET-8")
def test_a_killed_worker_process_is_resumed_and_completes_once(engine, database_url, tmp_path):
    clock = FixedClock(sh(2026, 3, 2, 10, 0))
    recorder = Recorder(engine)
    start = sh(2026, 3, 2, 9, 0)
    marker = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WORKER, database_url,
                             clock.now().isoformat(), str(marker), start.isoformat()],
                            cwd=Path(__file__).parent.parent)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the worker process died early"
            assert time.monotonic() < deadline, "the worker never started its job"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    (row,) = runs(engine)
    assert (row["state"], row["claimed_by"], row["attempts"]) == ("running", "doomed", 1)
    reg = registry_with("test.hourly", HOURLY, recorder, start=start)
    assert runner.run_due(engine, clock, registry=reg).outcomes == []  # its lease still holds
    clock.advance(minutes=15)
    report = runner.run_due(engine, clock, registry=reg, worker_id="rescuer")
    assert [(o.outcome, o.attempts) for o in report.outcomes] == [("done", 2)]
    assert effects(engine) == {"2026-03-02T09": 1}
    assert recorder.completions == {"2026-03-02T09": 1}


# ---------------------------------------------------------------- several workers (PostgreSQL)

@pytest.mark.postgres_only
@pytest.mark.spec("SET-8")
def test_several_workers_run_each_key_exactly_once_never_at_the_same_time(engine):
    clock = FixedClock(sh(2026, 3, 5, 0, 0))
    in_flight: set[str] = set()
    overlaps: list[str] = []
    done: Counter[str] = Counter()
    by_worker: Counter[str] = Counter()
    lock = threading.Lock()

    def job(engine, clock, period):
        with lock:
            if period.key in in_flight:
                overlaps.append(period.key)
            in_flight.add(period.key)
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_sleep(0.002)"))
        with lock:
            in_flight.discard(period.key)
            done[period.key] += 1
        return {}

    reg = registry_with("test.hourly", HOURLY, job, start=sh(2026, 3, 2, 0, 0))
    reg.register("test.daily", DAILY, job, start=sh(2026, 3, 2))
    assert runner.enqueue_due(engine, clock, registry=reg).total == 72 + 3
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            report = runner.run_pass(engine, clock, registry=reg, worker_id=f"w{i}", batch=7)
            with lock:
                by_worker[f"w{i}"] += len(report.runs.outcomes)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    assert overlaps == []
    assert len(done) == 75 and set(done.values()) == {1}
    assert sum(by_worker.values()) == 75 and len(by_worker) > 1  # the work was shared
    assert {r["state"] for r in runs(engine)} == {"done"}
    assert {r["attempts"] for r in runs(engine)} == {1}


@pytest.mark.postgres_only
def test_a_live_worker_past_its_lease_keeps_its_key(engine):
    clock = FixedClock(sh(2026, 3, 2, 10, 0))
    started, release = threading.Event(), threading.Event()
    calls: Counter[str] = Counter()

    def slow(engine, clock, period):
        calls[period.key] += 1
        started.set()
        assert release.wait(timeout=60)
        return {"slow": True}

    reg = registry_with("test.hourly", HOURLY, slow, start=sh(2026, 3, 2, 9, 0),
                        lease=timedelta(minutes=1))
    runner.enqueue_due(engine, clock, registry=reg)
    result: dict = {}
    first = threading.Thread(target=lambda: result.update(
        report=runner.run_due(engine, clock, registry=reg, worker_id="slowpoke")))
    first.start()
    assert started.wait(timeout=30)
    clock.advance(minutes=30)  # the lease has long expired, but the worker is alive
    other = runner.run_due(engine, clock, registry=reg, worker_id="eager")
    assert other.outcomes == [] and other.expired_leases == 0
    (row,) = runs(engine)
    assert (row["state"], row["claimed_by"]) == ("running", "slowpoke")
    release.set()
    first.join(timeout=60)
    assert [o.outcome for o in result["report"].outcomes] == ["done"]
    assert calls == {"2026-03-02T09": 1}
    (row,) = runs(engine)
    assert (row["state"], row["attempts"]) == ("done", 1)


# ---------------------------------------------------------------- the simulator

@pytest.mark.slow
@pytest.mark.spec("SET-4")
def test_run_until_a_simulated_week_runs_every_hour_and_day_once(engine):
    clock = FixedClock(sh(2026, 3, 2, 0, 0))
    hourly, daily, monthly = Recorder(engine), Counter(), Counter()
    reg = registry_with("test.hourly", HOURLY, hourly)
    reg.register("test.daily", DAILY, lambda e, c, p: daily.update([p.key]) or {})
    reg.register("test.monthly", MONTHLY, lambda e, c, p: monthly.update([p.key]) or {})
    report = runner.run_until(engine, clock, sh(2026, 3, 9, 0, 0), registry=reg)
    assert report.steps == 7 * 24 + 1 and clock.now() == sh(2026, 3, 9, 0, 0)
    counts = report.to_dict()["jobs"]
    assert counts["test.hourly"]["done"] == 168 and counts["test.daily"]["done"] == 7
    assert counts["test.monthly"]["done"] == 0
    assert len(hourly.completions) == 168 and set(hourly.completions.values()) == {1}
    assert sorted(daily) == [f"2026-03-0{d}" for d in range(2, 9)]
    assert set(daily.values()) == {1} and not monthly
    again = runner.run_until(engine, clock, sh(2026, 3, 9, 0, 0), registry=reg)
    assert again.work.runs.outcomes == [] and again.steps == 1


@pytest.mark.spec("SET-4")
def test_run_until_over_the_month_end_runs_hour_then_day_then_month(engine):
    clock = FixedClock(sh(2026, 1, 31, 22, 30))
    order: list[str] = []
    reg = Registry()
    for name, cadence in (("test.hourly", HOURLY), ("test.daily", DAILY),
                          ("test.monthly", MONTHLY)):
        reg.register(name, cadence, lambda e, c, p, n=name: order.append(
            f"{n}:{p.key}@{c.now().astimezone(SH):%d %H:%M}") or {})
    runner.run_until(engine, clock, sh(2026, 2, 1, 0, 30), registry=reg)
    assert order == ["test.hourly:2026-01-31T22@31 23:00",
                     "test.hourly:2026-01-31T23@01 00:00",
                     "test.daily:2026-01-31@01 00:00",
                     "test.monthly:2026-01@01 00:00"]


def test_run_until_refuses_to_go_back_or_too_far(engine):
    clock = FixedClock(sh(2026, 3, 2, 10, 0))
    reg = registry_with("test.hourly", HOURLY, lambda e, c, p: {})
    with pytest.raises(InvalidInput) as back:
        runner.run_until(engine, clock, sh(2026, 3, 2, 9, 0), registry=reg)
    assert back.value.field == "until"
    with pytest.raises(InvalidInput):
        runner.run_until(engine, clock, sh(2026, 3, 5, 10, 0), registry=reg, max_hours=24)
    assert runs(engine) == [] and clock.now() == sh(2026, 3, 2, 10, 0)


@pytest.mark.spec("ORD-2")
def test_the_registered_orders_job_expires_unpaid_orders_in_the_simulator(rt):
    with rt.engine.begin() as conn:
        catalog.load_catalog(conn, rt.clock, OPS, catalog.sample_catalog_text(), "sample.yaml")
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    with rt.engine.begin() as conn:
        (order_id,) = orders.create_purchase(conn, rt.clock, SYSTEM, uin, [orders.NewPurchase(
            product="cvm", region="ap-guangzhou", spec_item="S5.MEDIUM4", months=1, count=1,
            promo_term_days=1)])
    reg = Registry()
    reg.add(load_all().get("orders.expire_unpaid"))
    report = runner.run_until(rt.engine, rt.clock, rt.clock.now() + timedelta(days=2),
                              registry=reg)
    outcomes = report.work.runs.outcomes
    assert len(outcomes) == 48 and {o.outcome for o in outcomes} == {"done"}
    assert sum(o.result["expired"] for o in outcomes) == 1
    with rt.engine.connect() as conn:
        assert orders.get_order(conn, SYSTEM, uin, order_id)["state"] == "expired"


# ---------------------------------------------------------------- CLI

@pytest.mark.spec("SET-8")
def test_cli_jobs_run_until_list_and_worker(cli):
    until = (datetime.now(SH) + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S")
    _, first = cli.json("jobs", "run", "--until", until)
    start = parse_business_time(first["start"], "start")
    expected = len(hour_boundaries(start, parse_business_time(until, "until"), limit=10))
    assert expected in (2, 3)
    assert first["until"] == until and first["capped"] is False
    per = first["jobs"]["orders.expire_unpaid"]
    assert per == {"enqueued": expected, "done": expected, "retry": 0, "failed": 0, "lost": 0}
    # Again to the same instant: time does not run backwards and nothing runs twice.
    _, again = cli.json("jobs", "run", "--until", until)
    assert again["runs"] == 0 and again["start"] <= until
    _, listed = cli.json("jobs", "list", "--state", "done", "--job", "orders.expire_unpaid")
    assert listed["total"] == expected
    assert {i["job"] for i in listed["items"]} == {"orders.expire_unpaid"}
    assert all(i["result"] == {"expired": 0} and i["attempts"] == 1 for i in listed["items"])
    # The wall-clock worker finds nothing due (the simulation ran ahead of it).
    _, worker = cli.json("worker", "--once")
    assert worker["runs"] == 0 and worker["worker_id"]
    text_run = cli("jobs", "run", "--until", until)
    assert "orders.expire_unpaid" in text_run.stdout
    text_list = cli("jobs", "list")
    assert "orders.expire_unpaid" in text_list.stdout


def test_cli_refusals_name_the_field(cli):
    code, body = cli.json("jobs", "run", "--until", "2001-01-01 00:00:00", ok=False)
    assert code == 1 and body["error"]["field"] == "until"
    code, body = cli.json("jobs", "run", "--until", "tomorrow", ok=False)
    assert code == 1 and body["error"]["field"] == "until"
    code, body = cli.json("jobs", "list", "--state", "sleeping", ok=False)
    assert code == 1 and body["error"]["field"] == "state"
    code, body = cli.json("worker", "--once", "--poll-seconds", "0", ok=False)
    assert code == 1 and body["error"]["field"] == "poll_seconds"
    _, retried = cli.json("jobs", "retry")
    assert retried == {"retried": 0}
