"""Tables owned by resources: projects, resources, and when a resource was stopped
(``resource_stops``: usage while stopped is not charged, ARR-3)."""

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, ForeignKey, Index, String, Table,
                        Text, UniqueConstraint)

from feecenter.db.base import IdType, metadata

projects = Table(
    "projects", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("name", String(100), nullable=False),
    Column("is_default", Boolean, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("uin", "name", name="uq_projects_uin_name"),
)

resources = Table(
    "resources", metadata,
    Column("id", String(40), primary_key=True),
    Column("uin", BigInteger, nullable=False),
    Column("name", String(120), nullable=True),  # shown only where the customer set one
    Column("product_code", String(40), nullable=False),
    Column("region", String(40), nullable=False),
    Column("project_id", IdType, ForeignKey("projects.id"), nullable=False),
    Column("tags", Text, nullable=False),  # JSON object
    Column("pay_mode", String(10), nullable=False),  # prepaid | postpaid
    Column("spec_item", String(60), nullable=True),
    Column("quantity", BigInteger, nullable=False),  # 1e-6 units (catalog.rules.QTY_SCALE)
    Column("state", String(10), nullable=False),  # running | stopped | recycled
    Column("period_start", DateTime, nullable=True),
    Column("period_end", DateTime, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("released_at", DateTime, nullable=True),
    # postpaid: the opening freeze (FRZ-1) and when it is released after release (FRZ-3)
    Column("freeze_hold_id", IdType, nullable=True),
    Column("freeze_release_at", DateTime, nullable=True),
    # a postpaid opening's key (revision 0016): a retry returns this resource
    Column("idempotency_key", String(200), nullable=True, unique=True),
    Index("ix_resources_uin_id", "uin", "id"),
    Index("ix_resources_state_period_end", "state", "period_end"),  # expiry scans (RNW-6)
)

# A span a resource was stopped (ARR-3 isolation): [stopped_at, ended_at), ended_at NULL
# while it still is. Usage that falls in a span is not charged (docs/arrears.md).
resource_stops = Table(
    "resource_stops", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("resource_id", String(40), nullable=False),
    Column("uin", BigInteger, nullable=False),
    Column("reason", String(20), nullable=False),  # arrears | expired (RNW-6)
    Column("stopped_at", DateTime, nullable=False),  # naive UTC
    Column("ended_at", DateTime, nullable=True),  # restarted or destroyed
    Index("ix_resource_stops_resource", "resource_id", "stopped_at"),
    Index("ix_resource_stops_open", "reason", "ended_at", "stopped_at"),  # the recycle bin
)
