"""Alembic owns the schema: upgrade to head on SQLite and PostgreSQL, with no drift from the models."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from monitor.store.db import make_engine
from monitor.store.migrate import alembic_config, current_revision, schema_drift, upgrade
from monitor.store.models import Base


def head() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def assert_at_head_without_drift(engine: Engine) -> None:
    assert current_revision(engine) == head()
    assert schema_drift(engine) == []
    tables = set(inspect(engine).get_table_names())
    assert tables == set(Base.metadata.tables) | {"alembic_version"}


def assert_convention_names(engine: Engine) -> None:
    inspector = inspect(engine)
    assert inspector.get_pk_constraint("rollup_hourly")["name"] in ("pk_rollup_hourly", None)  # SQLite: unnamed PKs
    fk_names = {fk["name"] for fk in inspector.get_foreign_keys("probe_results")}
    assert fk_names == {"fk_probe_results_service_id_services", "fk_probe_results_canary_id_canaries"}
    index_names = {ix["name"] for ix in inspector.get_indexes("probe_results")}
    assert index_names == {"ix_probe_results_service_started", "ix_probe_results_started"}
    assert {ix["name"] for ix in inspector.get_indexes("incident_updates")} == {"ix_incident_updates_incident_id"}


def test_sqlite_upgrade_to_head_twice(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no alembic.ini, no dependence on the working directory
    url = f"sqlite:///{tmp_path / 'genstatus.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        assert_at_head_without_drift(engine)
        assert_convention_names(engine)
        upgrade(engine)  # a no-op at head
        assert_at_head_without_drift(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        engine.dispose()


def test_empty_database_has_no_revision_and_drifts(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert current_revision(engine) is None
        assert schema_drift(engine)  # every table missing
    finally:
        engine.dispose()


def test_drift_is_reported(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'genstatus.db'}")
    try:
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(text("DROP INDEX ix_probe_results_started"))
        drift = schema_drift(engine)
        assert [d[0] for d in drift] == ["add_index"]
        assert drift[0][1].name == "ix_probe_results_started"
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(tmp_path):
    from alembic import command

    url = f"sqlite:///{tmp_path / 'genstatus.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        upgrade(engine)
        assert_at_head_without_drift(engine)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_upgrade_to_head_twice(pg_engine):
    upgrade(pg_engine)
    assert_at_head_without_drift(pg_engine)
    assert_convention_names(pg_engine)
    upgrade(pg_engine.url.render_as_string(hide_password=False))
    assert_at_head_without_drift(pg_engine)


@pytest.mark.postgres
def test_postgres_concurrent_upgrades_are_serialised(pg_engine):
    """Several processes starting at once all call upgrade; the advisory lock keeps that safe."""
    url = pg_engine.url.render_as_string(hide_password=False)
    code = "import sys; from monitor.store.migrate import upgrade; upgrade(sys.argv[1])"
    root = Path(__file__).resolve().parents[1]
    processes = [
        subprocess.Popen([sys.executable, "-c", code, url], cwd=root, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    failures = [p.stderr.read() for p in processes if p.wait(timeout=60) != 0]
    assert failures == []
    assert_at_head_without_drift(pg_engine)


def test_threads_upgrading_at_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'genstatus.db'}"
    threads = [threading.Thread(target=upgrade, args=(url,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    engine = make_engine(url)
    try:
        assert_at_head_without_drift(engine)
    finally:
        engine.dispose()
