"""Tables owned by renewal: each resource's auto-renew flag and period
(``renewal_settings``, no row: the account's default) and each account's default
flag and unified expiry day (``renewal_accounts``), and each auto-renewal's
outcome per resource and term (``renewal_attempts``, RNW-1/RNW-2)."""

from sqlalchemy import (BigInteger, Boolean, Column, Date, DateTime, Index, Integer, String, Table,
                        Text)

from feecenter.db.base import IdType, metadata

renewal_settings = Table(
    "renewal_settings", metadata,
    Column("resource_id", String(40), primary_key=True),
    Column("uin", BigInteger, nullable=False),
    Column("auto_renew", Boolean, nullable=False),
    Column("months", Integer, nullable=True),  # the auto-renewal's term; NULL: 1 month
    Column("updated_at", DateTime, nullable=False),
    Index("ix_renewal_settings_uin", "uin"),
)

renewal_accounts = Table(
    "renewal_accounts", metadata,
    Column("uin", BigInteger, primary_key=True),
    Column("auto_renew_default", Boolean, nullable=False),  # for resources without a setting
    Column("unified_day", Integer, nullable=True),  # RNW-5: day of the month, 1-28; NULL: off
    Column("updated_at", DateTime, nullable=False),
)

# One row per resource and term it was auto-renewed past (its expiry then, ``term_end``):
# the last outcome, "renewed" (with its order) or "failed" (with the domain error's
# code and message), and the business days it was tried on (RNW-2: daily).
renewal_attempts = Table(
    "renewal_attempts", metadata,
    Column("resource_id", String(40), primary_key=True),
    Column("term_end", DateTime, primary_key=True),  # naive UTC: the expiry renewed past
    Column("uin", BigInteger, nullable=False),
    Column("state", String(10), nullable=False),  # renewed | failed
    Column("reason_code", String(40), nullable=True),  # the error's code when failed
    Column("reason", Text, nullable=True),  # its message, zh-CN / en
    Column("tries", Integer, nullable=False),  # business days tried
    Column("last_tried_on", Date, nullable=False),  # business day
    Column("order_id", IdType, nullable=True),  # the paid renewal order when renewed
    Column("updated_at", DateTime, nullable=False),
    Index("ix_renewal_attempts_uin", "uin"),
)
