"""Alembic environment: runs migrations on the engine handed over by db.migrate."""

from alembic import context

from feecenter.db.schema import metadata

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite",
                      compare_type=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # a migration may rewrite or index a big table: no statement_timeout
            # (db.engine sets one per connection; this lasts the migration's transaction)
            connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        context.run_migrations()
    connection.commit()
