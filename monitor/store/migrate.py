"""Schema migrations, driven from code: Alembic owns the schema (``migrations/``).

``upgrade`` is idempotent and cheap when the database is already at head, so every
process calls it at start-up; on PostgreSQL concurrent upgrades are serialised by an
advisory lock taken in ``migrations/env.py`` (and within one process by a thread lock).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

import migrations
from monitor.store.db import make_engine, normalize_url
from monitor.store.models import Base

SCRIPT_LOCATION = str(Path(migrations.__file__).resolve().parent)
# Alembic keeps its migration context in module globals: one upgrade at a time per process.
_UPGRADE_LOCK = threading.Lock()


def alembic_config(url_or_engine: str | Engine) -> AlembicConfig:
    """An Alembic config pointing at the installed ``migrations`` package and the given database."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if isinstance(url_or_engine, Engine):
        cfg.attributes["engine"] = url_or_engine
    else:
        # attributes, not set_main_option: configparser would choke on '%' in passwords
        cfg.attributes["url"] = normalize_url(url_or_engine)
    return cfg


def upgrade(engine_or_url: str | Engine, revision: str = "head") -> None:
    with _UPGRADE_LOCK:
        command.upgrade(alembic_config(engine_or_url), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_drift(engine: Engine | str) -> list[Any]:
    """Autogenerate diffs between the live database and the models; empty means in sync."""
    owned = isinstance(engine, str)
    bound = make_engine(engine) if isinstance(engine, str) else engine
    try:
        with bound.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        if owned:
            bound.dispose()
