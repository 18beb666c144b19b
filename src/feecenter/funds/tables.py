"""Tables owned by funds: the customer-facing transaction list and credit lines."""

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, String, Table, Text

from feecenter.db.base import IdType, metadata

# 收支明细: one row per customer-visible ledger transaction, written in the same
# database transaction, with the sub-balances right after it (BAL-5).
statement_entries = Table(
    "statement_entries", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("txn_id", IdType, ForeignKey("ledger_transactions.id"), nullable=False, unique=True),
    Column("action_type", String(20), nullable=False),
    Column("deduct_mode", String(20), nullable=True),
    Column("pay_channel", String(30), nullable=True),
    Column("amount", BigInteger, nullable=False),  # + money in, - money out (of available)
    Column("cash_amount", BigInteger, nullable=False),
    Column("gift_amount", BigInteger, nullable=False),
    Column("coupon_amount", BigInteger, nullable=False),
    Column("credit_amount", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),  # available balance (BAL-2)
    Column("cash_after", BigInteger, nullable=False),
    Column("gift_after", BigInteger, nullable=False),
    Column("frozen_after", BigInteger, nullable=False),
    Column("product_code", String(60), nullable=True),
    Column("billing_item", String(60), nullable=True),
    Column("order_id", String(60), nullable=True),
    Column("storefront", String(40), nullable=True),
    Column("memo", Text, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Index("ix_statement_entries_uin_created", "uin", "created_at", "id"),
    # 收支明细 filtered by type (and product): counted from the index alone
    Index("ix_statement_entries_uin_type", "uin", "action_type", "product_code", "created_at"),
)

credit_lines = Table(
    "credit_lines", metadata,
    Column("uin", BigInteger, primary_key=True, autoincrement=False),
    Column("credit_limit", BigInteger, nullable=False),
    Column("temp_credit", BigInteger, nullable=False),
    Column("temp_credit_end", DateTime, nullable=True),
    Column("updated_at", DateTime, nullable=False),
)
