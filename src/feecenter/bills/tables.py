"""Tables owned by bills: the daily cost-bill roll-ups (BIL-2), the days refreshed, and
the bill exports of the download center (BIL-7)."""

from sqlalchemy import (BigInteger, Column, Date, DateTime, Index, Integer, String, Table, Text,
                        UniqueConstraint)

from feecenter.db.base import IdType, metadata

# One row per (account, business day of deduction, usage month, product, project,
# region, pay mode, resource): the sums of that day's L3 lines (BIL-2). Written only
# by the daily refresh, which replaces a whole day at once (bills.rollups).
bill_rollups = Table(
    "bill_rollups", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("deducted_on", Date, nullable=False),  # business day (Asia/Shanghai)
    Column("deducted_month", String(7), nullable=False),  # YYYY-MM of deducted_on
    Column("usage_month", String(7), nullable=False),  # a prepaid line: its deduction month
    Column("product_code", String(40), nullable=False),
    Column("project_id", BigInteger, nullable=False),  # at deduction time (SET-7)
    Column("project_name", String(100), nullable=False),
    Column("region", String(40), nullable=False),
    Column("pay_mode", String(10), nullable=False),  # prepaid | postpaid
    Column("resource_id", String(40), nullable=False),
    Column("original_cost", BigInteger, nullable=False),  # 1e-8 yuan (contract: discounted)
    Column("discounted_cost", BigInteger, nullable=False),  # 1e-8 yuan
    Column("deducted", BigInteger, nullable=False),  # fen; negative for refunds (BIL-5)
    Column("voucher_paid", BigInteger, nullable=False),  # fen
    Column("cash_paid", BigInteger, nullable=False),  # fen, credit included
    Column("gift_paid", BigInteger, nullable=False),  # fen
    Column("precision_diff", BigInteger, nullable=False),  # 1e-8 yuan (SET-3)
    Column("lines", Integer, nullable=False),
    Index("ix_bill_rollups_uin_month", "uin", "deducted_month"),
    Index("ix_bill_rollups_day", "deducted_on"),
)

# A business day whose roll-up refresh committed (with its rows): the bill check
# compares the roll-ups with the L3 lines of these days only (L3 is near real time).
bill_rollup_days = Table(
    "bill_rollup_days", metadata,
    Column("day", Date, primary_key=True),
    Column("lines", BigInteger, nullable=False),
    Column("refreshed_at", DateTime, nullable=False),
)

# One export of an account's bill (BIL-7, bills.exports): requested once per
# (uin, request_key); state queued -> running -> done | failed, a done one expired
# (its file deleted) after the retention period.
bill_exports = Table(
    "bill_exports", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("request_key", String(64), nullable=False),  # idempotency key of the request
    Column("month", String(7), nullable=False),  # YYYY-MM
    Column("level", String(20), nullable=False),  # overview | product | … | lines
    Column("fmt", String(10), nullable=False),  # csv | xlsx | focus
    Column("tag_key", String(127), nullable=True),  # level "tag" only
    Column("requested_by", String(200), nullable=False),  # the actor's label
    Column("state", String(10), nullable=False),  # queued | running | done | failed | expired
    Column("lines_written", BigInteger, nullable=False),
    Column("lines_total", BigInteger, nullable=True),  # None: not known yet
    Column("file_name", String(200), nullable=True),  # inside the export directory
    Column("size_bytes", BigInteger, nullable=True),
    Column("error", Text, nullable=True),  # why it failed
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime, nullable=True),
    Column("finished_at", DateTime, nullable=True),
    Column("expires_at", DateTime, nullable=True),  # done: finished_at + retention
    UniqueConstraint("uin", "request_key", name="uq_bill_exports_uin_request_key"),
    Index("ix_bill_exports_state", "state"),
    Index("ix_bill_exports_uin_created", "uin", "created_at"),
)
