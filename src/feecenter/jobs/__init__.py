"""Scheduled work keyed by (job, period) in the database (docs/jobs.md).

- ``registry``: ``register``/``job`` — how a package declares a job; the job contract.
- ``loader``: ``load_all()`` imports every package that registers jobs.
- ``runner``: ``enqueue_due``, ``run_due`` (workers), ``run_until`` (the simulator).

Periods themselves (pure arithmetic in business time) live in ``feecenter.periods``.
See docs/jobs.md.
"""

from feecenter.jobs.loader import load_all
from feecenter.jobs.registry import DAILY, HOURLY, MONTHLY, REGISTRY, Job, Registry, job, register

__all__ = ["DAILY", "HOURLY", "MONTHLY", "REGISTRY", "Job", "Registry", "job", "load_all",
           "register"]
