"""Insert-if-absent in the connection's own dialect (SQLite or PostgreSQL).

Creating something that must exist once (a default project, a ledger account, a
job run, a settled period, a message under an idempotency key) races when two
requests create it at once: a plain INSERT makes the loser fail on the unique
key with a raw database error. ``insert_if_absent`` makes the loser's insert do
nothing; it then reads the winner's row.
"""

from __future__ import annotations

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_if_absent(conn: Connection, table: Table, index_elements=None):
    """``INSERT … ON CONFLICT [(index_elements)] DO NOTHING`` for ``table``; add
    ``.values(...)`` (and ``.returning(...)``: no row comes back when it did nothing)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=index_elements)
