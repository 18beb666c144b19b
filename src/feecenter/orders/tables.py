"""Tables owned by orders."""

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Index, Integer, String, Table,
                        Text, text)

from feecenter.db.base import IdType, metadata

orders = Table(
    "orders", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("big_deal_id", BigInteger, nullable=True),  # orders created together (大订单)
    Column("kind", String(12), nullable=False),  # new|renew|upgrade|downgrade|refund
    Column("state", String(16), nullable=False),
    Column("product_code", String(40), nullable=False),
    Column("region", String(40), nullable=False),
    Column("spec_item", String(60), nullable=False),
    # an upgrade's spec when priced (revision 0009; NULL for other kinds and older upgrades)
    Column("from_spec_item", String(60), nullable=True),
    Column("quantity", BigInteger, nullable=False),  # 1e-6 units
    Column("months", Integer, nullable=True),
    Column("resource_id", String(40), nullable=False),
    Column("resource_name", String(120), nullable=True),
    Column("tags", Text, nullable=True),
    Column("project_id", BigInteger, nullable=False),
    Column("project_name", String(100), nullable=False),  # at order time (SET-7)
    Column("price_kind", String(10), nullable=False),  # list|contract|fixed
    Column("unit_price", BigInteger, nullable=True),  # 1e-8 yuan per unit (per month)
    Column("list_amount", BigInteger, nullable=False),  # fen
    Column("discount_bp", Integer, nullable=False),
    Column("amount", BigInteger, nullable=False),  # fen; negative for refunds and downgrades
    Column("paid_coupon", BigInteger, nullable=False, default=0),
    Column("paid_gift", BigInteger, nullable=False, default=0),
    Column("paid_cash", BigInteger, nullable=False, default=0),
    Column("paid_credit", BigInteger, nullable=False, default=0),
    Column("refunded_gift", BigInteger, nullable=False, default=0),
    Column("refunded_cash", BigInteger, nullable=False, default=0),
    Column("hold_id", IdType, nullable=True),
    Column("payment_id", IdType, nullable=True),
    Column("service_start", DateTime, nullable=True),
    Column("service_end", DateTime, nullable=True),
    Column("promo", Boolean, nullable=False, default=False),
    # a renewal aligned to the account's unified expiry day (RNW-5, revision 0027): the day,
    # and the fen of the extra days in ``amount``; NULL: not aligned
    Column("unified_day", Integer, nullable=True),
    Column("unified_extra", BigInteger, nullable=True),
    Column("creator", String(120), nullable=False),
    Column("failure_reason", Text, nullable=True),
    # refunds and downgrades run at once: the customer's key makes a retry return this order
    Column("idempotency_key", String(200), nullable=True, unique=True),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=True),
    Column("paid_at", DateTime, nullable=True),
    Column("closed_at", DateTime, nullable=True),  # delivered, failed, refunded, expired, voided
    Index("ix_orders_uin_created", "uin", "created_at"),
    Index("ix_orders_resource", "resource_id"),
    # cost-bill lines by deduction (delivery) time: an account's month, a day (0031)
    Index("ix_orders_uin_closed", "uin", "closed_at"),
    Index("ix_orders_closed", "closed_at"),
    # the expiry job's (ORD-2); a paid order leaves it (revision 0008)
    Index("ix_orders_unpaid_expires", "expires_at", postgresql_where=text("state = 'unpaid'"),
          sqlite_where=text("state = 'unpaid'")),
)

payments = Table(
    "payments", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("request_hash", String(64), nullable=False),
    Column("order_ids", Text, nullable=False),  # JSON list
    Column("amount", BigInteger, nullable=False),
    Column("coupon", BigInteger, nullable=False),
    Column("gift", BigInteger, nullable=False),
    Column("cash", BigInteger, nullable=False),
    Column("credit", BigInteger, nullable=False),
    Column("created_at", DateTime, nullable=False),
)
