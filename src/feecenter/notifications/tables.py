"""Tables owned by notifications.

``in_site_messages`` is the stored, listable record of every notification
(the notification rule, docs/notifications.md: an in-site message always). ``notification_outbox`` holds one
row per email or SMS to send, written in the same transaction as the event
and sent later by ``deliver_pending``.
"""

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, String, Table, Text

from feecenter.db.base import IdType, metadata

in_site_messages = Table(
    "in_site_messages", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("idempotency_key", String(200), nullable=False, unique=True),  # the event's key
    Column("template", String(60), nullable=False),
    Column("params", Text, nullable=False),  # JSON: re-render in another language later
    Column("title", String(400), nullable=False),  # zh / en
    Column("body", Text, nullable=False),  # zh, then en
    Column("created_at", DateTime, nullable=False),
    Column("read_at", DateTime, nullable=True),  # per account, not per user
    Index("ix_in_site_messages_uin_id", "uin", "id"),
)

notification_outbox = Table(
    "notification_outbox", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("message_id", BigInteger, nullable=True),  # the in-site message of the same event
    # "{event key}|{channel}|{recipient}": the same event never notifies one recipient twice
    Column("idempotency_key", String(420), nullable=False, unique=True),
    Column("channel", String(10), nullable=False),  # email|sms
    Column("recipient", String(200), nullable=False),
    Column("template", String(60), nullable=False),
    Column("locale", String(10), nullable=False),  # zh-CN|en
    Column("subject", String(400), nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(10), nullable=False),  # pending|sent|failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime, nullable=False),
    # due time of the next attempt; while a worker sends, its lease end
    Column("next_attempt_at", DateTime, nullable=False),
    Column("sent_at", DateTime, nullable=True),
    Index("ix_notification_outbox_state_due", "state", "next_attempt_at"),
    Index("ix_notification_outbox_uin_id", "uin", "id"),
)
