"""Tables owned by renewal: each resource's auto-renew flag and period
(``renewal_settings``, no row: the account's default) and each account's default
flag and unified expiry day (``renewal_accounts``)."""

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Index, Integer, String, Table

from feecenter.db.base import metadata

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
