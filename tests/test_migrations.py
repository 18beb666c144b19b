"""The Alembic revisions build exactly the schema the tables declare.

Revisions after 0001 are written by hand; this catches a table change that
forgot its revision (or a revision that drifted from its table)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from feecenter.db.migrate import current_revision, head_revision
from feecenter.db.schema import metadata


def test_migrated_database_matches_the_declared_tables(engine):
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []
