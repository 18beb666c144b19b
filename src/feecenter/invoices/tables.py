"""Tables owned by invoices (INV-1..9). Amounts in fen, tax-inclusive; a red
(negative) invoice has negative amounts. Every table carries the account's ``uin``."""

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Index, Integer, String, Table, Text,
                        UniqueConstraint, text)

from feecenter import ratelimit
from feecenter.db.base import IdType, metadata

# The one valid title of an account (INV-3): equal to its verified entity; an
# enterprise title carries the special-invoice details (INV-2) when complete.
invoice_titles = Table(
    "invoice_titles", metadata,
    Column("uin", BigInteger, primary_key=True, autoincrement=False),
    Column("title_kind", String(12), nullable=False),  # personal | enterprise
    Column("title", String(200), nullable=False),
    Column("tax_id", String(20), nullable=True),  # USCC / taxpayer ID (enterprise)
    Column("address", String(200), nullable=True),
    Column("phone", String(30), nullable=True),
    Column("bank", String(100), nullable=True),
    Column("bank_account", String(40), nullable=True),
    Column("updated_by", String(200), nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# Invoice emails (INV-5): several per account, at most one default; none set: the
# account's contact email is the default.
invoice_emails = Table(
    "invoice_emails", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("email", String(200), nullable=False),
    Column("is_default", Boolean, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("uin", "email", name="uq_invoice_emails_uin_email"),
)

# The account's invoice settings: automatic issuing (自动开票, INV-5).
invoice_settings = Table(
    "invoice_settings", metadata,
    Column("uin", BigInteger, primary_key=True, autoincrement=False),
    Column("auto_issue", Boolean, nullable=False),
    Column("auto_issue_kind", String(10), nullable=False),  # ordinary | special
    Column("updated_at", DateTime, nullable=False),
)

# One application (申请开票), once per (uin, request_key): split into one invoice per
# selling entity, each with a line per tax category (INV-4).
invoice_applications = Table(
    "invoice_applications", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("request_key", String(64), nullable=False),  # idempotency key
    Column("kind", String(10), nullable=False),  # ordinary | special
    Column("amount", BigInteger, nullable=False),  # fen, the sum of its invoices
    Column("email", String(200), nullable=False),  # where the invoices are sent
    Column("automatic", Boolean, nullable=False),  # made by automatic issuing
    Column("applied_by", String(200), nullable=False),  # the actor's label
    Column("applied_at", DateTime, nullable=False),
    UniqueConstraint("uin", "request_key", name="uq_invoice_applications_uin_request_key"),
)

# An invoice: blue (ordinary | special) or red (the negative of a reversed one).
# state: applied -> issuing -> issued; an issued blue one becomes reversed when its
# red invoice is released (INV-6). The title and details are a snapshot.
invoices = Table(
    "invoices", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("application_id", BigInteger, nullable=True),  # NULL for a red invoice
    Column("kind", String(10), nullable=False),  # ordinary | special | red
    Column("state", String(10), nullable=False),  # applied | issuing | issued | reversed
    Column("entity", String(40), nullable=False),  # selling entity (issuer)
    Column("title_kind", String(12), nullable=False),
    Column("title", String(200), nullable=False),
    Column("tax_id", String(20), nullable=True),
    Column("address", String(200), nullable=True),
    Column("phone", String(30), nullable=True),
    Column("bank", String(100), nullable=True),
    Column("bank_account", String(40), nullable=True),
    Column("email", String(200), nullable=False),
    Column("amount", BigInteger, nullable=False),  # fen, tax-inclusive (red: negative)
    Column("net_amount", BigInteger, nullable=False),  # fen, without tax
    Column("tax_amount", BigInteger, nullable=False),  # fen
    Column("original_id", BigInteger, nullable=True),  # red: the blue invoice it reverses
    Column("invoice_code", String(12), nullable=True),  # set when issued
    Column("invoice_number", String(20), nullable=True),  # set when issued, unique
    Column("check_code", String(20), nullable=True),  # set when issued
    Column("applied_at", DateTime, nullable=False),
    Column("issuing_at", DateTime, nullable=True),  # claimed by the issuing job
    Column("issued_at", DateTime, nullable=True),
    Column("flagged_at", DateTime, nullable=True),  # not issued 30 minutes after applying
    Column("emailed_at", DateTime, nullable=True),
    UniqueConstraint("invoice_number", name="uq_invoices_invoice_number"),
    UniqueConstraint("application_id", "entity", name="uq_invoices_application_entity"),
    UniqueConstraint("original_id", name="uq_invoices_original_id"),  # one red per blue
    Index("ix_invoices_uin_applied", "uin", "applied_at"),
    Index("ix_invoices_state", "state"),
)

# An invoice's lines: one per tax category (INV-4), with the category's name, code
# and rate; amount = net_amount + tax_amount, tax from the tax-inclusive amount.
invoice_lines = Table(
    "invoice_lines", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("invoice_id", BigInteger, nullable=False),
    Column("uin", BigInteger, nullable=False),
    Column("entity", String(40), nullable=False),
    Column("tax_category", String(20), nullable=False),  # catalog.rules.TAX_CATEGORIES
    Column("item_name", String(100), nullable=False),  # 信息技术服务*云服务费
    Column("tax_code", String(20), nullable=False),  # 税收分类编码
    Column("rate_bp", Integer, nullable=False),  # 600 = 6 %
    Column("amount", BigInteger, nullable=False),  # fen, tax-inclusive
    Column("net_amount", BigInteger, nullable=False),
    Column("tax_amount", BigInteger, nullable=False),
    Index("ix_invoice_lines_invoice", "invoice_id"),
    Index("ix_invoice_lines_uin", "uin", "entity", "tax_category"),
)

# The next invoice number per selling entity and year: taken with a conditional
# UPDATE in the transaction that issues, so a number is used once and never skipped.
invoice_counters = Table(
    "invoice_counters", metadata,
    Column("entity", String(40), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("next_value", BigInteger, nullable=False),
)

# A reversal (退票, INV-6) of an issued blue invoice, at most one open or released per
# invoice (a rejected one may be followed by a corrected one):
# submitted | red_letter_pending (deducted, waiting for its red-letter confirmation
# number) -> released (the red invoice made) | rejected (with the reason).
invoice_reversals = Table(
    "invoice_reversals", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("invoice_id", BigInteger, nullable=False),
    Column("state", String(20), nullable=False),
    Column("treatment", String(10), nullable=False),  # deducted | booked | none
    Column("red_letter_no", String(30), nullable=True),  # 红字确认单编号
    Column("reason", String(20), nullable=False),  # wrong_details | invoice_debt
    Column("explanation", Text, nullable=False),
    Column("submitted_by", String(200), nullable=False),
    Column("submitted_at", DateTime, nullable=False),
    Column("decided_by", String(200), nullable=True),
    Column("decided_at", DateTime, nullable=True),
    Column("reject_reason", Text, nullable=True),
    Column("red_invoice_id", BigInteger, nullable=True),
    Index("uq_invoice_reversals_invoice_id", "invoice_id", unique=True,
          sqlite_where=text("state <> 'rejected'"), postgresql_where=text("state <> 'rejected'")),
    Index("ix_invoice_reversals_state", "state"),
    Index("ix_invoice_reversals_uin", "uin"),
)

# Public verification attempts (INV-8), counted per client and minute for the rate limit.
# INV-8's attempts per client and minute: the shared limiter's table (feecenter.ratelimit
# owns it; named for its first user, migration 0032)
invoice_verifications = ratelimit.invoice_verifications
