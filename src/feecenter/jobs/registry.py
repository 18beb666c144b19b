"""The registry of scheduled jobs.

A domain package registers its jobs at import time with a plain call::

    from feecenter.jobs.registry import HOURLY, job

    @job("orders.expire_unpaid", HOURLY, description="ORD-2: expire unpaid orders")
    def expire_unpaid_orders(engine, clock, period):
        with transaction(engine) as conn:
            return {"expired": orders.expire_unpaid(conn, clock)}

and adds its module to ``feecenter.jobs.loader.JOB_MODULES`` so that every
worker process imports it (``load_all()``).

The contract for a job function ``(engine, clock, period) -> dict``:

- It opens and commits its own database transactions (``transaction(engine)``);
  the runner holds none open around it.
- It MUST be idempotent per period: running it again for the same period,
  after a success or after a crash at any point, changes nothing more than the
  first complete run did (unique idempotency keys, insert-if-absent, state
  checks — whatever fits). The runner guarantees only that one key is never run
  by two workers at once and that a key whose run crashed or raised is run
  again; it cannot undo what a crashed run had committed.
- It works on ``period`` (its ``start``/``end``), not on "now": ``clock`` is
  there for timestamps and for rules that really are about the present.
- It returns a small JSON-able dict (counts), stored as the run's result;
  ``None`` is stored as ``{}``. Raising marks the attempt failed: the runner
  retries it later, and after ``max_attempts`` leaves it ``failed`` for an
  operator (``feecenter jobs retry``).

Where a job's periods begin (``start``): a datetime, or a function
``(conn, clock) -> datetime | None`` evaluated once, when the job is first seen
in a database (e.g. settlement: the earliest usage recorded). Without one —
or if the function returns None — the first period is the one containing the
clock's "now" when the job is first seen. That moment is written down
(``job_cursors``), so it does not move afterwards and no period is skipped;
a job that must cover history from before its first run says so with ``start``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Union

from sqlalchemy import Connection, Engine

from feecenter.clock import Clock
from feecenter.periods import CADENCES, DAILY, HOURLY, MONTHLY, Period, check_cadence

__all__ = ["DAILY", "HOURLY", "MONTHLY", "Job", "JobFunc", "Registry", "REGISTRY", "register",
           "job"]

JobFunc = Callable[[Engine, Clock, Period], Union[dict, None]]
StartSpec = Union[datetime, Callable[[Connection, Clock], Union[datetime, None]], None]

_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


@dataclass(frozen=True)
class Job:
    name: str  # "<package>.<verb>", e.g. "orders.expire_unpaid"; at most 80 characters
    cadence: str  # hourly | daily | monthly
    func: JobFunc
    lag: timedelta = timedelta(0)  # due at period end + lag
    start: StartSpec = None
    lease: timedelta = timedelta(minutes=15)  # longer than the job's worst-case run
    max_attempts: int = 5  # then "failed", left for an operator
    retry_delay: timedelta = timedelta(minutes=1)  # doubled after each failure, at most 1 h
    description: str = ""

    def __post_init__(self):
        if not _NAME.match(self.name) or len(self.name) > 80:
            raise ValueError(f"job name {self.name!r}: want 'package.verb' in lower case, "
                             "at most 80 characters")
        check_cadence(self.cadence)
        if not callable(self.func):
            raise TypeError(f"job {self.name}: func is not callable")
        if self.lag < timedelta(0) or self.lag > timedelta(days=31):
            raise ValueError(f"job {self.name}: lag must be 0..31 days")
        if not timedelta(seconds=1) <= self.lease <= timedelta(days=1):
            raise ValueError(f"job {self.name}: lease must be 1 s..1 day")
        if not 1 <= self.max_attempts <= 100:
            raise ValueError(f"job {self.name}: max_attempts must be 1..100")
        if not timedelta(0) <= self.retry_delay <= timedelta(hours=1):
            raise ValueError(f"job {self.name}: retry_delay must be 0..1 h")

    def backoff(self, attempts: int) -> timedelta:
        """Wait before the next attempt after ``attempts`` failed ones (1, 2, 4 … × delay)."""
        return min(self.retry_delay * (2 ** min(max(attempts - 1, 0), 16)), timedelta(hours=1))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "cadence": self.cadence, "lag_s": int(self.lag.total_seconds()),
                "lease_s": int(self.lease.total_seconds()), "max_attempts": self.max_attempts,
                "description": self.description}


@dataclass
class Registry:
    """Jobs by name. The process-wide one is ``REGISTRY``; tests make their own."""

    _jobs: dict[str, Job] = field(default_factory=dict)

    def add(self, spec: Job) -> Job:
        existing = self._jobs.get(spec.name)
        if existing is not None and existing != spec:
            raise ValueError(f"job {spec.name!r} is already registered differently "
                             f"({existing.func.__module__}.{existing.func.__qualname__})")
        self._jobs[spec.name] = spec
        return spec

    def register(self, name: str, cadence: str, func: JobFunc, **options) -> Job:
        """Register ``func`` as job ``name``; options are ``Job``'s fields."""
        return self.add(Job(name=name, cadence=cadence, func=func, **options))

    def job(self, name: str, cadence: str, **options) -> Callable[[JobFunc], JobFunc]:
        """Decorator form of ``register``; returns the function unchanged."""
        def decorate(func: JobFunc) -> JobFunc:
            self.register(name, cadence, func, **options)
            return func
        return decorate

    def get(self, name: str) -> Job:
        return self._jobs[name]

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)

    def jobs(self) -> list[Job]:
        return [self._jobs[name] for name in sorted(self._jobs)]

    def names(self) -> list[str]:
        return sorted(self._jobs)


REGISTRY = Registry()


def register(name: str, cadence: str, func: JobFunc, **options) -> Job:
    """Register a job in the process-wide registry (call at import time)."""
    return REGISTRY.register(name, cadence, func, **options)


def job(name: str, cadence: str, **options) -> Callable[[JobFunc], JobFunc]:
    """Decorator: register a job in the process-wide registry."""
    return REGISTRY.job(name, cadence, **options)


assert set(CADENCES) == {HOURLY, DAILY, MONTHLY}
