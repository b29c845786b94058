"""Live detection against the emulator: a forced fault opens exactly one incident of the right
kind and impact, with confirmation runs; clearing it resolves the incident after the recovery period."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.config import parse_config
from monitor.engine.runtime import MonitorRuntime
from monitor.store.models import AlertOutbox, Incident, IncidentUpdate, ProbeResultRow

pytestmark = pytest.mark.slow


def config_text(tmp_path, emulator) -> str:
    return f"""\
database: sqlite:///{tmp_path / 'live.db'}
region: test
detection: {{confirm_delay: 1s, recovery_period: 3s, success_threshold: 2}}
canaries:
  - {{id: apple, prompt: "a red apple", size: 1024x1024}}
services:
  - id: svc
    name: Emulated DALL·E
    group: OpenAI
    provider: openai
    base_url: {emulator.base_url('openai', service='svc')}
    api_key: sk-live-test-0000
    model: dall-e-3
    canaries: [apple]
    interval: 2s
    timeout: 5s
    allow_private_network: true
"""


def wait_for(predicate, within: float, what: str):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


def incidents(engine) -> list[Incident]:
    with Session(engine) as session:
        return list(session.scalars(select(Incident).order_by(Incident.id)))


@pytest.mark.parametrize("fault, kind, impact", [("server_error", "outage", "major"), ("blank_image", "quality", "minor")])
def test_fault_opens_one_incident_and_clearing_resolves_it(tmp_path, emulator, fault, kind, impact):
    runtime = MonitorRuntime(parse_config(config_text(tmp_path, emulator), env={}), detect_every=0.3)
    runtime.start()
    try:
        time.sleep(2.5)  # healthy first
        assert incidents(runtime.engine) == []
        emulator.faults.set("openai", fault, service="svc")
        # a new service is judged on the cautious prior: about seven bad results at a 2 s interval
        opened = wait_for(lambda: incidents(runtime.engine), 20, "an incident")
        assert [(i.kind, i.impact, i.audience, i.service_id) for i in opened] == [(kind, impact, "public", "svc")]
        with Session(runtime.engine) as session:
            kinds = set(session.scalars(select(ProbeResultRow.kind)))
        assert "confirmation" in kinds  # the failed canary was confirmed by an extra run

        time.sleep(4)  # failing on: still one incident
        assert len(incidents(runtime.engine)) == 1

        emulator.faults.clear("openai")
        resolved = wait_for(lambda: [i for i in incidents(runtime.engine) if i.resolved_at], 15, "resolution")
        assert len(incidents(runtime.engine)) == 1 and resolved[0].status == "resolved"
        with Session(runtime.engine) as session:
            statuses = [u.status for u in session.scalars(select(IncidentUpdate).order_by(IncidentUpdate.id))]
            events = [a.event for a in session.scalars(select(AlertOutbox).order_by(AlertOutbox.id))]
        assert statuses[0] == "investigating" and statuses[-1] == "resolved"
        assert events[0] == "open" and events[-1] == "resolve" and len(events) == len(statuses)
    finally:
        runtime.stop()


def test_incident_state_survives_a_restart(tmp_path, emulator):
    config = parse_config(config_text(tmp_path, emulator), env={})
    emulator.faults.set("openai", "server_error", service="svc")
    first = MonitorRuntime(config, detect_every=0.3)
    first.start()
    try:
        wait_for(lambda: incidents(first.engine), 20, "an incident")
    finally:
        first.stop()
    second = MonitorRuntime(config, detect_every=0.3)  # a new process: state comes from the database
    second.start()
    try:
        time.sleep(4)
        assert len(incidents(second.engine)) == 1 and incidents(second.engine)[0].resolved_at is None
    finally:
        second.stop()
