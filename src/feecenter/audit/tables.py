"""Tables owned by audit."""

from sqlalchemy import BigInteger, Column, DateTime, Index, String, Table, Text

from feecenter.db.base import IdType, metadata

audit_log = Table(
    "audit_log", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("actor", String(120), nullable=False),
    Column("action", String(60), nullable=False),
    Column("uin", BigInteger, nullable=True),
    Column("detail", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_audit_log_uin_id", "uin", "id"),
)
