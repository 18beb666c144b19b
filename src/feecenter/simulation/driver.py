"""The driver: build the world, run M operations over the simulated hours on a
FixedClock with faults, check the invariants after every step on a sample and
at the end on everything, and hash the final state.

A violated invariant raises ``SimulationFailure`` naming the seed, the step and
a command that reproduces it.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import event, func, select

from feecenter.clock import FixedClock, business_date, from_db_time
from feecenter.db.engine import dispose, make_engine
from feecenter.ledger.tables import ledger_transactions
from feecenter.jobs import runner
from feecenter.invoices.invoiceable import invoice_debt
from feecenter.invoices.tables import invoices
from feecenter.jobs.tables import job_runs
from feecenter.orders.tables import orders
from feecenter.renewal.tables import renewal_attempts
from feecenter.resources.tables import resource_stops, resources
from feecenter.settlement.tables import bill_lines
from feecenter.simulation import checks, faults
from feecenter.simulation.model import Model, start_of_day
from feecenter.simulation.ops import KEYED, Op, execute, setup
from feecenter.simulation.plan import invoice_op, next_op, warning_op, withdrawal_op
from feecenter.simulation.state import state_hash
from feecenter.simulation.world import HISTORY_START, START, generate


@dataclass(frozen=True)
class Config:
    seed: int
    accounts: int = 20
    ops: int = 1000
    hours: int = 72  # simulated hours the operations are spread over
    crash_rate: float = 0.0  # share of retryable operations run in a killed child first
    dup_rate: float = 0.05  # share of retryable operations sent twice
    sample: int = 1  # random accounts checked after each step besides those it touched
    touched_cap: int = 32  # at most this many of the accounts a step touched are checked
    workers: int = 0  # > 1: that many processes run each batch at once (PostgreSQL only)
    # False: the driver's own connections skip the flush to disk at each commit (SQLite
    # synchronous=NORMAL, PostgreSQL synchronous_commit=off), which only a power cut or a
    # server crash can tell apart, not a killed client; killed children keep the product's
    durable_commits: bool = True
    full_every: int = 500  # steps between checks of everything
    rerun_settled: bool = True  # settle older periods again; False: only the one just ended

    def command(self) -> str:
        return (f"feecenter simulate --seed {self.seed} --accounts {self.accounts} "
                f"--ops {self.ops} --hours {self.hours} --crash-rate {self.crash_rate} "
                f"--dup-rate {self.dup_rate}"
                + ("" if self.rerun_settled else " --rerun-latest-only"))

    def workers_option(self) -> str:
        """A concurrent run's option (its failures need not repeat: docs/simulation.md)."""
        return f" --workers {self.workers}" if self.workers > 1 else ""


class SimulationFailure(AssertionError):
    def __init__(self, config: Config, step: int, op: Op | None, violations: list[str]):
        self.config, self.step, self.op, self.violations = config, step, op, violations
        shown = "\n  ".join(violations[:10])
        super().__init__(f"invariant violated at step {step} (seed {config.seed}): "
                         f"{op.to_json() if op else 'final check'}\n  {shown}\n"
                         f"reproduce: {config.command()}{config.workers_option()}")


@dataclass
class Summary:
    config: dict
    state_hash: str
    steps: int
    kinds: dict = field(default_factory=dict)
    refused: dict = field(default_factory=dict)
    crashes: dict = field(default_factory=dict)
    duplicates: int = 0
    races: dict = field(default_factory=dict)  # concurrent runs: conflicts retried, …
    renewal: dict = field(default_factory=dict)  # auto-renewed, failed, stopped, released, …
    invoices: dict = field(default_factory=dict)  # applied, refused (why), issued, reversed
    withdrawals: dict = field(default_factory=dict)  # applied (route), refused (why), paid, …
    warnings: dict = field(default_factory=dict)  # settings set / refused, notices (XTR-2)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class _Sim:
    def __init__(self, engine, clock):
        self.engine, self.clock = engine, clock
        self.last_txn = 0  # the last ledger transaction the checks have seen
        self.last_line = 0  # the last bill line the checks have judged


def run(url: str, config: Config, *, on_step=None) -> Summary:
    """One simulation on the migrated, empty database at ``url``."""
    if config.workers > 1:
        from feecenter.simulation import concurrent

        return concurrent.run(url, config, Summary, SimulationFailure)
    started = time.perf_counter()
    engine = make_engine(url)
    if not config.durable_commits:
        _fast_commits(engine)
    try:
        sim = _Sim(engine, FixedClock(HISTORY_START))
        world = generate(config.seed, config.accounts)
        model = Model.opening(world, setup(sim, world))
        model.rerun_settled = config.rerun_settled
        model.invoice_rng = random.Random(f"{config.seed}:invoices")
        model.withdrawal_rng = random.Random(f"{config.seed}:withdrawals")
        model.warning_rng = random.Random(f"{config.seed}:warnings")
        _history(sim, model, world)
        summary = Summary(asdict(config), "", config.ops)
        _steps(url, sim, model, config, summary, on_step)
        _finish(sim, model, config)
        summary.renewal = renewal_counts(engine)
        summary.invoices = invoice_counts(engine, model)
        summary.withdrawals = dict(sorted(model.withdrawal_counts.items()))
        summary.warnings = dict(sorted(model.warning_counts.items()))
        summary.state_hash = state_hash(engine)
        summary.seconds = round(time.perf_counter() - started, 2)
        return summary
    finally:
        dispose(engine)


def _fast_commits(engine) -> None:
    sqlite = engine.dialect.name == "sqlite"

    @event.listens_for(engine, "connect")
    def _no_flush(dbapi_conn, _record):  # after the product's own settings
        if sqlite:
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
        else:
            with dbapi_conn.cursor() as cur:
                cur.execute("SET synchronous_commit = off")
            dbapi_conn.commit()


def _steps(url, sim, model, config, summary, on_step) -> None:
    plan_rng, fault_rng, check_rng = (random.Random(f"{config.seed}:{part}")
                                      for part in ("plan", "faults", "checks"))
    invoice_rngs = [random.Random(f"{config.seed}:invoice-{part}") for part in ("faults", "checks")]
    withdrawal_rngs = [random.Random(f"{config.seed}:withdrawal-{part}")
                       for part in ("faults", "checks")]
    warning_rngs = [random.Random(f"{config.seed}:warning-{part}") for part in ("faults", "checks")]
    per_hour = max(config.ops // max(config.hours, 1), 1)
    kinds, refused, crashes = Counter(), Counter(), Counter()
    for step in range(config.ops):
        hour, within = divmod(step, per_hour)
        now = START + timedelta(hours=hour, seconds=within * 3000 // per_hour + 60)
        if within == 0 and step:
            op = Op(step, "tick", 0, {"at": now.replace(minute=0, second=0).isoformat()})
        else:
            op = next_op(plan_rng, model, step, now)
        result = _perform(url, sim, op, config, fault_rng, crashes, summary)
        kinds[op.kind] += 1
        if "refused" in result:
            refused[f"{op.kind}:{result['refused']}"] += 1
        model.apply(op, result)
        if op.kind == "tick":
            _refresh(sim, model)
            result = {**result, "renewal": _follow_renewal(sim, model, op)}
        _check_step(sim, model, config, step, op, result, check_rng)
        if on_step is not None:
            on_step(step, op, result)
        extra = invoice_op(model, step, now) if op.kind != "tick" else None
        if extra is not None:  # its faults and sample from streams of its own
            result = _perform(url, sim, extra, config, invoice_rngs[0], crashes, summary)
            kinds[extra.kind] += 1
            if "refused" in result:
                refused[f"{extra.kind}:{result['refused']}"] += 1
            model.apply(extra, result)
            _check_step(sim, model, config, step, extra, result, invoice_rngs[1])
        for extra_op, rngs in ((withdrawal_op, withdrawal_rngs), (warning_op, warning_rngs)):
            extra = extra_op(model, step, now) if op.kind != "tick" else None
            if extra is None:  # like invoices: streams of their own
                continue
            result = _perform(url, sim, extra, config, rngs[0], crashes, summary)
            kinds[extra.kind] += 1
            if "refused" in result:
                refused[f"{extra.kind}:{result['refused']}"] += 1
            model.apply(extra, result)
            _check_step(sim, model, config, step, extra, result, rngs[1])
    summary.kinds, summary.refused, summary.crashes = dict(kinds), dict(refused), dict(crashes)


def _perform(url, sim, op, config, fault_rng, crashes, summary) -> dict:
    """The operation once, or first in a killed child, or twice (a duplicate)."""
    roll = fault_rng.random()
    if op.kind in KEYED and roll < config.crash_rate:
        mode, k = fault_rng.choice(faults.KILL_MODES), fault_rng.randint(1, 30)
        finished = faults.run_killed(url, op, mode, k)
        crashes[mode if finished is None else "survived"] += 1
        return _retry(sim, op, execute(sim, op))
    result = execute(sim, op)
    if op.kind in KEYED and roll < config.crash_rate + config.dup_rate:
        summary.duplicates += 1
        again = _retry(sim, op, execute(sim, op))
        if op.kind not in ("tick", "rerun", "usage", "issue") and (
                _answer(again) != _answer(_retry(sim, op, result))):
            raise SimulationFailure(config, op.step, op, [
                f"idempotency: a repeat returned {again}, the first {result}"])
    return result


def _answer(result: dict) -> dict:
    """What a repeat must answer alike: a withdrawal's takeable amount read before it
    and whether its key had been used are what the step saw, not what it answered."""
    return {k: v for k, v in result.items() if k not in ("takeable", "replayed")}


def _retry(sim, op: Op, result: dict) -> dict:
    """A retried state claim (deliver, fail) that finds its own target state done
    succeeded earlier; ``created`` says only which attempt wrote."""
    result = {k: v for k, v in result.items() if k != "created"}
    if op.kind in ("deliver", "fail") and result.get("refused") == "Conflict":
        target = "delivered" if op.kind == "deliver" else "delivery_failed"
        with sim.engine.connect() as conn:
            state = conn.execute(select(orders.c.state).where(
                orders.c.id == op.args["order_id"])).scalar()
        return {} if state == target else result
    return result


def _refresh(sim, model: Model) -> None:
    """Arrears may stop, destroy or restart postpaid resources (ARR-3): usage is only
    reported for running ones."""
    with sim.engine.connect() as conn:
        state = dict(conn.execute(select(resources.c.id, resources.c.state).where(
            resources.c.pay_mode == "postpaid")).all())
    for res in model.resources.values():
        if res.pay_mode == "postpaid" and res.rid in state:
            res.live = state[res.rid] == "running"


HISTORY_STEP = 9_000_000  # the steps of the history's operations (resource ids, keys)


def _history(sim, model, world) -> None:
    """The prepaid resources bought a month before the run (``world.history``): each
    bought and paid, its auto-renew flag or the account's default set, and sometimes the
    account's unified day, as operations the model learns from like any other."""
    for n, bought in enumerate(world.history):
        uin, step = model.uins[bought.account], HISTORY_STEP + 10 * n
        at = HISTORY_START + timedelta(minutes=bought.minutes)
        made = _history_op(sim, model, Op(step, "buy", uin, {
            "items": [[bought.product, bought.spec, bought.count, 2, f"h{n}"]],
            "key": f"buy:{step}", "at": at.isoformat()}))
        if "refused" in made:
            continue
        paid = _history_op(sim, model, Op(step + 1, "pay", uin, {
            "order_ids": made["order_ids"], "key": f"pay:{step + 1}", "at": at.isoformat()}))
        later = (at + timedelta(minutes=1)).isoformat()
        if bought.auto is not None and "refused" not in paid:
            rid = None if bought.auto == "default" else made["rids"][0]
            _history_op(sim, model, Op(step + 2, "auto_renew", uin, {
                "label": f"h{n}", "rid": rid, "on": bought.auto != "off", "months": None,
                "at": later}))
        if bought.unified_day is not None:
            _history_op(sim, model, Op(step + 3, "unified_day", uin, {
                "day": bought.unified_day, "at": later}))


def _history_op(sim, model, op: Op) -> dict:
    result = execute(sim, op)
    model.apply(op, result)
    return result


_RENEWAL_JOBS = ("renewal.expiry", "renewal.release")


def _follow_renewal(sim, model: Model, tick: Op) -> list[str]:
    """After a tick: the model follows each hour of the renewal jobs that the runner has
    completed, in order, up to the first one not done (a run killed keeps its lease and
    is rerun at a later tick; until then the model is ``renewal_lagging`` and the
    resource states are not compared). Auto-renewals' outcomes come from
    ``renewal_attempts``; the model checks they were due and their orders."""
    at = datetime.fromisoformat(tick.args["at"])
    j = job_runs.c
    with sim.engine.connect() as conn:
        runs = conn.execute(select(j.job, j.period_start, j.state)
                            .where(j.job.in_(_RENEWAL_JOBS))).all()
        if not runs:
            return []
        undone = [from_db_time(r.period_start) for r in runs if r.state != "done"]
        until = min([at, *undone])
        if model.renewal_until is None:
            model.renewal_until = min(from_db_time(r.period_start) for r in runs
                                      if r.job == "renewal.expiry")
        attempts = _attempts(conn, business_date(model.renewal_until))
    found, hour, first = [], model.renewal_until, business_date(model.renewal_until)
    while hour + timedelta(hours=1) <= until:
        end = hour + timedelta(hours=1)
        found += model.expiry_hour(hour, end, attempts)
        if end == start_of_day(business_date(end)):
            model.release_day(end)
        hour = end
    model.renewal_until, model.renewal_lagging = hour, until < at
    if not model.renewal_lagging:  # no try the model did not predict
        for (rid, term_end), row in attempts.items():
            day = model.tried.get((model.label_of.get(rid), term_end.replace(tzinfo=timezone.utc)))
            if row["last_tried_on"] >= first and row["last_tried_on"] != day:
                found.append(f"RNW-1 auto-renewal of {rid} (expires {term_end}) tried on "
                             f"{row['last_tried_on']}, the model says {day}")
    return found


def _attempts(conn, since) -> dict:
    """(resource id, expiry naive UTC) -> the attempt tried since ``since`` with its order."""
    a, o = renewal_attempts.c, orders.c
    rows = conn.execute(select(a.resource_id, a.term_end, a.state, a.reason_code,
                               a.last_tried_on, a.order_id, o.idempotency_key.label("key"),
                               o.service_start, o.service_end)
                        .select_from(renewal_attempts.outerjoin(orders, o.id == a.order_id))
                        .where(a.last_tried_on >= since)).mappings().all()
    return {(r["resource_id"], r["term_end"]): {
        **r, "key": r["key"] and r["key"].split(":", 1)[1]} for r in rows}


def renewal_counts(engine) -> dict:
    """What the run's renewal jobs and operations did (RNW-1, RNW-2, RNW-6)."""
    a, s, o = renewal_attempts.c, resource_stops.c, orders.c
    with engine.connect() as conn:
        tries = dict(conn.execute(select(a.state, func.count()).group_by(a.state)).all())
        stops = conn.execute(select(func.count(), func.count(s.ended_at))
                             .where(s.reason == "expired")).one()
        released = conn.execute(select(func.count()).select_from(
            resource_stops.join(resources, resources.c.id == s.resource_id))
            .where(s.reason == "expired", resources.c.state == "recycled",
                   s.ended_at == resources.c.released_at)).scalar_one()
        aligned = conn.execute(select(func.count()).where(
            o.kind == "renew", o.state == "delivered", o.unified_day.is_not(None))).scalar_one()
    return {"auto_renewed": tries.get("renewed", 0), "auto_failed": tries.get("failed", 0),
            "stopped": stops[0], "released": released, "restored": stops[1] - released,
            "aligned_renewals": aligned}


def invoice_counts(engine, model: Model) -> dict:
    """What the run's invoice operations did: applications (refused, by the reason the
    model predicted), request keys repeated, reversals, and invoices by kind and state."""
    i = invoices.c
    with engine.connect() as conn:
        states = conn.execute(select(i.kind, i.state, func.count())
                              .group_by(i.kind, i.state)).all()
        debts = [invoice_debt(conn, uin) for uin in sorted(model.titles)]
    counts = {k: n for k, n in model.invoice_counts.items() if not k.startswith("in invoice")}
    counts["accounts ever in invoice debt"] = len(model.invoice_counts) - len(counts)
    return {**dict(sorted(counts.items())),
            **{f"{kind} {state}": n for kind, state, n in sorted(states)},
            "accounts in invoice debt at the end": sum(d > 0 for d in debts)}


def _touched(sim) -> set[int]:
    """The accounts with a ledger transaction written since the last call."""
    t = ledger_transactions.c
    with sim.engine.connect() as conn:
        rows = conn.execute(select(t.id, t.uin).where(t.id > sim.last_txn)).all()
    sim.last_txn = max((r.id for r in rows), default=sim.last_txn)
    return {r.uin for r in rows if r.uin is not None}


def _lines_checked(sim) -> int:
    """The last bill line judged so far; the next check starts after the newest now."""
    after = sim.last_line
    with sim.engine.connect() as conn:
        sim.last_line = conn.execute(select(func.max(bill_lines.c.id))).scalar() or 0
    return after


def _check_step(sim, model, config, step, op, result, rng) -> None:
    """Incremental: the accounts the step touched (its own and any with new ledger
    transactions: a tick touches many, capped by a seeded sample) and a random one;
    every ``full_every`` steps, everything."""
    found = [f"job failed: {f}" for f in result.get("failed", []) + result.get("retried", [])]
    found += [f"usage rejected: {r}" for r in result.get("rejected", [])]
    found += result.get("renewal", [])
    touched = _touched(sim) | model.renewal_touched  # and whose resources the jobs changed
    model.renewal_touched = set()
    if (step + 1) % config.full_every == 0:
        found += checks.check(sim.engine, model, sim.clock.now())
    else:
        if len(touched) > config.touched_cap:
            touched = set(rng.sample(sorted(touched), config.touched_cap))
        sample = touched | ({op.uin} if op.uin else set())
        sample.update(rng.sample(model.uins, min(config.sample, len(model.uins))))
        found += checks.check(sim.engine, model, sim.clock.now(), sorted(sample),
                              lines_after=_lines_checked(sim))
    if found:
        raise SimulationFailure(config, step, op, found)


def _finish(sim, model, config) -> None:
    """Two more days on the job runner, so every period is settled; then check all."""
    runner.run_until(sim.engine, sim.clock, sim.clock.now() + timedelta(days=2),
                     worker_id="simulator")
    found = [] if config.workers > 1 else _follow_renewal(  # concurrent: not followed
        sim, model, Op(config.ops, "tick", 0, {"at": sim.clock.now().isoformat()}))
    found += checks.check(sim.engine, model, sim.clock.now(), final=True)
    if found:
        raise SimulationFailure(config, config.ops, None, found)
