"""Tables owned by recharges: the recharges (a mini-program one bound to its creator,
RCH-4), the provider notifications received
(the raw log, refused ones included: RCH-5) and the frequency-control blocks (RCH-3)."""

from sqlalchemy import (
                        BigInteger,
                        Boolean,
                        Column,
                        DateTime,
                        ForeignKey,
                        Index,
                        String,
                        Table,
                        Text,
)

from feecenter.db.base import IdType, metadata

recharges = Table(
    "recharges", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),          # fen
    Column("channel", String(20), nullable=False),
    Column("payer", String(128), nullable=False),          # payer identity limits count by
    Column("out_trade_no", String(32), nullable=False, unique=True),
    Column("state", String(10), nullable=False),           # pending | paid | failed | closed
    Column("fail_reason", Text, nullable=True),            # the provider's reason (RCH-6)
    Column("provider_txn_id", String(64), nullable=True),
    Column("provider_payer", String(128), nullable=True),  # who the provider says paid
    Column("intl_card", Boolean, nullable=False),          # an international card (RCH-2/6)
    Column("code_url", Text, nullable=True),
    Column("source", String(20), nullable=False, server_default="qr"),  # qr | mini_program
    Column("bound_payer", String(128), nullable=True),     # the only payer allowed (RCH-4)
    Column("prepay_id", String(64), nullable=True),        # a JSAPI payment's (mini-program)
    Column("txn_id", IdType, ForeignKey("ledger_transactions.id"), nullable=True),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("paid_at", DateTime, nullable=True),
    Column("ended_at", DateTime, nullable=True),           # failed or closed
    Index("ix_recharges_uin_created", "uin", "created_at"),
    Index("ix_recharges_payer_created", "payer", "created_at"),
    Index("ix_recharges_state_expires", "state", "expires_at"),
)

recharge_notifications = Table(
    "recharge_notifications", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("channel", String(20), nullable=False),
    Column("notification_id", String(64), nullable=True),
    Column("out_trade_no", String(64), nullable=True),
    Column("recharge_id", IdType, nullable=True),
    Column("outcome", String(20), nullable=False),   # credited | duplicate | refused
    Column("reason", Text, nullable=True),
    Column("body", Text, nullable=False),            # as received (its resource stays encrypted)
    Column("received_at", DateTime, nullable=False),
    Index("ix_recharge_notifications_recharge", "recharge_id"),
)

recharge_blocks = Table(
    "recharge_blocks", metadata,
    Column("uin", BigInteger, primary_key=True, autoincrement=False),
    Column("blocked_until", DateTime, nullable=False),
    Column("payers", BigInteger, nullable=False),    # distinct payers that started the block
    Column("updated_at", DateTime, nullable=False),
)
