"""Schema migrations, driven from code: Alembic owns the schema (``migrations/``).

``upgrade`` is idempotent, so every process calls it at start-up.  A database already at head is
recognised with one query of ``alembic_version`` against the newest revision of ``migrations/versions``
(read from the scripts' own ``revision =`` lines), without importing or running Alembic: a one-shot
``genstatus probe`` does no migration work.  Anything else (an empty database, an older revision, one
newer than these scripts, several heads) goes to Alembic as before, which migrates or refuses.  On
PostgreSQL concurrent upgrades are serialised by an advisory lock taken in ``migrations/env.py`` (and
within one process by a thread lock).
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

import migrations
from monitor.store.db import make_engine, normalize_url

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

SCRIPT_LOCATION = str(Path(migrations.__file__).resolve().parent)
# Alembic keeps its migration context in module globals: one upgrade at a time per process.
_UPGRADE_LOCK = threading.Lock()
_REVISION = re.compile(r"^revision(?:\s*:\s*[\w|\[\], ]+)?\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision(?:\s*:\s*[\w|\[\], ]+)?\s*=\s*(.+)$", re.MULTILINE)


def alembic_config(url_or_engine: str | Engine) -> AlembicConfig:
    """An Alembic config pointing at the installed ``migrations`` package and the given database."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if isinstance(url_or_engine, Engine):
        cfg.attributes["engine"] = url_or_engine
    else:
        # attributes, not set_main_option: configparser would choke on '%' in passwords
        cfg.attributes["url"] = normalize_url(url_or_engine)
    return cfg


def upgrade(engine_or_url: str | Engine, revision: str = "head") -> None:
    if revision == "head" and at_head(engine_or_url):
        return
    from alembic import command

    with _UPGRADE_LOCK:
        command.upgrade(alembic_config(engine_or_url), revision)


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The one revision of ``migrations/versions`` that no other revises; None when it is not exactly one
    (a branch, or a script these patterns do not read): then Alembic decides."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for script in Path(SCRIPT_LOCATION, "versions").glob("*.py"):
        source = script.read_text(encoding="utf-8")
        found = _REVISION.search(source)
        down = _DOWN_REVISION.search(source)
        if found is None or down is None:
            return None
        revisions.add(found.group(1))
        revised.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


def at_head(engine_or_url: str | Engine) -> bool:
    """True when the database's ``alembic_version`` holds exactly the head revision (one cheap query)."""
    head = head_revision()
    if head is None:
        return False
    engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        with engine.connect() as connection:
            versions = {row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))}
    except SQLAlchemyError:  # no alembic_version table yet (a new database): Alembic creates it
        return False
    finally:
        if isinstance(engine_or_url, str):
            engine.dispose()
    return versions == {head}


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_drift(engine: Engine | str) -> list[Any]:
    """Autogenerate diffs between the live database and the models; empty means in sync."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from monitor.store.models import Base

    owned = isinstance(engine, str)
    bound = make_engine(engine) if isinstance(engine, str) else engine
    try:
        with bound.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        if owned:
            bound.dispose()
