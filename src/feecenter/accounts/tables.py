"""Tables owned by accounts."""

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, String, Table, UniqueConstraint

from feecenter.db.base import IdType, metadata

customers = Table(
    "customers", metadata,
    Column("uin", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String(100), nullable=False, unique=True),
    Column("realname_state", String(12), nullable=False),  # none|personal|enterprise|abnormal
    Column("entity_name", String(200), nullable=True),
    Column("uscc", String(18), nullable=True),
    Column("email", String(200), nullable=True),
    Column("phone", String(30), nullable=True),
    Column("status", String(12), nullable=False),  # normal|restricted|cancelled (arrears: derived)
    Column("created_at", DateTime, nullable=False),
)

users = Table(
    "users", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, ForeignKey("customers.uin"), nullable=False),
    Column("login", String(100), nullable=False),
    Column("role", String(12), nullable=False),  # owner|finance|admin|readonly
    Column("kind", String(12), nullable=False),  # owner|subuser|collaborator
    Column("email", String(200), nullable=True),  # the user's own contacts (notifications)
    Column("phone", String(30), nullable=True),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("uin", "login", name="uq_users_uin_login"),
)

storefronts = Table(
    "storefronts", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, ForeignKey("customers.uin"), nullable=False),
    Column("code", String(40), nullable=False),
    Column("name", String(100), nullable=False),
    UniqueConstraint("uin", "code", name="uq_storefronts_uin_code"),
)
