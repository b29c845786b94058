"""Alembic migrations: the only place the schema changes (run them with ``monitor.store.migrate``)."""
