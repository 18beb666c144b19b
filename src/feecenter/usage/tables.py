"""Tables owned by usage."""

from sqlalchemy import BigInteger, Column, DateTime, Index, String, Table

from feecenter.db.base import IdType, metadata

usage_records = Table(
    "usage_records", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("event_id", String(100), nullable=False, unique=True),  # the deduplication key
    Column("uin", BigInteger, nullable=False),
    Column("resource_id", String(40), nullable=False),
    Column("billing_item", String(60), nullable=False),
    Column("quantity", BigInteger, nullable=False),  # 1e-6 units (catalog.rules.QTY_SCALE)
    Column("usage_start", DateTime, nullable=False),  # naive UTC
    Column("usage_end", DateTime, nullable=False),
    Column("received_at", DateTime, nullable=False),
    Index("ix_usage_records_resource_start", "resource_id", "usage_start"),
    Index("ix_usage_records_end", "usage_end"),
    Index("ix_usage_records_received", "received_at"),  # settlement's late-usage pass
)
