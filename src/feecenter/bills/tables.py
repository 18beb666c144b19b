"""Tables owned by bills: the daily cost-bill roll-ups (BIL-2) and the days refreshed."""

from sqlalchemy import (BigInteger, Column, Date, DateTime, Index, Integer, String, Table)

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
