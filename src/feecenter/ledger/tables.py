"""Tables owned by the ledger."""

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, ForeignKey, Index, Integer,
                        String, Table, Text)

from feecenter.db.base import IdType, metadata

ledger_accounts = Table(
    "ledger_accounts", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("code", String(120), nullable=False, unique=True),
    Column("uin", BigInteger, nullable=True, index=True),
    Column("kind", String(40), nullable=False),
    # Bounds a balance must stay within (NULL: unbounded). Checked on every change.
    Column("min_balance", BigInteger, nullable=True),
    Column("max_balance", BigInteger, nullable=True),
    # cached: balance kept in the row (customer accounts). Platform-wide accounts are
    # not cached (no hot row): their balance is summed from postings.
    Column("cached", Boolean, nullable=False),
    Column("balance", BigInteger, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False),
)

ledger_transactions = Table(
    "ledger_transactions", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("request_hash", String(64), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("uin", BigInteger, nullable=True),
    Column("reference", String(200), nullable=True),
    Column("memo", Text, nullable=True),
    Column("reverses_txn_id", IdType, ForeignKey("ledger_transactions.id"), nullable=True,
           unique=True),
    Column("created_at", DateTime, nullable=False),
    Index("ix_ledger_transactions_uin_id", "uin", "id"),
)

ledger_postings = Table(
    "ledger_postings", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("txn_id", IdType, ForeignKey("ledger_transactions.id"), nullable=False, index=True),
    Column("account_id", IdType, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("uin", BigInteger, nullable=True),
    Column("amount", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=True),
    Index("ix_ledger_postings_account_id_id", "account_id", "id"),
)

ledger_holds = Table(
    "ledger_holds", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("uin", BigInteger, nullable=True, index=True),
    Column("state", String(10), nullable=False),  # pending | posted | voided
    Column("amount", BigInteger, nullable=False),
    Column("posted_amount", BigInteger, nullable=True),
    Column("hold_txn_id", IdType, ForeignKey("ledger_transactions.id"), nullable=False),
    Column("settle_txn_id", IdType, ForeignKey("ledger_transactions.id"), nullable=True),
    Column("reference", String(200), nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("settled_at", DateTime, nullable=True),
)

ledger_hold_legs = Table(
    "ledger_hold_legs", metadata,
    Column("hold_id", IdType, ForeignKey("ledger_holds.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("source_account_id", IdType, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("escrow_account_id", IdType, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
)
