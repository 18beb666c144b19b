"""Tables owned by withdrawals (WDR-2..6): the withdrawals, their legs (one per source
of money paid back, each with its own ledger hold) and the operators' payout batches
(bank payouts exported as CSV, settled by importing the bank's result). Amounts in fen.
docs/withdrawal.md."""

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, ForeignKey, Index, Integer, String,
                        Table, Text, UniqueConstraint)

from feecenter.db.base import IdType, metadata

# One withdrawal, once per (uin, request_key). route: original (原路) | offline (线下).
# state: in_progress -> paid | failed (needs review, money stays held) -> paid | returned.
# The bank fields are the offline route's account (NULL for the original route).
withdrawals = Table(
    "withdrawals", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("request_key", String(64), nullable=False),      # idempotency key
    Column("request_digest", String(64), nullable=False),   # sha256 of what was asked
    Column("route", String(10), nullable=False),             # original | offline
    Column("amount", BigInteger, nullable=False),            # fen, Σ of its legs
    Column("state", String(12), nullable=False),             # in_progress|failed|paid|returned
    Column("bank_holder", String(200), nullable=True),
    Column("bank_account_no", String(30), nullable=True),
    Column("bank_name", String(100), nullable=True),
    Column("bank_branch", String(100), nullable=True),
    Column("applied_by", String(200), nullable=False),       # the actor's label
    Column("applied_at", DateTime, nullable=False),
    Column("finished_at", DateTime, nullable=True),          # paid or returned
    Column("failure_reason", Text, nullable=True),
    UniqueConstraint("uin", "request_key", name="uq_withdrawals_uin_request_key"),
    Index("ix_withdrawals_uin_id", "uin", "id"),
    Index("ix_withdrawals_state", "state"),
)

# An operators' payout batch: the queued bank legs exported together (CSV) and
# settled when the bank's result file is imported.
payout_batches = Table(
    "payout_batches", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("legs", Integer, nullable=False),
    Column("amount", BigInteger, nullable=False),            # fen, Σ of its legs
    Column("result_imported_by", String(200), nullable=True),
    Column("result_imported_at", DateTime, nullable=True),
)

# One leg: money of one source paid back one way, held by its own ledger hold (cash ->
# platform "withdrawals_in_flight"). source: recharge (original route, through the
# recharge's channel) | remittance (original route, a bank payout to the payer) | bank
# (offline route). state: pending -> sending -> paid | failed (online refunds);
# queued -> batched -> paid | failed (bank payouts); failed -> returned (to cash).
withdrawal_legs = Table(
    "withdrawal_legs", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("withdrawal_id", IdType, ForeignKey("withdrawals.id"), nullable=False),
    Column("uin", BigInteger, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("source", String(12), nullable=False),            # recharge | remittance | bank
    Column("recharge_id", IdType, ForeignKey("recharges.id"), nullable=True),
    Column("remittance_id", IdType, ForeignKey("remittances.id"), nullable=True),
    Column("channel", String(20), nullable=False),           # recharge channel | remittance | bank
    Column("intl_card", Boolean, nullable=False),
    Column("amount", BigInteger, nullable=False),            # fen, > 0
    Column("hold_id", IdType, ForeignKey("ledger_holds.id"), nullable=False),
    Column("state", String(10), nullable=False),
    Column("out_refund_no", String(64), nullable=False, unique=True),  # our reference
    Column("provider_refund_id", String(64), nullable=True),
    Column("estimate_from", DateTime, nullable=False),
    Column("estimate_to", DateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime, nullable=True),      # the sender's next try
    Column("reason", Text, nullable=True),                   # why it failed or was returned
    Column("batch_id", IdType, ForeignKey("payout_batches.id"), nullable=True),
    Column("settled_at", DateTime, nullable=True),
    UniqueConstraint("withdrawal_id", "seq", name="uq_withdrawal_legs_withdrawal_id"),
    Index("ix_withdrawal_legs_recharge", "recharge_id"),
    Index("ix_withdrawal_legs_remittance", "remittance_id"),
    Index("ix_withdrawal_legs_state_id", "state", "id"),
    Index("ix_withdrawal_legs_uin", "uin"),
)
