"""The coordinator honours the admin side: maintenance windows stored in the database suppress public
incidents like the config's, and incidents written (or taken over) by hand are never changed,
resolved or reopened by the detector -- nor duplicated, so the database never refuses a round."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.config import parse_config
from monitor.engine.coordinator import Coordinator
from monitor.enums import Outcome, ProbeKind
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.models import Incident, IncidentUpdate, Maintenance, Service
from monitor.store.record import ResultRecord
from monitor.store.results import ResultStore

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
REGIONS = ("eu", "us", "ap")
CONFIG = ("canaries: [{id: c, prompt: x}]\n"
          "services: [{id: svc, name: Svc, provider: openai, canaries: [c], interval: 1m},"
          " {id: two, name: Two, provider: openai, canaries: [c], interval: 1m}]\n")
OPENS = T0 + timedelta(minutes=2, seconds=30)  # three failed minutes in every region: the detector opens an outage


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'admin.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def coordinator(engine):
    config = parse_config(CONFIG, env={})
    ResultStore(engine).sync_catalog(config)
    return Coordinator(engine, config)


def record(engine, minutes: range, outcome: Outcome, service: str = "svc") -> None:
    ResultStore(engine).record_many(
        ResultRecord(service=service, canary="c", region=region, kind=ProbeKind.CANARY, started_at=T0 + timedelta(minutes=m),
                     finished_at=T0 + timedelta(minutes=m), outcome=outcome, latency_ms={"total": 1000.0})
        for m in minutes for region in REGIONS)


def add(engine, row):
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add(row)
    return row


def manual(resolved_at: datetime | None = None, impact: str = "minor", kind: str = "outage") -> Incident:
    return Incident(service_id="svc", kind=kind, audience="public", impact=impact, status="identified", title="By hand",
                    regions=[], started_at=T0, detected_at=T0, resolved_at=resolved_at, source="manual")


def snapshot_of(engine) -> list[tuple]:
    with Session(engine) as session:
        rows = session.scalars(select(Incident).order_by(Incident.id)).all()
        return [(r.id, r.source, r.kind, r.impact, r.status, r.resolved_at, len(r.updates)) for r in rows]


def test_an_open_manual_incident_is_left_alone_and_holds_its_key(engine, coordinator, caplog):
    mine = add(engine, manual())
    record(engine, range(3), Outcome.SERVER_ERROR)
    before = snapshot_of(engine)
    with caplog.at_level(logging.WARNING, "genstatus.coordinator"):
        assert coordinator.tick(OPENS) == []  # no escalation to major, no duplicate outage
        record(engine, range(3, 40), Outcome.OK)
        for minute in (10, 20, 39):  # recovered long ago: the detector would have resolved its own
            assert coordinator.tick(T0 + timedelta(minutes=minute)) == []
    assert "refused a duplicate" not in caplog.text  # the database never had to refuse anything
    assert snapshot_of(engine) == before
    assert before[0][:5] == (mine.id, "manual", "outage", "minor", "identified")


def test_other_kinds_and_services_are_still_detected_beside_a_manual_incident(engine, coordinator):
    add(engine, manual(kind="latency"))
    record(engine, range(3), Outcome.SERVER_ERROR)
    record(engine, range(3), Outcome.SERVER_ERROR, service="two")
    transitions = coordinator.tick(OPENS)
    assert sorted((t.action.value, t.incident.service, t.incident.kind.value) for t in transitions) == [
        ("open", "svc", "outage"), ("open", "two", "outage")]


def test_a_resolved_manual_incident_is_never_reopened(engine, coordinator):
    mine = add(engine, manual(resolved_at=OPENS - timedelta(minutes=1)))  # well inside the reopen window
    record(engine, range(3), Outcome.SERVER_ERROR)
    (transition,) = coordinator.tick(OPENS)
    assert transition.action.value == "open"  # not "reopen"
    (kept, new) = snapshot_of(engine)
    assert kept == (mine.id, "manual", "outage", "minor", "identified", mine.resolved_at, 0)
    assert new[1:3] == ("auto", "outage") and new[5] is None


def test_an_incident_taken_over_is_no_longer_the_detectors(engine, coordinator):
    record(engine, range(3), Outcome.SERVER_ERROR)
    assert [t.action.value for t in coordinator.tick(OPENS)] == ["open"]
    with Session(engine) as session, session.begin():
        session.scalar(select(Incident)).source = "manual"
    record(engine, range(3, 40), Outcome.OK)
    assert coordinator.tick(T0 + timedelta(minutes=39)) == []
    with Session(engine) as session:
        row = session.scalar(select(Incident))
        assert row.resolved_at is None and row.status == "investigating"
        assert session.scalar(select(func.count(IncidentUpdate.id))) == 1
    # without the take-over the same rounds resolve it: the test above is not vacuous
    with Session(engine) as session, session.begin():
        session.scalar(select(Incident)).source = "auto"
    assert [t.action.value for t in coordinator.tick(T0 + timedelta(minutes=39, seconds=5))] == ["resolve"]


@pytest.mark.parametrize("services, status, opens", [
    (["svc"], "in_progress", False),
    (None, "scheduled", False),          # every service; the time decides, not the stored status
    (["two"], "in_progress", True),      # another service's window
    (["svc"], "completed", True),        # ended early on the admin side
])
def test_stored_maintenance_suppresses_public_incidents(engine, coordinator, services, status, opens):
    add(engine, Maintenance(title="Upgrade", services=services, starts_at=T0 - timedelta(minutes=5),
                            ends_at=T0 + timedelta(hours=1), status=status))
    record(engine, range(3), Outcome.SERVER_ERROR)
    assert [t.action.value for t in coordinator.tick(OPENS)] == (["open"] if opens else [])


def test_a_window_that_has_ended_no_longer_suppresses(engine, coordinator):
    add(engine, Maintenance(title="Earlier", services=None, starts_at=T0 - timedelta(hours=2), ends_at=T0 + timedelta(minutes=1)))
    record(engine, range(3), Outcome.SERVER_ERROR)
    assert [t.action.value for t in coordinator.tick(OPENS)] == ["open"]
    with Session(engine) as session:
        assert session.scalar(select(func.count(Service.id))) == 2
