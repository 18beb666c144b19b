"""Tables owned by resource packages (SET-10): the trace of every covered quantity."""

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, String, Table, UniqueConstraint

from feecenter.db.base import IdType, metadata

# One row per (package, covered bill line): which package covered how much of which
# line's usage. A bill line is (resource, item, cycle, period, kind, sequence).
package_uses = Table(
    "package_uses", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("package_id", String(40), nullable=False),  # the package resource
    Column("resource_id", String(40), nullable=False),  # the resource whose usage it covered
    Column("billing_item", String(60), nullable=False),
    Column("cycle", String(10), nullable=False),
    Column("period_key", String(20), nullable=False),
    Column("kind", String(12), nullable=False),  # charge | adjustment, as the bill line
    Column("sequence", Integer, nullable=False),
    Column("month", String(7), nullable=False),  # YYYY-MM (business time) of the period
    Column("quantity", BigInteger, nullable=False),  # 1e-6 units
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("package_id", "resource_id", "billing_item", "cycle", "period_key", "kind",
                     "sequence", name="uq_package_uses_once"),
    Index("ix_package_uses_package_month", "package_id", "month"),
    Index("ix_package_uses_uin_period", "uin", "period_key"),
)
