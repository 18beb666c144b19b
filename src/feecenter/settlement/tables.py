"""Tables owned by settlement."""

from sqlalchemy import (BigInteger, Column, DateTime, Index, Integer, String, Table, Text,
                        UniqueConstraint, text)

from feecenter.db.base import IdType, metadata

# L3 bill lines: one per resource x billing item x settlement period (kind "charge"),
# plus adjustment lines for late usage (SET-9) that reference the lines they complete.
bill_lines = Table(
    "bill_lines", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("resource_id", String(40), nullable=False),
    Column("resource_name", String(120), nullable=True),
    Column("product_code", String(40), nullable=False),
    Column("region", String(40), nullable=False),
    Column("billing_item", String(60), nullable=False),
    Column("project_id", BigInteger, nullable=False),  # at deduction time (SET-7)
    Column("project_name", String(100), nullable=False),  # its name at deduction time
    Column("cycle", String(10), nullable=False),  # hour | day | month
    Column("period_key", String(20), nullable=False),
    Column("period_start", DateTime, nullable=False),  # naive UTC
    Column("period_end", DateTime, nullable=False),
    Column("quantity", BigInteger, nullable=False),  # 1e-6 units, metered
    # of which resource packages covered (SET-10; traced in package_uses): not charged
    Column("package_quantity", BigInteger, nullable=False, server_default=text("0")),
    Column("price_kind", String(10), nullable=False),  # list | contract | fixed
    Column("unit_price", BigInteger, nullable=False),  # 1e-8 yuan
    Column("list_amount", BigInteger, nullable=False),  # original cost, 1e-8 yuan
    Column("discount_bp", Integer, nullable=False),
    Column("discounted_amount", BigInteger, nullable=False),  # 1e-8 yuan
    Column("deducted", BigInteger, nullable=False),  # fen: this line's share of the rounded total
    Column("rounding_diff", BigInteger, nullable=False),  # 1e-8: deducted*1e6 - discounted
    Column("voucher_paid", BigInteger, nullable=False),  # fen postpaid coupons paid (SET-6)
    Column("cash_paid", BigInteger, nullable=False),
    Column("gift_paid", BigInteger, nullable=False),
    Column("credit_paid", BigInteger, nullable=False),  # part of cash advanced by credit
    Column("arrears", BigInteger, nullable=False),  # shortfall that became arrears (SET-5)
    # the deduction's ledger transaction; coupons paid in full: the coupon payment's (BAL-5);
    # a correction down: its return's, or the coupon return's when only coupons got money
    # back; None when the rounded total was 0 or nothing moved
    Column("txn_id", BigInteger, nullable=True),
    Column("deducted_at", DateTime, nullable=False),
    Column("kind", String(12), nullable=False),  # charge | adjustment
    Column("sequence", Integer, nullable=False),  # 0 for charges; 1, 2, ... for adjustments
    Column("adjusts_line_id", BigInteger, nullable=True),
    Column("reason", Text, nullable=True),
    UniqueConstraint("resource_id", "billing_item", "cycle", "period_key", "kind", "sequence",
                     name="uq_bill_lines_once"),
    # of ``quantity``, what was used while the resource was stopped (ARR-3): not charged
    Column("stopped_quantity", BigInteger, nullable=False, server_default=text("0")),
    Index("ix_bill_lines_uin_period", "uin", "period_start"),
    # with id: an account's L3 page is sorted on the index alone (bills, migration 0031)
    Index("ix_bill_lines_uin_deducted", "uin", "deducted_at", "id"),
    Index("ix_bill_lines_deducted", "deducted_at"),  # a day's lines: the bills roll-up (0031)
)

# One row per account settled for a period (written in the account's transaction):
# a rerun skips these accounts (SET-8).
settled_accounts = Table(
    "settled_accounts", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("cycle", String(10), nullable=False),
    Column("period_key", String(20), nullable=False),
    Column("amount", BigInteger, nullable=False),  # fen deducted
    Column("txn_id", BigInteger, nullable=True),
    Column("settled_at", DateTime, nullable=False),
    UniqueConstraint("uin", "cycle", "period_key", name="uq_settled_accounts_once"),
)

# A period whose settlement run completed: usage for it that arrives later is late (SET-9).
settled_periods = Table(
    "settled_periods", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("cycle", String(10), nullable=False),
    Column("period_key", String(20), nullable=False),
    Column("period_start", DateTime, nullable=False),
    Column("period_end", DateTime, nullable=False),
    Column("completed_at", DateTime, nullable=False),
    UniqueConstraint("cycle", "period_key", name="uq_settled_periods_once"),
)

# BIL-3: an account's one-way switch to the usage-time statistic period (one row at
# most per account, never updated or deleted: the switch cannot be undone).
statistic_period_switches = Table(
    "statistic_period_switches", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("switched_in", String(7), nullable=False),  # YYYY-MM, business time
    Column("switched_at", DateTime, nullable=False),  # naive UTC
    Column("requested_by", String(10), nullable=False),  # customer | operator
    Column("actor", String(200), nullable=False),  # who made it (Actor.label)
    Column("acknowledgement_version", String(40), nullable=False),  # the rules shown
    Column("request_note", Text, nullable=True),  # an operator's: the customer's request
    UniqueConstraint("uin", name="uq_statistic_period_switches_uin"),
)

# FRZ-5, monthly freeze settlement (settlement/monthly_freeze.py): one row per charge
# (a cycle's, or a late adjustment's) of a monthly-freeze product, whose cost was frozen
# (hold) instead of deducted, what the balances could not cover being the shortfall;
# and one per correction down (SET-9), a negative cost, nothing frozen. The month's
# rows are released and their cost deducted on the settlement day of the next month.
monthly_freezes = Table(
    "monthly_freezes", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("product_code", String(40), nullable=False),
    Column("month", String(7), nullable=False),  # YYYY-MM of the period, business time
    Column("cycle", String(10), nullable=False),  # hour | day | month
    Column("period_key", String(20), nullable=False),
    Column("kind", String(12), nullable=False),  # charge | adjustment | correction
    Column("charge_key", String(200), nullable=False),  # the settlement transaction's key
    # fen the charge came to (after coupons); a correction: minus what it lowered
    Column("cost", BigInteger, nullable=False),
    Column("frozen", BigInteger, nullable=False),  # fen frozen (gift, then cash)
    Column("shortfall", BigInteger, nullable=False),  # cost - frozen: the balances were short
    Column("hold_id", BigInteger, nullable=True),  # the freeze; None when nothing was frozen
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("charge_key", name="uq_monthly_freezes_charge_key"),
    Index("ix_monthly_freezes_month", "month", "uin"),
)

# FRZ-5: one row per (account, product, month) settled: its freezes released and its
# cost deducted, written in the same transaction (a rerun skips it).
monthly_freeze_settlements = Table(
    "monthly_freeze_settlements", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("product_code", String(40), nullable=False),
    Column("month", String(7), nullable=False),
    Column("cost", BigInteger, nullable=False),  # fen deducted: the month's actual cost
    Column("released", BigInteger, nullable=False),  # fen of freezes released
    Column("txn_id", BigInteger, nullable=True),  # the deduction's; None: the cost was 0
    Column("settled_at", DateTime, nullable=False),
    UniqueConstraint("uin", "product_code", "month", name="uq_monthly_freeze_settlements_once"),
)
