"""Alembic environment, configured from code (``monitor.store.migrate.alembic_config``), no alembic.ini.

The database comes from the config attributes: ``connection`` (an open Connection), ``engine``,
or ``url``; the ``sqlalchemy.url`` main option is the fallback for offline ``--sql`` runs.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, text

from monitor.store.db import make_engine
from monitor.store.models import Base, UTCDateTime

#: Serialises concurrent upgrades (several agents starting at once) on PostgreSQL.
PG_MIGRATION_LOCK_ID = 0x67656E737461  # "gensta"

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render UTCDateTime as its plain storage type, so migrations do not import model code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        render_item=render_item,
        **kwargs,
    )


def run_migrations_offline() -> None:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    _configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"},
               render_as_batch=url is not None and url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": PG_MIGRATION_LOCK_ID})
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = config.attributes.get("engine")
    owned = engine is None
    if owned:
        url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("no database given to Alembic: use monitor.store.migrate.alembic_config(url)")
        engine = make_engine(url)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        if owned:
            engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
