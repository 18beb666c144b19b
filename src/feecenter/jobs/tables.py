"""Tables owned by jobs: one row per (job, period) run, and one cursor per job."""

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text, UniqueConstraint

from feecenter.db.base import IdType, metadata

# One row per (job, period key), inserted when the period is due (insert-if-absent),
# never deleted. state: pending -> running -> done | pending (retry) | failed.
job_runs = Table(
    "job_runs", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("job", String(80), nullable=False),
    Column("period_key", String(20), nullable=False),  # "2026-01-31T23" | "2026-01-31" | "2026-01"
    Column("cadence", String(10), nullable=False),  # hourly | daily | monthly
    Column("period_start", DateTime, nullable=False),  # naive UTC, like every stored time
    Column("period_end", DateTime, nullable=False),
    Column("due_at", DateTime, nullable=False),  # period_end + the job's lag
    Column("state", String(10), nullable=False),  # pending | running | done | failed
    Column("attempts", Integer, nullable=False, default=0),  # claims so far (the fencing token)
    Column("retry_at", DateTime, nullable=True),  # after a failed attempt: not before this
    Column("claimed_by", String(120), nullable=True),  # worker id of the current/last claim
    Column("claimed_at", DateTime, nullable=True),
    Column("lease_until", DateTime, nullable=True),  # running past this = the worker was lost
    Column("started_at", DateTime, nullable=True),  # first claim
    Column("finished_at", DateTime, nullable=True),  # done or failed
    Column("last_error", Text, nullable=True),
    Column("result", Text, nullable=True),  # JSON object the job returned
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("job", "period_key", name="uq_job_runs_job_period"),
    Index("ix_job_runs_state_due", "state", "due_at"),
    Index("ix_job_runs_job_period_end", "job", "period_end"),
)

# Where each job's enqueuing has got to, so enqueue_due never rescans history:
# first_period_start is fixed when the job is first seen in this database.
job_cursors = Table(
    "job_cursors", metadata,
    Column("job", String(80), primary_key=True),
    Column("cadence", String(10), nullable=False),
    Column("first_period_start", DateTime, nullable=False),
    Column("next_period_start", DateTime, nullable=False),  # first period not enqueued yet
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
