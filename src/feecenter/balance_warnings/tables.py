"""Tables owned by balance warnings: each account's settings (XTR-2). No row: the
default (warn under 5 days left, no amount)."""

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, Table

from feecenter.db.base import metadata

balance_warning_settings = Table(
    "balance_warning_settings", metadata,
    Column("uin", BigInteger, primary_key=True, autoincrement=False),
    Column("days_on", Boolean, nullable=False),  # false: the days warning is off
    Column("days", Integer, nullable=False),  # threshold in days, 1-30
    Column("amount", BigInteger, nullable=True),  # fen; NULL: no amount warning
    Column("updated_at", DateTime, nullable=False),
)
