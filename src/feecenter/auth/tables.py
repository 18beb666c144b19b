"""Tables owned by auth."""

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Integer, String, Table, Text

from feecenter.db.base import IdType, metadata

operators = Table(
    "operators", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("secret_id", String(64), primary_key=True),
    Column("uin", BigInteger, nullable=True, index=True),
    Column("user_id", IdType, ForeignKey("users.id"), nullable=True),
    Column("operator_id", IdType, ForeignKey("operators.id"), nullable=True),
    Column("secret_enc", Text, nullable=False),  # Fernet token, never the plain secret
    Column("state", String(10), nullable=False),  # enabled | disabled
    Column("created_at", DateTime, nullable=False),
)

# Signed nonces (X-FC-Nonce) seen inside twice the timestamp window, one row per
# sha256(secret_id, nonce) in ``signature``: a second use is a replay.
used_signatures = Table(
    "used_signatures", metadata,
    Column("signature", String(64), primary_key=True),
    Column("seen_at", DateTime, nullable=False, index=True),
)

# Console passwords (auth/sessions.py): an Argon2id hash per user that has one.
user_passwords = Table(
    "user_passwords", metadata,
    Column("user_id", IdType, ForeignKey("users.id"), primary_key=True, autoincrement=False),
    Column("password_hash", String(200), nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# Console sessions: ``id`` is the SHA-256 of the cookie's token, never the token.
console_sessions = Table(
    "console_sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", IdType, ForeignKey("users.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("last_seen_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False, index=True),
)

# Failed console logins per "user:<id>" (or "name:<account>\n<login>", lower case,
# for names that are no user): the throttle.
login_failures = Table(
    "login_failures", metadata,
    Column("key", String(200), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", DateTime, nullable=False),
    Column("locked_until", DateTime, nullable=True),
)

# Operators' console passwords and sessions (auth/operator_sessions.py), kept apart
# from customers': an operator session never opens a customer page, nor the reverse.
operator_passwords = Table(
    "operator_passwords", metadata,
    Column("operator_id", IdType, ForeignKey("operators.id"), primary_key=True,
           autoincrement=False),
    Column("password_hash", String(200), nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

operator_sessions = Table(
    "operator_sessions", metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 of the cookie's token
    Column("operator_id", IdType, ForeignKey("operators.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("last_seen_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False, index=True),
)
