"""Tables owned by coupons: coupons, redemption-code batches and codes, and coupon uses.

Money columns are BIGINT fen; discounts are basis points (``discount_bp``:
the share of the price still paid, 8000 = 8折). Every coupon-paid fen is a
row of ``coupon_uses`` (pending → confirmed or released; a refund writes a
``returned`` row), so a coupon's face amount always equals
``remaining + forfeited + pending + confirmed - returned`` (docs/coupons.md).
"""

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, ForeignKey, Index, Integer,
                        String, Table, Text, UniqueConstraint)

from feecenter.db.base import IdType, metadata

coupon_code_batches = Table(
    "coupon_code_batches", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("campaign", String(120), nullable=False),
    Column("format", String(10), nullable=False),  # wallet (8 letters) | printed (16 characters)
    Column("terms", Text, nullable=False),  # JSON: the coupon each code redeems to
    Column("count", Integer, nullable=False),
    Column("redeem_until", DateTime, nullable=True),  # codes unredeemed by then are dead
    Column("created_by", String(120), nullable=False),
    Column("created_at", DateTime, nullable=False),
    # "{operator}:{key}": a repeat creates nothing (the codes were shown once, at creation)
    Column("idempotency_key", String(200), nullable=True, unique=True),
)

coupon_codes = Table(
    "coupon_codes", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("batch_id", IdType, ForeignKey("coupon_code_batches.id"), nullable=False),
    # sha256 of the normalised code: the code itself is shown once, at creation
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("hint", String(8), nullable=False),  # last 4 characters, for operators
    Column("state", String(10), nullable=False),  # unused | redeemed
    Column("uin", BigInteger, nullable=True),  # who redeemed it
    Column("redeemed_at", DateTime, nullable=True),
    Index("ix_coupon_codes_batch_id_id", "batch_id", "id"),
)

coupons = Table(
    "coupons", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("kind", String(10), nullable=False),  # voucher | cash | discount (CPN-1)
    Column("pay_mode", String(10), nullable=False),  # prepaid | postpaid
    Column("face_amount", BigInteger, nullable=True),  # vouchers and cash coupons
    Column("discount_bp", Integer, nullable=True),  # discount coupons: share still paid
    Column("max_discount", BigInteger, nullable=True),  # discount coupons: cap over all uses
    # fen still payable; NULL only for an uncapped discount coupon (always single use)
    Column("remaining", BigInteger, nullable=True),
    Column("forfeited", BigInteger, nullable=False),  # a single-use coupon's lost rest
    Column("product_scope", String(10), nullable=False),  # only | all_but
    Column("products", Text, nullable=False),  # JSON list of product codes
    Column("order_kinds", String(40), nullable=True),  # prepaid: "new,renew,upgrade" or fewer
    Column("min_months", Integer, nullable=True),
    Column("max_months", Integer, nullable=True),
    Column("threshold", BigInteger, nullable=False),  # applicable lines of a payment total >= this
    Column("valid_from", DateTime, nullable=False),
    Column("valid_until", DateTime, nullable=False),  # exclusive; never extended
    Column("single_use", Boolean, nullable=False),
    Column("state", String(10), nullable=False),  # unused | used | expired
    Column("source_kind", String(10), nullable=False),  # campaign | code
    Column("source", String(120), nullable=False),  # campaign name
    Column("code_id", IdType, ForeignKey("coupon_codes.id"), nullable=True, unique=True),
    # "{uin}:{key}" of the operator's grant: a repeat grants nothing more
    Column("idempotency_key", String(200), nullable=True, unique=True),
    Column("created_by", String(120), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_coupons_uin_state", "uin", "state"),
    Index("ix_coupons_state_valid_until", "state", "valid_until"),
)

coupon_uses = Table(
    "coupon_uses", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("coupon_id", IdType, ForeignKey("coupons.id"), nullable=False),
    Column("reference", String(200), nullable=False),  # the line's order id or settlement key
    Column("idempotency_key", String(200), nullable=False),  # the reservation (or refund) key
    Column("seq", Integer, nullable=False),  # position within that key's rows
    Column("line_index", Integer, nullable=False),  # the line of the payment it paid
    Column("request_hash", String(64), nullable=False),
    Column("product_code", String(40), nullable=False),
    Column("entity", String(40), nullable=False),  # selling entity: whose revenue it pays
    Column("amount", BigInteger, nullable=False),  # fen, positive
    Column("state", String(10), nullable=False),  # pending | confirmed | released | returned
    Column("returns_use_id", IdType, ForeignKey("coupon_uses.id"), nullable=True),
    Column("txn_id", IdType, nullable=True),  # ledger transaction of a confirm or a return
    Column("created_at", DateTime, nullable=False),
    Column("settled_at", DateTime, nullable=True),  # confirmed, released or returned
    UniqueConstraint("uin", "idempotency_key", "seq", name="uq_coupon_uses_key_seq"),
    Index("ix_coupon_uses_uin_reference", "uin", "reference"),
    Index("ix_coupon_uses_coupon_id", "coupon_id"),
)
