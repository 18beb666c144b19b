"""The Alembic revisions build exactly the schema the tables declare.

Revisions after 0001 are written by hand; this catches a table change that
forgot its revision (or a revision that drifted from its table)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from feecenter.db.migrate import current_revision, head_revision
from feecenter.db.base import id_sequence
from feecenter.db.schema import metadata


def test_migrated_database_matches_the_declared_tables(engine):
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_id_sequences_are_named_as_the_hot_paths_name_them(engine):
    """db.base.id_sequence names the sequence of every autoincrement id as PostgreSQL
    does; the payment and the ledger's id reservations take ids from them."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no sequences: its ids follow the highest rowid")
    tables = [t.name for t in metadata.sorted_tables
              if "id" in t.c and t.c.id.primary_key and t.c.id.autoincrement is True]
    assert {"payments", "ledger_transactions", "ledger_holds"} <= set(tables)
    with engine.connect() as conn:
        for table in tables:
            named = conn.exec_driver_sql(f"SELECT {id_sequence(table)}::text").scalar_one()
            found = conn.exec_driver_sql(
                f"SELECT pg_get_serial_sequence('{table}', 'id')::regclass::text").scalar_one()
            assert named == found, table
