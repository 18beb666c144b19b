"""Tables owned by service_requests: the requests (工单) with their typed fields, their
history of events, their attachments (stored in the database, type sniffed), and the
months whose precision difference was compensated (SET-3, at most once per month)."""

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from feecenter.db.base import IdType, metadata

service_requests = Table(
    "service_requests", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("state", String(12), nullable=False),  # submitted|processing|resolved|rejected|withdrawn
    Column("fields", Text, nullable=False),        # JSON: the kind's validated fields
    Column("subject", String(200), nullable=True),  # what one request of its kind is about
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("due_at", DateTime, nullable=False),
    Column("overdue_at", DateTime, nullable=True),  # when the job flagged it overdue
    Column("taken_by", String(200), nullable=True),
    Column("taken_at", DateTime, nullable=True),
    Column("ended_by", String(200), nullable=True),
    Column("ended_at", DateTime, nullable=True),   # resolved, rejected or withdrawn
    Column("reason", Text, nullable=True),         # the rejection's reason, the resolution's note
    Column("result", Text, nullable=True),         # JSON: what the resolution action returned
    Index("ix_service_requests_uin_created", "uin", "created_at"),
    Index("ix_service_requests_state_due", "state", "due_at"),
    Index("ix_service_requests_kind_subject", "kind", "uin", "subject"),
)

service_request_events = Table(
    "service_request_events", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("request_id", IdType, nullable=False),
    Column("uin", BigInteger, nullable=False),
    Column("event", String(20), nullable=False),   # submitted|taken|resolved|...|overdue|attached
    Column("state", String(12), nullable=False),   # the state after the event
    Column("actor", String(200), nullable=False),
    Column("note", Text, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Index("ix_service_request_events_request", "request_id", "id"),
)

service_request_attachments = Table(
    "service_request_attachments", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("request_id", IdType, nullable=False),
    Column("uin", BigInteger, nullable=False),
    Column("filename", String(200), nullable=False),
    Column("content_type", String(40), nullable=False),  # sniffed: pdf, png or jpeg
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_service_request_attachments_request", "request_id"),
)

precision_compensations = Table(
    "precision_compensations", metadata,
    Column("uin", BigInteger, nullable=False),
    Column("month", String(7), nullable=False),    # YYYY-MM
    Column("request_id", IdType, nullable=False),
    Column("amount", BigInteger, nullable=False),  # fen credited
    Column("difference", BigInteger, nullable=False),  # the month's difference, 1e-8 yuan
    Column("txn_id", IdType, nullable=False),
    Column("created_at", DateTime, nullable=False),
    PrimaryKeyConstraint("uin", "month", name="pk_precision_compensations"),
)
