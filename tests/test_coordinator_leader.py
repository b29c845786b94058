"""Several coordinators on one database: one acts at a time (the advisory lock), and the database
itself refuses a second open incident with the same key or a duplicate ``slo_burn`` alert."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, MetaData, Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.config import Config, parse_config
from monitor.engine.coordinator import Coordinator
from monitor.engine.leader import try_lead
from monitor.enums import Outcome, ProbeKind
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.models import AlertOutbox, Incident, IncidentUpdate
from monitor.store.record import ResultRecord
from monitor.store.results import ResultStore

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
REGIONS = ("eu", "us", "ap")
CONFIG = ("canaries: [{id: c, prompt: x}]\n"
          "services: [{id: svc, name: Svc, provider: openai, canaries: [c], interval: 1m, slo: {availability: 99.5}}]\n")


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    """A migrated database (Alembic, so the indexes under test are the migration's)."""
    if request.param == "postgres":
        engine = request.getfixturevalue("pg_engine")
        upgrade(engine)
        yield engine
        return
    engine = make_engine(f"sqlite:///{tmp_path / 'leader.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def incident(service_id: str | None = "svc", kind: str = "outage", audience: str = "public", *,
             region: str | None = None, resolved: bool = False) -> Incident:
    return Incident(service_id=service_id, kind=kind, audience=audience, impact="major", status="investigating",
                    title="t", regions=[region or "eu"], key_region=region, started_at=T0, detected_at=T0,
                    resolved_at=T0 + timedelta(hours=1) if resolved else None)


def add(engine: Engine, *rows) -> None:
    with Session(engine) as session, session.begin():
        session.add_all(rows)


# -- the database refuses duplicates ----------------------------------------------------------


def test_second_open_incident_with_the_same_key_is_refused(engine):
    ResultStore(engine).sync_catalog(parse_config(CONFIG, env={}))
    add(engine, incident(), incident(resolved=True), incident(resolved=True))  # resolved ones never count
    add(engine, incident(kind="latency"), incident(kind="operator", audience="operator"))  # other kinds: fine
    with pytest.raises(IntegrityError):
        add(engine, incident())
    # agent incidents have no service (NULL is distinct in a unique index): the region is the key
    add(engine, incident(None, "agent", "operator", region="eu"), incident(None, "agent", "operator", region="us"))
    add(engine, incident(None, "agent", "operator", region="eu", resolved=True))
    with pytest.raises(IntegrityError):
        add(engine, incident(None, "agent", "operator", region="eu"))
    with Session(engine) as session:
        assert len(session.scalars(select(Incident).where(Incident.resolved_at.is_(None))).all()) == 5


def test_duplicate_slo_alert_key_is_refused(engine):
    def alert(key: str | None) -> AlertOutbox:
        return AlertOutbox(service_id="svc", event="slo_burn:fast", audience="operator", impact="major", title="t",
                           body="b", created_at=T0, attempts=0, dedupe_key=key)

    add(engine, alert(None), alert(None), alert("slo_burn:fast:svc:2026-11-02T12:00Z"))  # NULL: no key, no limit
    with pytest.raises(IntegrityError):
        add(engine, alert("slo_burn:fast:svc:2026-11-02T12:00Z"))


def test_migration_closes_duplicate_open_incidents(tmp_path):
    """Databases written by several coordinators before 0004 may hold duplicates; the upgrade keeps the oldest."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        upgrade(engine, "0003")
        ResultStore(engine).sync_catalog(parse_config(CONFIG, env={}))
        table = Table("incidents", MetaData(), autoload_with=engine)  # the table as 0003 made it: no later columns
        rows = [dict(service_id="svc", kind="outage", regions=["eu"]), dict(service_id="svc", kind="outage", regions=["us"]),
                dict(service_id=None, kind="agent", audience="operator", regions=["eu"]),
                dict(service_id=None, kind="agent", audience="operator", regions=["eu"]),
                dict(service_id=None, kind="agent", audience="operator", regions=["us"])]
        with engine.begin() as connection:
            for row in rows:
                defaults = dict(audience="public", impact="minor", status="investigating", created_at=T0, updated_at=T0)
                connection.execute(table.insert().values(title="t", started_at=T0, detected_at=T0, **{**defaults, **row}))
        upgrade(engine)
        with Session(engine) as session:
            found = [(i.id, i.key_region, i.resolved_at is None) for i in session.scalars(select(Incident).order_by(Incident.id))]
            notes = [u.body for u in session.scalars(select(IncidentUpdate).order_by(IncidentUpdate.id))]
        assert found == [(1, None, True), (2, None, False), (3, "eu", True), (4, "eu", False), (5, "us", True)]
        assert notes == ["Closed as a duplicate of incident #1 (opened twice by concurrent coordinators).",
                         "Closed as a duplicate of incident #3 (opened twice by concurrent coordinators)."]
    finally:
        engine.dispose()


# -- the coordinator lock -----------------------------------------------------------------------


@pytest.mark.postgres
def test_lock_is_exclusive_and_ends_with_the_transaction(pg_engine):
    other = make_engine(url_of(pg_engine))  # a second process
    try:
        with Session(pg_engine) as first, Session(other) as second:
            with first.begin():
                assert try_lead(first)
                with second.begin():
                    assert not try_lead(second)
                assert try_lead(first)  # re-entrant within the holder's transaction
            with second.begin():  # the first transaction ended: the lock is free
                assert try_lead(second)
                with first.begin():
                    assert not try_lead(first)
    finally:
        other.dispose()


def test_sqlite_needs_no_lock(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'one.db'}")
    try:
        with Session(engine) as first, Session(engine) as second, first.begin(), second.begin():
            assert try_lead(first) and try_lead(second)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_coordinator_without_the_lock_skips_the_round(pg_engine, caplog):
    upgrade(pg_engine)
    config = three_failed_minutes(pg_engine)
    coordinator = Coordinator(pg_engine, config)
    now = T0 + timedelta(minutes=2, seconds=30)
    with Session(pg_engine) as holder, holder.begin(), caplog.at_level(logging.DEBUG, "genstatus.coordinator"):
        assert try_lead(holder)
        assert coordinator.tick(now) == []
        assert "detection skipped: another coordinator holds the lock" in caplog.text
    assert coordinator.periodic[0].last is None  # the SLO check did not run either: due next tick
    assert [t.action for t in coordinator.tick(now)] == ["open"]
    assert coordinator.periodic[0].last == now


def test_refused_duplicate_rolls_back_and_is_retried_next_tick(engine, monkeypatch, caplog):
    """Should a coordinator decide from a stale view anyway, the index refuses, nothing is half-written,
    the thread carries on and the next round decides from the real state."""
    config = three_failed_minutes(engine)
    coordinator = Coordinator(engine, config)
    now = T0 + timedelta(minutes=2, seconds=30)
    assert [t.action for t in coordinator.tick(now)] == ["open"]
    before = outcome_of(engine)

    import monitor.engine.coordinator as module
    monkeypatch.setattr(module, "known_incidents", lambda *args: [])  # blind to the open incident
    with caplog.at_level(logging.WARNING, "genstatus.coordinator"):
        assert coordinator.tick(now + timedelta(seconds=5)) == []
    assert "detection rolled back, the database refused a duplicate" in caplog.text
    assert outcome_of(engine) == before
    with Session(engine) as session:
        assert len(session.scalars(select(IncidentUpdate)).all()) == 1

    monkeypatch.undo()
    coordinator.tick(now + timedelta(seconds=10))
    assert [i[3] for i in outcome_of(engine)[0]] == ["investigating"]


# -- two coordinators over an outage and its recovery -------------------------------------------


def three_failed_minutes(engine: Engine) -> Config:
    """The config, with three minutes of server errors from every region stored: an outage to open."""
    config = parse_config(CONFIG, env={})
    store = ResultStore(engine)
    store.sync_catalog(config)
    for minute in range(3):
        store.record_many(result(minute, region, Outcome.SERVER_ERROR) for region in REGIONS)
    return config


def result(minute: int, region: str, outcome: Outcome) -> ResultRecord:
    at = T0 + timedelta(minutes=minute)
    return ResultRecord(service="svc", canary="c", region=region, kind=ProbeKind.CANARY, started_at=at, finished_at=at,
                       outcome=outcome, latency_ms={"total": 1000.0})


def outcome_at(minute: int) -> Outcome:
    return Outcome.SERVER_ERROR if 10 <= minute < 20 else Outcome.OK


MINUTES = 40
TICKS = 3  # per coordinator and minute


def run_timeline(writer: Engine, coordinator_engines: list[Engine]) -> None:
    """A result per region and minute; after each minute every coordinator ticks TICKS times at once."""
    config = parse_config(CONFIG, env={})
    store = ResultStore(writer)
    store.sync_catalog(config)
    coordinators = [Coordinator(e, config) for e in coordinator_engines]
    barrier = threading.Barrier(len(coordinators) + 1, timeout=60)
    errors: list[BaseException] = []

    def ticking(coordinator: Coordinator) -> None:
        try:
            for minute in range(MINUTES):
                barrier.wait()  # the minute's results are stored
                for _ in range(TICKS):
                    coordinator.tick(T0 + timedelta(minutes=minute, seconds=30))
                barrier.wait()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=ticking, args=(c,)) for c in coordinators]
    for thread in threads:
        thread.start()
    try:
        for minute in range(MINUTES):
            store.record_many(result(minute, region, outcome_at(minute)) for region in REGIONS)
            barrier.wait()
            barrier.wait()
    finally:
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []


def outcome_of(engine: Engine) -> tuple[list, list]:
    with Session(engine) as session:
        incidents = [(i.service_id, i.kind, i.impact, i.status, i.started_at, i.resolved_at)
                     for i in session.scalars(select(Incident).order_by(Incident.id))]
        alerts = [(a.incident_id is not None, a.service_id, a.event, a.impact, a.created_at)
                  for a in session.scalars(select(AlertOutbox).order_by(AlertOutbox.id))]
    return incidents, alerts


@pytest.mark.postgres
def test_two_coordinators_write_each_incident_and_alert_once(pg_engine, tmp_path, caplog):
    upgrade(pg_engine)
    engines = [make_engine(url_of(pg_engine)) for _ in range(2)]  # two processes, each with its own pool
    try:
        with caplog.at_level(logging.DEBUG, "genstatus.coordinator"):
            run_timeline(pg_engine, engines)
    finally:
        for engine in engines:
            engine.dispose()
    incidents, alerts = outcome_of(pg_engine)
    assert [(i[0], i[1], i[3]) for i in incidents] == [("svc", "outage", "resolved")]
    events = [a[2] for a in alerts]
    assert events.count("open") == 1 and events.count("resolve") == 1
    assert sorted(e for e in events if e.startswith("slo_burn")) == ["slo_burn:fast", "slo_burn:medium", "slo_burn:slow"]
    assert "refused a duplicate" not in caplog.text  # the lock kept the writers apart; the indexes had nothing to do

    # exactly what one coordinator alone writes over the same timeline
    single = make_engine(f"sqlite:///{tmp_path / 'single.db'}")
    try:
        upgrade(single)
        run_timeline(single, [single])
        assert outcome_of(single) == (incidents, alerts)
    finally:
        single.dispose()
