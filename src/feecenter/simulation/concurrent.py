"""Concurrent workers on PostgreSQL (``Config.workers`` > 1): N forked worker
processes run each batch of operations at the same time, on a few hot accounts,
so payments, refunds, top-ups, coupon grants, usage, the job runner's tick and
settlement run again all race on the same rows.

A worker retries an operation that hit a database conflict (a deadlock or a
serialization failure: the unit of work rolled back) or a ``Conflict``
refusal, with the same idempotency key, as a client would. A raw unique-key
error is not retried: it fails the run (every creation race is an
insert-if-absent that hands the loser the winner's row, db/upsert.py). Crash
injection works as in a sequential run: the worker forks the killed child.

What the run cannot promise is the final state hash: which of two racing
payments wins, and so everything after it, depends on the scheduler. The plan
keeps the model independent of the order in which a batch's operations
committed: two operations of one batch act on the same resource only when both
are payments (one of them wins each order) or both are delivery claims, and the
model learns every other effect from the operations that took effect (their
results). Then every invariant of a sequential run holds after each batch on
the accounts it touched, every ``full_every`` operations on all, and at the end.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from collections import Counter
from dataclasses import asdict
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError

from feecenter.clock import FixedClock, db_time
from feecenter.db.engine import dispose, make_engine
from feecenter.jobs.tables import job_runs
from feecenter.simulation import checks, faults
from feecenter.simulation.model import Model
from feecenter.simulation.ops import KEYED, Op, execute, setup
from feecenter.simulation.plan import next_op
from feecenter.simulation.state import state_hash
from feecenter.simulation.world import START, generate

RETRIES = 30  # attempts of one operation that keeps meeting conflicts
# Usage racing with the arrears escalation that destroys its resource: the product
# refuses it (usage after the release is not billed), and the model does not rate it.
RACED_USAGE = "the resource was released before this usage ended"

_worker = None  # (sim, url) in a worker process


def run(url: str, config, summary_cls, failure_cls):
    """One concurrent simulation on the migrated, empty PostgreSQL database at ``url``."""
    from feecenter.simulation import driver

    if not url.startswith("postgresql"):
        raise ValueError("concurrent workers need PostgreSQL (SQLite has one writer)")
    started = time.perf_counter()
    # the workers fork before this process opens any connection
    pool = multiprocessing.get_context("fork").Pool(config.workers, _init,
                                                    (url, config.durable_commits))
    engine = make_engine(url)
    if not config.durable_commits:
        driver._fast_commits(engine)
    try:
        sim = driver._Sim(engine, FixedClock(START))
        world = generate(config.seed, config.accounts)
        model = Model.opening(world, setup(sim, world))
        summary = summary_cls(asdict(config), "", config.ops)
        _batches(pool, sim, model, config, summary, failure_cls)
        ops_ended = sim.clock.now()
        driver._finish(sim, model, config)
        found = _runs_not_done(engine, ops_ended)
        if found:
            raise failure_cls(config, config.ops, None, found)
        summary.state_hash = state_hash(engine)
        summary.seconds = round(time.perf_counter() - started, 2)
        return summary
    finally:
        pool.terminate()
        pool.join()
        dispose(engine)


def _runs_not_done(engine, ops_ended: datetime) -> list[str]:
    """SET-8: after the last two days on the runner, every job run is done (one that
    lost a race was retried)."""
    r = job_runs.c
    with engine.connect() as conn:
        rows = conn.execute(select(r.job, r.period_key, r.state, r.last_error)
                            .where(r.state != "done", r.due_at <= db_time(ops_ended))).all()
    return [f"SET-8 job run {row.job}@{row.period_key} is {row.state}: {row.last_error}"
            for row in rows]


def _init(url: str, durable: bool) -> None:
    from feecenter.simulation import driver

    global _worker
    engine = make_engine(url)
    if not durable:
        driver._fast_commits(engine)
    _worker = (driver._Sim(engine, FixedClock(START)), url)


def _batches(pool, sim, model, config, summary, failure_cls) -> None:
    from feecenter.simulation import driver

    plan_rng, fault_rng, check_rng = (random.Random(f"{config.seed}:{part}")
                                      for part in ("plan", "faults", "checks"))
    per_hour = max(config.ops // max(config.hours, 1), 1)
    size = 2 * config.workers
    kinds, refused, crashes, races = Counter(), Counter(), Counter(), Counter()
    step, checked = 0, 0
    while step < config.ops:
        batch, jobs = [], []
        hot = plan_rng.sample(model.uins, min(3, len(model.uins)))  # the accounts that race
        while len(batch) < size and step < config.ops:
            hour, within = divmod(step, per_hour)
            now = START + timedelta(hours=hour, seconds=within * 3000 // per_hour + 60)
            if within == 0 and step:
                if batch:
                    break  # a new hour: its tick opens the next batch
                op = Op(step, "tick", 0, {"at": now.replace(minute=0, second=0).isoformat()})
            else:
                op = _racing(next_op(plan_rng, model, step, now, uins=hot), batch, plan_rng,
                             model)
            batch.append(op)
            roll = fault_rng.random()
            crash = None
            if op.kind in KEYED and roll < config.crash_rate:
                crash = (fault_rng.choice(faults.KILL_MODES), fault_rng.randint(1, 30))
            jobs.append((op.to_json(), crash))
            if op.kind in KEYED and config.crash_rate <= roll < config.crash_rate + config.dup_rate:
                jobs.append((op.to_json(), None))  # the same request twice, at once
                summary.duplicates += 1
            step += 1
        outcomes = pool.map(_work, jobs, chunksize=1)
        found = _learn(batch, outcomes, model, kinds, refused, crashes, races)
        if any(op.kind == "tick" for op in batch):
            driver._refresh(sim, model)
        touched = driver._touched(sim) | {op.uin for op in batch if op.uin}
        sim.clock.set(max(datetime.fromisoformat(op.args["at"]) for op in batch))
        if step // config.full_every > checked:
            checked = step // config.full_every
            found += checks.check(sim.engine, model, sim.clock.now())
        else:
            found += checks.check(sim.engine, model, sim.clock.now(), sorted(touched),
                                  lines_after=driver._lines_checked(sim))
        if found:
            raise failure_cls(config, batch[-1].step, batch[-1], found)
    summary.kinds, summary.refused, summary.crashes = dict(kinds), dict(refused), dict(crashes)
    summary.races = dict(races)


def _racing(op: Op, batch: list[Op], rng: random.Random, model: Model) -> Op:
    """Keep the batch's effects independent of their commit order: an operation on a
    resource another one of the batch acts on becomes a top-up, unless both are
    payments or both delivery claims. A third of the payments pay the orders of an
    earlier payment in the batch again, under a key of their own (a second client)."""
    # a renewal's price would race with them; the invoice checks judge an application
    # on the consumption read right after its own step, which a batch does not keep
    if op.kind in ("auto_renew", "unified_day", "invoice_title", "invoice", "issue", "reverse"):
        return Op(op.step, "adjust", op.uin, {"sub": "cash", "fen": 100_00,
                                              "key": f"adj:{op.step}", "at": op.args["at"]})
    if op.kind == "pay" and rng.random() < 1 / 3:
        earlier = [o for o in batch if o.kind == "pay" and o.uin == op.uin]
        if earlier:
            op.args["order_ids"] = list(rng.choice(earlier).args["order_ids"])
    mine = _labels(op, model)
    group = _group(op.kind)
    for other in batch:
        if mine & _labels(other, model) and (group is None or group != _group(other.kind)):
            return Op(op.step, "adjust", op.uin, {"sub": "cash", "fen": 100_00,
                                                  "key": f"adj:{op.step}", "at": op.args["at"]})
    return op


def _group(kind: str) -> str | None:
    return {"pay": "pay", "deliver": "claim", "fail": "claim"}.get(kind)


def _labels(op: Op, model: Model) -> set[str]:
    a = op.args
    if "label" in a and op.kind != "open":
        return {a["label"]}
    if op.kind == "pay":
        return {model.orders[i].label for i in a["order_ids"]}
    if op.kind in ("deliver", "fail"):
        return {model.orders[a["order_id"]].label}
    return set()


def _work(job: tuple[str, tuple | None]) -> dict:
    """In a worker: one operation (first in a killed child, if ``crash``), retried
    on conflicts; its result and how many attempts met a conflict."""
    from feecenter.simulation.driver import _retry

    sim, url = _worker
    text, crash = job
    op = Op.from_json(text)
    crashed = None
    if crash is not None:
        finished = faults.run_killed(url, op, *crash)
        crashed = crash[0] if finished is None else "survived"
    conflicts = 0
    for attempt in range(RETRIES):
        try:
            result = _retry(sim, op, execute(sim, op))
        except IntegrityError:
            raise  # a unique key raced: a bug in the service, not a client's retry
        except DBAPIError as exc:  # the unit of work rolled back: deadlock, serialization …
            conflicts += 1
            last = exc
            time.sleep(0.005 * (attempt + 1) * random.random())
            continue
        if result.get("refused") in ("Conflict", "IdempotencyConflict") and (
                op.kind in KEYED and attempt < 2):
            conflicts += 1  # a 409 while another request holds the row: try again
            time.sleep(0.01)
            continue
        return {"step": op.step, "result": result, "conflicts": conflicts,
                "crashed": crashed, "pid": os.getpid()}
    raise RuntimeError(f"step {op.step} met {RETRIES} conflicts: {last}")


def _learn(batch, outcomes, model, kinds, refused, crashes, races) -> list[str]:
    """Apply each operation that took effect to the model, once; the batch's
    duplicates must agree; return the violations found in the results."""
    by_step: dict[int, list[dict]] = {}
    for outcome in outcomes:
        by_step.setdefault(outcome["step"], []).append(outcome)
        if outcome["crashed"]:
            crashes[outcome["crashed"]] += 1
        races["conflicts retried"] += outcome["conflicts"]
    found = []
    for op in batch:
        results = [o["result"] for o in by_step[op.step]]
        # a refusal stores nothing under the key: when another operation of the batch
        # changed the account between the two copies (a top-up), one may be refused
        # and the other take effect; the effect is what the model applies, once
        effects = [r for r in results if "refused" not in r]
        result = effects[0] if effects else results[0]
        if len(effects) > 1 and op.kind not in ("tick", "rerun", "usage") and (
                effects[0] != effects[1]):
            found.append(f"idempotency: one request sent twice at once got {results}")
        elif len(effects) == 1 and len(results) > 1:
            races["a copy refused, the other took effect"] += 1
        kinds[op.kind] += 1
        if "refused" in result:
            refused[f"{op.kind}:{result['refused']}"] += 1
            if op.kind == "pay":
                races["pay refused"] += 1
        found += [f"job failed: {f}" for f in result.get("failed", [])]
        # a job run that lost a race (settlement run again at the same time) is retried
        # by the runner after its back-off; the end checks that every run is done
        races["job runs retried"] += len(result.get("retried", []))
        found += [f"usage rejected: {r}" for r in result.get("rejected", []) if r != RACED_USAGE]
        races["usage raced a release"] += sum(r == RACED_USAGE
                                              for r in result.get("rejected", []))
        model.apply(op, results[0] if "refused" not in results[0] else results[-1])
    return found
