"""Runs scheduled jobs: enqueue due (job, period) rows, claim them, run, record.

The model (docs/jobs.md):

- ``enqueue_due`` inserts one ``job_runs`` row per registered job and due
  period, insert-if-absent on the unique (job, period_key), in one batched
  statement per job. A per-job cursor (``job_cursors``) remembers where it got
  to, so a call looks only at periods that became due since the last one.
- ``run_due`` claims due rows one at a time, oldest period first (at one
  instant: the hour before the day before the month, then by job name), in a
  short claim transaction: ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL,
  one ``BEGIN IMMEDIATE`` writer on SQLite. A claim sets state ``running``,
  counts the attempt and takes a lease. Rows still ``running`` after their
  lease are runs whose worker was lost (killed, crashed): they are claimed
  again and rerun, which the job contract makes safe.
- On PostgreSQL the claimer also takes a session advisory lock on the row for
  as long as the job runs. PostgreSQL drops it when the process dies, so a lost
  worker's row becomes claimable, but a live worker whose job overruns its
  lease keeps the row: no key ever runs twice at once. On SQLite run one
  worker (docs/jobs.md), or give jobs leases longer than their longest run.
- The run's end is written only if the row is still ours (same worker, same
  attempt number): a fencing token against a stale worker.
- An exception in a job is recorded (``last_error``); the row goes back to
  ``pending`` with a back-off, and after ``max_attempts`` to ``failed``.
- ``run_until`` is the simulator: it moves a FixedClock hour by hour and runs
  what is due at each step.

Every loop is bounded; a bound that is reached is reported, never silently
exceeded.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError

from feecenter.accounts.permissions import SYSTEM, Actor, require_operator
from feecenter.audit.service import record_audit
from feecenter.clock import Clock, FixedClock, db_time, from_db_time, to_utc
from feecenter.db.engine import transaction
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import invalid
from feecenter.jobs.registry import Job, Registry
from feecenter.jobs.tables import job_cursors, job_runs
from feecenter.periods import (MAX_PERIODS_PER_CALL, Period, due_periods, hour_boundaries,
                               period_containing, period_from_key)

log = logging.getLogger("feecenter.jobs")

STATES = ("pending", "running", "done", "failed")
OUTCOMES = ("done", "retry", "failed", "lost")
MAX_RUNS_PER_CALL = 10_000  # run_due's limit is 1..this
MAX_CLAIM_SKIPS = 100  # rows a claim may pass over (locked by a live worker) before it gives up
MAX_DRAIN_ROUNDS = 1_000  # enqueue+run rounds at one instant (simulator step, worker pass)
MAX_SIMULATED_HOURS = 24 * 366 * 5  # run_until walks at most five years
ERROR_TEXT_CHARS = 8_000
_ADVISORY_CLASS = 0x4A0B5  # pg_try_advisory_lock(class, run id): the jobs' lock space


def default_worker_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _registry(registry: Registry | None) -> Registry:
    if registry is not None:
        return registry
    from feecenter.jobs.loader import load_all

    return load_all()


def _is_pg(bind) -> bool:
    return bind.dialect.name == "postgresql"



# ---------------------------------------------------------------- enqueue

@dataclass
class EnqueueReport:
    inserted: dict[str, int] = field(default_factory=dict)  # job -> new rows
    capped: list[str] = field(default_factory=list)  # jobs with more due than one call takes

    @property
    def total(self) -> int:
        return sum(self.inserted.values())


def _start_of(spec: Job, conn: Connection, clock: Clock) -> datetime:
    start = spec.start
    if callable(start):
        start = start(conn, clock)
    if start is None:
        start = clock.now()
    return period_containing(spec.cadence, to_utc(start)).start


def _cursor(conn: Connection, clock: Clock, spec: Job) -> datetime:
    """Start of the job's first period not enqueued yet (creates the cursor on first sight)."""
    c = job_cursors.c
    row = conn.execute(select(c.cadence, c.next_period_start).where(c.job == spec.name)).first()
    if row is None:
        first = db_time(_start_of(spec, conn, clock))
        now = db_time(clock.now())
        conn.execute(insert_if_absent(conn, job_cursors, ["job"]).values(
            job=spec.name, cadence=spec.cadence, first_period_start=first,
            next_period_start=first, created_at=now, updated_at=now))
        row = conn.execute(select(c.cadence, c.next_period_start).where(c.job == spec.name)).one()
    if row.cadence != spec.cadence:
        raise RuntimeError(f"job {spec.name!r} was {row.cadence} in this database and is now "
                           f"registered {spec.cadence}: register it under a new name")
    return from_db_time(row.next_period_start)


def enqueue_due(engine: Engine, clock: Clock, *, registry: Registry | None = None,
                max_periods: int = MAX_PERIODS_PER_CALL) -> EnqueueReport:
    """Insert the missing (job, period) rows of every period due now; set-based and
    idempotent (a row that exists, in any state, is left alone). A job whose next
    period is not due yet costs no write transaction."""
    registry = _registry(registry)
    report = EnqueueReport()
    now = clock.now()
    with engine.connect() as conn:
        cursors = {row.job: row for row in conn.execute(
            select(job_cursors.c.job, job_cursors.c.cadence, job_cursors.c.next_period_start))}
    for spec in registry.jobs():
        report.inserted[spec.name] = 0
        known = cursors.get(spec.name)
        if known is not None and known.cadence == spec.cadence and not period_containing(
                spec.cadence, from_db_time(known.next_period_start)).is_due(now, spec.lag):
            continue
        with transaction(engine) as conn:
            nxt = _cursor(conn, clock, spec)
            due = due_periods(spec.cadence, nxt, now, lag=spec.lag, limit=max_periods)
            if due.capped:
                report.capped.append(spec.name)
            if not due.periods:
                continue
            created = db_time(now)
            rows = [{"job": spec.name, "period_key": p.key, "cadence": p.cadence,
                     "period_start": db_time(p.start), "period_end": db_time(p.end),
                     "due_at": db_time(p.due_at(spec.lag)), "state": "pending", "attempts": 0,
                     "created_at": created} for p in due.periods]
            stmt = insert_if_absent(conn, job_runs, ["job", "period_key"])
            inserted = conn.execute(stmt.returning(job_runs.c.id), rows).all()
            report.inserted[spec.name] = len(inserted)
            new_next = db_time(due.periods[-1].end)
            c = job_cursors.c
            conn.execute(update(job_cursors)
                         .where(c.job == spec.name, c.next_period_start < new_next)
                         .values(next_period_start=new_next, updated_at=created))
    if report.total:
        log.info("enqueued job runs", extra={"inserted": report.inserted})
    return report


# ---------------------------------------------------------------- claim and run

@dataclass(frozen=True)
class RunOutcome:
    run_id: int
    job: str
    period_key: str
    outcome: str  # done | retry (failed, retried later) | failed (gave up) | lost (not ours now)
    attempts: int
    result: dict | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "job": self.job, "period": self.period_key,
                "outcome": self.outcome, "attempts": self.attempts, "result": self.result,
                "error": self.error}


@dataclass
class RunReport:
    outcomes: list[RunOutcome] = field(default_factory=list)
    expired_leases: int = 0  # lost workers' rows given up (failed) without a new run

    def counts(self) -> dict[str, dict[str, int]]:
        """Per job: how many runs ended done / retry / failed / lost."""
        counts: dict[str, dict[str, int]] = {}
        for o in self.outcomes:
            per = counts.setdefault(o.job, {k: 0 for k in OUTCOMES})
            per[o.outcome] += 1
        return counts

    def extend(self, other: RunReport) -> None:
        self.outcomes.extend(other.outcomes)
        self.expired_leases += other.expired_leases


@dataclass(frozen=True)
class _Claim:
    run_id: int
    spec: Job
    period: Period
    attempts: int  # after this claim: the fencing token


def _advisory(conn: Connection, fn: str, run_id: int) -> bool:
    return bool(conn.execute(text(f"SELECT {fn}(CAST(:c AS integer), CAST(:o AS integer))"),
                             {"c": _ADVISORY_CLASS, "o": run_id & 0x7FFFFFFF}).scalar_one())


def _claim(guard: Connection, clock: Clock, registry: Registry, worker_id: str,
           skip: set[int], report: RunReport) -> _Claim | None:
    """In one short transaction: pick the oldest due row and make it ours."""
    pg = _is_pg(guard)
    r = job_runs.c
    with guard.begin():
        now = db_time(clock.now())
        eligible = or_(
            and_(r.state == "pending", r.due_at <= now,
                 or_(r.retry_at.is_(None), r.retry_at <= now)),
            and_(r.state == "running", r.lease_until <= now))
        for _ in range(MAX_CLAIM_SKIPS):
            query = (select(r.id, r.job, r.period_key, r.state, r.attempts, r.claimed_by)
                     .where(r.job.in_(registry.names()), eligible)
                     .order_by(r.period_end, r.period_start.desc(), r.job, r.id).limit(1))
            if skip:
                query = query.where(r.id.not_in(skip))
            if pg:
                query = query.with_for_update(skip_locked=True)
            row = guard.execute(query).first()
            if row is None:
                return None
            skip.add(row.id)
            if pg and not _advisory(guard, "pg_try_advisory_lock", row.id):
                continue  # its worker is alive and still running it (lease overrun)
            spec = registry.get(row.job)
            if row.state == "running" and row.attempts >= spec.max_attempts:
                guard.execute(update(job_runs).where(r.id == row.id, r.attempts == row.attempts)
                              .values(state="failed", finished_at=now, lease_until=None,
                                      last_error=f"worker {row.claimed_by} lost "
                                                 f"(lease expired) on attempt {row.attempts} "
                                                 f"of {spec.max_attempts}"))
                report.expired_leases += 1
                if pg:
                    _advisory(guard, "pg_advisory_unlock", row.id)
                continue
            attempts = row.attempts + 1
            done = guard.execute(
                update(job_runs).where(r.id == row.id, r.attempts == row.attempts)
                .values(state="running", attempts=attempts, claimed_by=worker_id,
                        claimed_at=now, lease_until=now + spec.lease, retry_at=None,
                        started_at=func.coalesce(r.started_at, now))).rowcount
            assert done == 1, f"claim of run {row.id} raced (row lock or single writer broken)"
            if row.state == "running":
                log.warning("reclaiming a lost run", extra={"job": row.job,
                                                            "period": row.period_key})
            return _Claim(row.id, spec, period_from_key(spec.cadence, row.period_key), attempts)
    return None


def _finish(guard: Connection, claim: _Claim, worker_id: str, **values) -> bool:
    r = job_runs.c
    with guard.begin():
        return guard.execute(update(job_runs).where(
            r.id == claim.run_id, r.state == "running", r.claimed_by == worker_id,
            r.attempts == claim.attempts).values(lease_until=None, **values)).rowcount == 1


def _error_text(exc: BaseException) -> str:
    head = f"{type(exc).__name__}: {exc}"
    tail = "".join(traceback.format_exception(exc))
    return (head + "\n" + tail[-(ERROR_TEXT_CHARS - len(head) - 1):])[:ERROR_TEXT_CHARS]


def _execute(engine: Engine, guard: Connection, clock: Clock, claim: _Claim,
             worker_id: str) -> RunOutcome:
    spec = claim.spec
    base = dict(run_id=claim.run_id, job=spec.name, period_key=claim.period.key,
                attempts=claim.attempts)
    try:
        result = spec.func(engine, clock, claim.period)
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise TypeError(f"job {spec.name} returned {type(result).__name__}, expected a dict")
        result_text = json.dumps(result, ensure_ascii=False, sort_keys=True, default=str)
    except Exception as exc:  # noqa: BLE001 - a job's failure is recorded, not raised
        error = _error_text(exc)
        now = db_time(clock.now())
        if claim.attempts >= spec.max_attempts:
            values = dict(state="failed", finished_at=now, last_error=error)
            outcome = "failed"
        else:
            values = dict(state="pending", retry_at=now + spec.backoff(claim.attempts),
                          last_error=error)
            outcome = "retry"
        if not _finish(guard, claim, worker_id, **values):
            outcome = "lost"
        log.warning("job run failed", extra={"job": spec.name, "period": claim.period.key,
                                             "attempts": claim.attempts, "outcome": outcome,
                                             "error": error.splitlines()[0]})
        return RunOutcome(outcome=outcome, error=error.splitlines()[0], **base)
    except BaseException:
        # Interrupted (Ctrl-C, SystemExit): hand the row back uncounted, then stop.
        try:
            r = job_runs.c
            _finish(guard, claim, worker_id, state="pending", attempts=r.attempts - 1)
        except Exception:  # noqa: BLE001 - the lease expiry covers it
            log.exception("could not release an interrupted run")
        raise
    ok = _finish(guard, claim, worker_id, state="done", finished_at=db_time(clock.now()),
                 result=result_text)
    outcome = "done" if ok else "lost"
    log.info("job run finished", extra={"job": spec.name, "period": claim.period.key,
                                        "attempts": claim.attempts, "outcome": outcome})
    return RunOutcome(outcome=outcome, result=result, **base)


def _claim_and_run_one(engine: Engine, clock: Clock, registry: Registry, worker_id: str,
                       skip: set[int], report: RunReport) -> RunOutcome | None:
    with engine.connect() as guard:
        try:
            claim = _claim(guard, clock, registry, worker_id, skip, report)
        except BaseException:
            if _is_pg(guard):
                guard.invalidate()  # it may hold an advisory lock: never pool that session
            raise
        if claim is None:
            return None
        try:
            return _execute(engine, guard, clock, claim, worker_id)
        finally:
            if _is_pg(guard):
                try:
                    with guard.begin():
                        _advisory(guard, "pg_advisory_unlock", claim.run_id)
                except Exception:  # noqa: BLE001 - never pool a session that may hold it
                    guard.invalidate()


def run_due(engine: Engine, clock: Clock, *, worker_id: str | None = None, limit: int = 100,
            registry: Registry | None = None) -> RunReport:
    """Claim and run up to ``limit`` due runs, one at a time, oldest period first.

    Each row is attempted at most once per call (a failed one waits for its
    back-off anyway). Returns what happened to each."""
    if not 1 <= limit <= MAX_RUNS_PER_CALL:
        raise ValueError(f"limit must be 1..{MAX_RUNS_PER_CALL}")
    registry = _registry(registry)
    worker_id = worker_id or default_worker_id()
    report = RunReport()
    if not len(registry):
        return report
    skip: set[int] = set()
    for _ in range(limit):
        outcome = _claim_and_run_one(engine, clock, registry, worker_id, skip, report)
        if outcome is None:
            break
        report.outcomes.append(outcome)
    return report


# ---------------------------------------------------------------- passes, simulator, worker

@dataclass
class PassReport:
    """What one or more enqueue+run rounds did."""

    enqueued: dict[str, int] = field(default_factory=dict)
    runs: RunReport = field(default_factory=RunReport)
    capped: bool = False  # a bound stopped the work; more is due

    def add_enqueued(self, inserted: dict[str, int]) -> None:
        for job, n in inserted.items():
            self.enqueued[job] = self.enqueued.get(job, 0) + n

    def extend(self, other: PassReport) -> None:
        self.add_enqueued(other.enqueued)
        self.runs.extend(other.runs)
        self.capped = self.capped or other.capped

    def to_dict(self) -> dict:
        jobs: dict[str, dict[str, int]] = {}
        for job, n in self.enqueued.items():
            jobs.setdefault(job, {"enqueued": 0, **{k: 0 for k in OUTCOMES}})["enqueued"] = n
        for job, per in self.runs.counts().items():
            jobs.setdefault(job, {"enqueued": 0, **{k: 0 for k in OUTCOMES}}).update(per)
        return {"jobs": dict(sorted(jobs.items())), "runs": len(self.runs.outcomes),
                "expired_leases": self.runs.expired_leases, "capped": self.capped}


def run_pass(engine: Engine, clock: Clock, *, worker_id: str | None = None,
             registry: Registry | None = None, batch: int = 500,
             max_rounds: int = MAX_DRAIN_ROUNDS) -> PassReport:
    """Enqueue and run until nothing is due at the clock's present instant
    (at most ``max_rounds`` rounds of ``batch`` runs; ``capped`` says if that stopped it)."""
    registry = _registry(registry)
    worker_id = worker_id or default_worker_id()
    report = PassReport()
    for _ in range(max_rounds):
        enq = enqueue_due(engine, clock, registry=registry)
        report.add_enqueued(enq.inserted)
        runs = run_due(engine, clock, worker_id=worker_id, limit=batch, registry=registry)
        report.runs.extend(runs)
        if not enq.capped and len(runs.outcomes) < batch:
            return report
    report.capped = True
    return report


@dataclass
class SimulationReport:
    start: datetime
    until: datetime
    steps: int
    work: PassReport

    def to_dict(self) -> dict:
        from feecenter.clock import business_time_text

        return {"start": business_time_text(self.start), "until": business_time_text(self.until),
                "steps": self.steps, **self.work.to_dict()}


def run_until(engine: Engine, clock: FixedClock, until: datetime, *,
              registry: Registry | None = None, worker_id: str = "simulator",
              max_hours: int = MAX_SIMULATED_HOURS,
              on_step: Callable[[datetime, PassReport], Any] | None = None) -> SimulationReport:
    """The simulator: run what is due now, then move ``clock`` to each following
    business-hour boundary up to ``until`` (and to ``until`` itself), running what
    is due at each step. At most ``max_hours`` steps; more is refused up front."""
    if not isinstance(clock, FixedClock):
        raise TypeError("run_until moves the clock: give it a FixedClock")
    registry = _registry(registry)
    start, until = clock.now(), to_utc(until)
    if until < start:
        raise invalid("until", "模拟结束时间早于当前模拟时钟",
                      f"until {until.isoformat()} is before the simulated clock "
                      f"({start.isoformat()})")
    try:
        steps = [start, *hour_boundaries(start, until, limit=max_hours)]
    except ValueError:
        raise invalid("until", f"一次最多模拟 {max_hours} 小时",
                      f"at most {max_hours} simulated hours in one run") from None
    if steps[-1] != until:
        steps.append(until)
    total = PassReport()
    for step in steps:
        clock.set(step)
        report = run_pass(engine, clock, worker_id=worker_id, registry=registry)
        total.extend(report)
        if on_step is not None:
            on_step(step, report)
    return SimulationReport(start=start, until=until, steps=len(steps), work=total)


def simulation_start(engine: Engine, now: datetime) -> datetime:
    """Where a simulated clock should begin: ``now``, or later if the database has
    already been simulated further (the latest due time of any enqueued run), so
    simulated time never runs backwards."""
    latest = _latest_due(engine)
    now = to_utc(now).replace(microsecond=0)
    return max(now, latest) if latest else now


def _latest_due(engine: Engine) -> datetime | None:
    with engine.connect() as conn:
        value = conn.execute(select(func.max(job_runs.c.due_at))).scalar_one()
    return from_db_time(value) if value else None


def work(engine: Engine, clock: Clock, *, worker_id: str | None = None,
         poll_seconds: float = 5.0, once: bool = False, stop: threading.Event | None = None,
         registry: Registry | None = None,
         on_pass: Callable[[PassReport], Any] | None = None) -> PassReport:
    """The worker loop: a pass (``run_pass``) every ``poll_seconds`` until ``stop`` is
    set (or after one pass with ``once``). A database error in a pass is logged and
    the loop carries on (``once`` raises it). Returns the sum of all passes."""
    if not 0 < poll_seconds <= 3600:
        raise ValueError("poll_seconds must be in (0, 3600]")
    registry = _registry(registry)
    worker_id = worker_id or default_worker_id()
    stop = stop or threading.Event()
    total = PassReport()
    while not stop.is_set():
        try:
            report = run_pass(engine, clock, worker_id=worker_id, registry=registry)
        except DBAPIError:
            if once:
                raise
            log.exception("worker pass failed; retrying after the poll interval")
        else:
            total.extend(report)
            if on_pass is not None:
                on_pass(report)
        if once or stop.wait(poll_seconds):
            break
    return total


# ---------------------------------------------------------------- reading and operating

def run_json(row) -> dict:
    from feecenter.clock import business_time_text

    def when(value):
        return business_time_text(value) if value is not None else None

    return {"id": row.id, "job": row.job, "period": row.period_key, "cadence": row.cadence,
            "state": row.state, "attempts": row.attempts,
            "period_start": when(row.period_start), "period_end": when(row.period_end),
            "due_at": when(row.due_at), "retry_at": when(row.retry_at),
            "claimed_by": row.claimed_by, "claimed_at": when(row.claimed_at),
            "lease_until": when(row.lease_until), "started_at": when(row.started_at),
            "finished_at": when(row.finished_at), "last_error": row.last_error,
            "result": json.loads(row.result) if row.result else None}


def list_runs(engine: Engine, *, state: str | None = None, job: str | None = None,
              offset: int = 0, limit: int = 100) -> dict:
    """Job runs, newest period first: ``{"total": n, "items": [run_json…]}``."""
    if state is not None and state not in STATES:
        raise invalid("state", f"未知的任务状态：{state}",
                      f"unknown state {state!r}; expected one of {', '.join(STATES)}")
    if offset < 0 or not 1 <= limit <= 1000:
        raise invalid("limit", "每页条数须为 1–1000", "limit must be 1-1000, offset >= 0")
    r = job_runs.c
    conditions = []
    if state:
        conditions.append(r.state == state)
    if job:
        conditions.append(r.job == job)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(job_runs).where(*conditions)
                             ).scalar_one()
        rows = conn.execute(select(job_runs).where(*conditions)
                            .order_by(r.period_end.desc(), r.job, r.id.desc())
                            .offset(offset).limit(limit)).all()
    return {"total": total, "items": [run_json(row) for row in rows]}


def retry_failed(engine: Engine, clock: Clock, *, job: str | None = None,
                 period_key: str | None = None, actor: Actor = SYSTEM) -> int:
    """Give ``failed`` runs a fresh set of attempts (operators only, audited); returns
    how many."""
    require_operator(actor)
    r = job_runs.c
    conditions = [r.state == "failed"]
    if job:
        conditions.append(r.job == job)
    if period_key:
        conditions.append(r.period_key == period_key)
    with transaction(engine) as conn:
        retried = conn.execute(update(job_runs).where(*conditions).values(
            state="pending", attempts=0, retry_at=None, finished_at=None, lease_until=None)
        ).rowcount
        if retried:
            record_audit(conn, clock, actor, "retry_jobs", None,
                         {"job": job, "period": period_key, "retried": retried})
    return retried

