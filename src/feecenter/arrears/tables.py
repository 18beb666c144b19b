"""Tables owned by arrears: the account's arrears cases and its events (ARR-3)."""

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, String, Table, Text

from feecenter.db.base import IdType, metadata

arrears_cases = Table(
    "arrears_cases", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    # When the arrears began (from the ledger: the posting that took the arrears
    # account below zero), not when the job noticed them.
    Column("started_at", DateTime, nullable=False),
    Column("opened_at", DateTime, nullable=False),  # when the case was opened (dunning sent)
    Column("ended_at", DateTime, nullable=True),
    Column("state", String(10), nullable=False),  # open | closed
    # The uin while the case is open, NULL once closed: at most one open case per account
    # (a plain unique column, so both backends enforce it without partial indexes).
    Column("open_uin", BigInteger, nullable=True, unique=True),
    Column("arrears_at_open", BigInteger, nullable=False),  # fen owed when opened
    Index("ix_arrears_cases_uin_id", "uin", "id"),
)

account_events = Table(
    "account_events", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("case_id", IdType, ForeignKey("arrears_cases.id"), nullable=True),
    # dunning | stop_warning | stopped | destroy_warning | destroyed | restarted | restored
    Column("kind", String(30), nullable=False),
    Column("resource_id", String(40), nullable=True),
    Column("at", DateTime, nullable=False),
    Column("detail", Text, nullable=False),  # JSON object
    # "{case_id}:{kind}:{resource_id or -}": a step happens once per case and resource
    Column("step_key", String(120), nullable=False, unique=True),
    Column("notification_key", String(200), nullable=True),
    Index("ix_account_events_uin_id", "uin", "id"),
)
