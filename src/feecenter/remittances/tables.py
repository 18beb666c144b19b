"""Tables owned by remittances: each account's receiving code (RMT-1), the statement
imports, one record per incoming transfer with its state (RMT-2..8), the payer
names an account registered by signing the third-party payment agreement (RMT-4/5),
and the cases of remittances/cases.py: refunds to the payer (RMT-11), wrong-account
claims (RMT-9) and legacy remittances credited by forms (RMT-10)."""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from feecenter.db.base import IdType, metadata

# RMT-1: the 10-digit code (9 digits + a Luhn check digit) of an account's 25-digit
# receiving numbers (each configured 15-digit prefix + the code), allocated on first use.
remittance_codes = Table(
    "remittance_codes", metadata,
    Column("uin", BigInteger, primary_key=True, autoincrement=False),
    Column("code", String(10), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
)

# One statement file (or pushed batch) imported: who, when, what it held.
remittance_imports = Table(
    "remittance_imports", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("source", String(40), nullable=False),      # mt940 | camt053 | push | …
    Column("digest", String(64), nullable=False),      # of the file as received (sha256)
    Column("operator", String(200), nullable=False),
    Column("imported_at", DateTime, nullable=False),
    Column("lines", BigInteger, nullable=False),
    Column("credited", BigInteger, nullable=False),
    Column("unassigned", BigInteger, nullable=False),
    Column("pending", BigInteger, nullable=False),
    Column("held", BigInteger, nullable=False),
    Column("not_ours", BigInteger, nullable=False),
    Column("duplicates", BigInteger, nullable=False),
    Column("new_fen", BigInteger, nullable=False),       # CNY of the new transfers
    Column("credited_fen", BigInteger, nullable=False),
    Index("ix_remittance_imports_digest", "digest"),
)

remittances = Table(
    "remittances", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("receiving_account", String(40), nullable=False),
    Column("bank_reference", String(64), nullable=False),
    Column("content_digest", String(64), nullable=False),  # rules.content_digest
    Column("import_id", IdType, ForeignKey("remittance_imports.id"), nullable=False),
    Column("line", BigInteger, nullable=False),
    Column("payee_account", String(64), nullable=False),
    Column("payer_name", String(200), nullable=False),
    Column("payer_account", String(64), nullable=False),
    Column("payer_bank", String(200), nullable=False),
    Column("amount", BigInteger, nullable=False),          # minor units of currency
    Column("currency", String(3), nullable=False),
    Column("memo", String(500), nullable=False),
    Column("value_date", Date, nullable=False),
    Column("uin", BigInteger, nullable=True),               # whose, once known
    Column("state", String(24), nullable=False),            # rules.STATES
    Column("reason", Text, nullable=True),                  # why it waits or failed
    Column("reviews", BigInteger, nullable=False, server_default="0"),  # re-verifications asked
    Column("arrived_at", DateTime, nullable=False),         # imported
    Column("flagged_at", DateTime, nullable=True),          # unresolved 1 day after arrival
    Column("assigned_by", String(200), nullable=True),
    Column("released_by", String(200), nullable=True),
    Column("credited_at", DateTime, nullable=True),
    Column("arrival_txn_id", IdType, ForeignKey("ledger_transactions.id"), nullable=True),
    Column("txn_id", IdType, ForeignKey("ledger_transactions.id"), nullable=True),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("receiving_account", "bank_reference",
                     name="uq_remittances_receiving_account_reference"),
    Index("ix_remittances_uin_id", "uin", "id"),
    Index("ix_remittances_state_arrived", "state", "arrived_at"),
)

# RMT-4/5: the payer names an account registered (the third-party payment agreement
# signed by whom, when); a removed one stays for the record.
remittance_payers = Table(
    "remittance_payers", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("name", String(200), nullable=False),        # as entered
    Column("normalized", String(400), nullable=False),  # rules.normalize_name
    Column("signed_by", String(200), nullable=False),
    Column("signed_at", DateTime, nullable=False),
    Column("removed_by", String(200), nullable=True),
    Column("removed_at", DateTime, nullable=True),
    UniqueConstraint("uin", "normalized", name="uq_remittance_payers_uin_normalized"),
)

# RMT-2: every signed push of one transfer as received, accepted or refused (forged,
# replayed, late, malformed); ``nonce`` is set once the signature verified (the
# claim: a second push with it is a replay), NULL for a refused forgery.
remittance_pushes = Table(
    "remittance_pushes", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("received_at", DateTime, nullable=False),
    Column("nonce", String(64), nullable=True, unique=True),      # claimed (signature valid)
    Column("presented_nonce", String(80), nullable=False),        # as sent, cut to 80
    Column("outcome", String(12), nullable=False),                # push_log.OUTCOMES
    Column("reason", Text, nullable=True),
    Column("body_digest", String(64), nullable=False),            # sha256 of the raw body
    Column("bank_reference", String(64), nullable=True),
    Column("remittance_id", IdType, ForeignKey("remittances.id"), nullable=True),
    Index("ix_remittance_pushes_received", "received_at"),
)

# RMT-11: a record refunded to the payer, once (the primary key), with where the
# money goes, who confirmed it and the day it must arrive by (15 working days).
remittance_refunds = Table(
    "remittance_refunds", metadata,
    Column("remittance_id", IdType, ForeignKey("remittances.id"), primary_key=True,
           autoincrement=False),
    Column("uin", BigInteger, nullable=True),             # None: unassigned money
    Column("request_id", IdType, nullable=True),           # the service request, if any
    Column("amount", BigInteger, nullable=False),          # minor units of currency
    Column("currency", String(3), nullable=False),
    Column("payout", Text, nullable=False),                # JSON: holder, account, bank, ...
    Column("reason", Text, nullable=False),
    Column("confirmed_by", String(200), nullable=False),
    Column("confirmed_at", DateTime, nullable=False),
    Column("arrives_by", Date, nullable=False),            # 15 working days after
    Column("txn_id", IdType, ForeignKey("ledger_transactions.id"), nullable=True),
)

# RMT-9: a remittance that landed in another account, claimed by the rightful one:
# the original record (refunded) and the claimant's new one (credited).
remittance_claims = Table(
    "remittance_claims", metadata,
    Column("request_id", IdType, primary_key=True, autoincrement=False),
    Column("remittance_id", IdType, ForeignKey("remittances.id"), nullable=False,
           unique=True),
    Column("from_uin", BigInteger, nullable=False),
    Column("to_uin", BigInteger, nullable=False),
    Column("claim_remittance_id", IdType, ForeignKey("remittances.id"), nullable=False),
    Column("credit_txn_id", IdType, ForeignKey("ledger_transactions.id"), nullable=False),
    Column("operator", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# RMT-10: a legacy transfer (paid to a bare 15-digit platform account) and what of it
# forms have not credited yet; ``remaining`` only falls, by a conditional UPDATE.
remittance_legacy_transfers = Table(
    "remittance_legacy_transfers", metadata,
    Column("remittance_id", IdType, ForeignKey("remittances.id"), primary_key=True,
           autoincrement=False),
    Column("amount", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_within"),
)

# RMT-10: one legacy form credited (its request), from which transfer, how much.
remittance_legacy_credits = Table(
    "remittance_legacy_credits", metadata,
    Column("request_id", IdType, primary_key=True, autoincrement=False),
    Column("remittance_id", IdType, ForeignKey("remittances.id"), nullable=False),
    Column("uin", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("txn_id", IdType, ForeignKey("ledger_transactions.id"), nullable=False),
    Column("operator", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_remittance_legacy_credits_remittance", "remittance_id"),
)
