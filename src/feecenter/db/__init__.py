"""Storage: engine, transactions and Alembic migrations (SQLite file or PostgreSQL)."""
