"""The one SQLAlchemy MetaData every domain package declares its tables on."""

from sqlalchemy import BigInteger, Integer, MetaData

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

# BIGINT primary keys that autoincrement on SQLite too (there only INTEGER is the rowid).
IdType = BigInteger().with_variant(Integer(), "sqlite")


def id_sequence(table: str) -> str:
    """The PostgreSQL sequence behind ``table``'s autoincrement ``id``, as a regclass
    literal for ``nextval``: the name PostgreSQL gives a BIGSERIAL column's sequence.
    Resolved when a statement is parsed, once, where ``pg_get_serial_sequence`` looks
    it up in the catalog on every call (tests/test_migrations.py checks the names)."""
    return f"'{table}_id_seq'::regclass"
