"""``upgrade`` at head is one query, no Alembic; anything else still goes through Alembic (monitor/store/migrate.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import inspect, text

from monitor.store import migrate
from monitor.store.db import make_engine
from monitor.store.migrate import alembic_config, at_head, current_revision, head_revision, upgrade

ROOT = Path(__file__).resolve().parents[1]


def alembic_head() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def test_head_read_from_the_scripts_is_alembics():
    assert head_revision() == alembic_head()


def test_at_head_upgrade_runs_no_migration_machinery(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'genstatus.db'}"
    upgrade(url)
    assert at_head(url)

    def refuse(*_args, **_kwargs):
        raise AssertionError("alembic ran for a database already at head")

    monkeypatch.setattr(command, "upgrade", refuse)
    upgrade(url)  # one query, returns
    engine = make_engine(url)
    try:
        upgrade(engine)
        assert current_revision(engine) == alembic_head()
    finally:
        engine.dispose()


def test_at_head_upgrade_does_not_import_alembic(tmp_path):
    url = f"sqlite:///{tmp_path / 'genstatus.db'}"
    upgrade(url)
    code = ("import sys; from monitor.store.migrate import upgrade; upgrade(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))")
    out = subprocess.run([sys.executable, "-c", code, url], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_empty_and_an_old_database_are_still_migrated(tmp_path):
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert not at_head(empty)
    upgrade(empty)
    assert at_head(empty)

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0005")
    assert not at_head(url)
    upgrade(url)
    engine = make_engine(url)
    try:
        assert current_revision(engine) == alembic_head()
        assert "weekly_reports" in inspect(engine).get_table_names()  # a table of a later migration
    finally:
        engine.dispose()


def test_a_database_newer_than_these_scripts_still_errors(tmp_path):
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    assert not at_head(url)
    with pytest.raises(CommandError, match="9999"):
        upgrade(url)


def test_an_unreadable_script_set_falls_back_to_alembic(tmp_path, monkeypatch):
    """Two heads (a branch), or a script the patterns do not read: no fast path, Alembic decides."""
    versions = tmp_path / "versions"
    versions.mkdir()
    for name, body in (("a.py", 'revision = "a"\ndown_revision = None\n'), ("b.py", 'revision = "b"\ndown_revision = None\n')):
        (versions / name).write_text(body)
    monkeypatch.setattr(migrate, "SCRIPT_LOCATION", str(tmp_path))
    head_revision.cache_clear()
    try:
        assert head_revision() is None
        (versions / "b.py").write_text('revision = "b"\ndown_revision = ("a",)\n')
        head_revision.cache_clear()
        assert head_revision() == "b"
        (versions / "c.py").write_text("# no revision line\n")
        head_revision.cache_clear()
        assert head_revision() is None
        assert not at_head(f"sqlite:///{tmp_path / 'x.db'}")
    finally:
        head_revision.cache_clear()


@pytest.mark.postgres
def test_postgres_at_head_and_before(pg_engine):
    assert not at_head(pg_engine)  # no alembic_version table: the failed query leaves the pool usable
    upgrade(pg_engine)
    assert at_head(pg_engine)
    assert current_revision(pg_engine) == alembic_head()
