"""Fixtures and row builders for tests that read the web app's database (a real SQLite file per test).

Import the fixtures by name in a test module (``from tests.webdb import engine, session, client``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert

from monitor.store.db import make_engine, session_factory
from monitor.store.models import Base, ProbeResultRow, Service
from web import create_app


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'web.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine):
    with session_factory(engine)() as session:
        yield session


@pytest.fixture
def client(engine):
    return create_app(engine=engine, testing=True).test_client()


def add_service(session, id: str, name: str | None = None, group: str = "", position: int = 0, active: bool = True):
    session.add(Service(id=id, name=name or id, group_name=group, provider="openai", position=position, active=active))
    session.commit()


def add_result(session, service_id: str, region: str, outcome: str, started_at: datetime, kind: str = "canary", **fields):
    session.add(
        ProbeResultRow(
            service_id=service_id, region=region, kind=kind, outcome=outcome, started_at=started_at,
            finished_at=started_at + timedelta(seconds=5), **fields,
        )
    )
    session.commit()


def add_rollup(session, table, service_id: str, region: str, bucket_start: datetime, **counts: int):
    """One rollup row; ``counts`` are outcome counts (``ok=8, timeout=1``) or ``h05=3`` histogram cells."""
    outcomes = {f"n_{k}": v for k, v in counts.items() if not re.fullmatch(r"h\d\d", k)}
    cells = {k: v for k, v in counts.items() if re.fullmatch(r"h\d\d", k)}
    session.execute(
        insert(table).values(
            service_id=service_id, region=region, bucket_start=bucket_start,
            n_total=sum(outcomes.values()), **outcomes, **cells,
        )
    )
    session.commit()
