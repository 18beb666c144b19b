"""Scheduled work keyed by (job, period) in the database (DESIGN §4).

- ``schedule``: pure period arithmetic in business time (hourly, daily, monthly keys).
- ``registry``: ``register``/``job`` — how a package declares a job; the job contract.
- ``loader``: ``load_all()`` imports every package that registers jobs.
- ``runner``: ``enqueue_due``, ``run_due`` (workers), ``run_until`` (the simulator).

See docs/jobs.md.
"""

from feecenter.jobs.loader import load_all
from feecenter.jobs.registry import DAILY, HOURLY, MONTHLY, REGISTRY, Job, Registry, job, register
from feecenter.jobs.schedule import Period

__all__ = ["DAILY", "HOURLY", "MONTHLY", "REGISTRY", "Job", "Period", "Registry", "job",
           "load_all", "register"]
