"""Tables owned by usage.

Indexes are what settlement reads by, and no more: every index costs each of
the millions of records an intake writes (issue #4, docs/usage.md).
- ``event_id`` is the primary key: the deduplication key (a surrogate id
  would cost a sequence and one more index per record, and nothing reads
  by it);
- ``(usage_end, resource_id, billing_item)``: a period's usage (``usage_end``
  in the period), and one resource's item within a period (the late-usage
  pass), read from the index without visiting other rows. Metering arrives
  roughly in time order, so inserts land at the index's end;
- ``received_at``: what arrived since the last late-usage pass. Rows arrive
  in received_at order, so on PostgreSQL this is a BRIN index (a summary per
  range of pages, next to free to keep up); SQLite has a plain index.
"""

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, String, Table, text

from feecenter.db.base import metadata

EVENT_ID_CONSTRAINT = "pk_usage_records"  # named by db.base's naming convention

usage_records = Table(
    "usage_records", metadata,
    Column("event_id", String(100), primary_key=True),  # the deduplication key
    Column("uin", BigInteger, nullable=False),
    Column("resource_id", String(40), nullable=False),
    Column("billing_item", String(60), nullable=False),
    Column("quantity", BigInteger, nullable=False),  # 1e-6 units (catalog.rules.QTY_SCALE)
    Column("usage_start", DateTime, nullable=False),  # naive UTC
    Column("usage_end", DateTime, nullable=False),
    Column("received_at", DateTime, nullable=False),  # last written (a correction rewrites it)
    # 0 as first sent; a higher revision of the event corrects its quantity (SET-9)
    Column("revision", Integer, nullable=False, server_default=text("0")),
    # of ``quantity``, what was used while the resource was stopped (ARR-3): not charged
    Column("stopped_quantity", BigInteger, nullable=False, server_default=text("0")),
    Index("ix_usage_records_end_item", "usage_end", "resource_id", "billing_item"),
    Index("ix_usage_records_received", "received_at",  # settlement's late-usage pass
          postgresql_using="brin", postgresql_with={"autosummarize": "on"}),
)
