"""The built-in demo scenario plays a believable day: replayed through the real detector.

Each scripted fault is first probed for real (the demo's config, the emulator on loopback,
the reference profile the demo captures), then two cycles of the scenario are replayed on a
simulated clock: the scenario's own timeline code decides which fault is active when, each
service is probed every interval with the scheduler's confirmation bursts, and
``monitor.detection.replay`` runs the detector the live coordinator runs.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.cli.demo import CURL_EXAMPLE_PROVIDER, DEMO_BASELINE_SERVICE, demo_config
from monitor.config import Config
from monitor.detection.detect import DetectorConfig, Observation
from monitor.detection.replay import IncidentRecord, replay
from monitor.engine.baseline import capture
from monitor.engine.runner import ProbeRunner
from monitor.engine.scheduler import confirmation_delays, keeps_confirming
from monitor.enums import HEALTHY_OUTCOMES, Outcome
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.references import ReferenceSource
from monitor.store.results import ResultStore
from probes.emulator.faults import FaultBoard
from probes.emulator.scenario import Scenario, ScenarioEvent, ScenarioRunner, builtin_scenario_text, parse_scenario
from probes.emulator.server import EmulatorServer

README = Path(__file__).resolve().parent.parent / "README.md"
INTERVAL = timedelta(seconds=5)  # the demo's default
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
WARM_UP = timedelta(minutes=1)  # the first few minutes: services without results yet
MIN_OPERATIONAL = 0.8


def readme_curl_targets() -> set[str]:
    """The providers the README's quick start breaks with curl (``/_faults/<provider>``)."""
    text = README.read_text(encoding="utf-8")
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    targets = {m.group(1) for line in quick_start.splitlines() if "curl" in line
               for m in re.finditer(r"/_faults/([\w-]+)", line)}
    assert targets, "the README's quick start no longer shows a curl example: update this test"
    return targets


def targets(event: ScenarioEvent, config) -> list[str]:
    """The demo services an event's fault reaches."""
    return [s.id for s in config.services if s.provider == event.provider and event.service in (None, s.id)]


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return parse_scenario(builtin_scenario_text(), "demo.yaml")


def test_the_script_leaves_the_readme_curl_example_alone(scenario, tmp_path):
    config = demo_config(tmp_path / "d.db", "http://127.0.0.1:8765", "5s")
    curl = readme_curl_targets() | {CURL_EXAMPLE_PROVIDER}
    touched = {event.provider for event in scenario.events} | {
        sid for event in scenario.events for sid in targets(event, config)}
    assert not touched & curl, f"the scenario breaks {sorted(touched & curl)}, which the README's curl example breaks by hand"


def calibrate(scenario: Scenario, tmp_path: Path) -> tuple[Config, dict[tuple[str, str | None], tuple[Outcome, float]]]:
    """(config, {(service, fault or None): (outcome, latency ms)}) from real probes of the demo's services."""
    with EmulatorServer() as emulator:
        config = demo_config(tmp_path / "demo.db", emulator.url, "5s")
        engine = make_engine(config.database)
        upgrade(engine)
        ResultStore(engine).sync_catalog(config)
        plain = ProbeRunner(config, region=config.region)
        runner = ProbeRunner(config, region=config.region, references=ReferenceSource(engine))
        try:
            a1111 = config.service(DEMO_BASELINE_SERVICE)  # as the demo does at start
            report = capture(config, a1111, config.canary(a1111.canaries[0]),
                             lambda s, c: plain.run(s, c, keep_image=True), engine, samples=3, region=config.region)
            assert report.stored, report.to_dict()
            measured: dict[tuple[str, str | None], tuple[Outcome, float]] = {}
            scripted = [(sid, event) for event in scenario.events for sid in targets(event, config)]
            for sid in sorted({sid for sid, _ in scripted}):
                result = runner.run(config.service(sid), config.canary(config.service(sid).canaries[0]))
                measured[(sid, None)] = (result.outcome, result.latency_ms.get("total") or 0.0)
            for sid, event in scripted:
                emulator.faults.set(event.provider, event.fault, service=event.service, **event.params)
                result = runner.run(config.service(sid), config.canary(config.service(sid).canaries[0]))
                emulator.faults.clear()
                measured[(sid, event.fault)] = (result.outcome, result.latency_ms.get("total") or 0.0)
        finally:
            plain.close()
            runner.close()
            engine.dispose()
    return config, measured


def simulate(config, scenario: Scenario, measured, until: timedelta) -> list[Observation]:
    """Every result the demo would record until ``until``: a canary per service per interval, plus the
    scheduler's confirmation runs after each failure, with the outcome the active fault produced."""
    board = FaultBoard()
    timeline = ScenarioRunner(board, scenario, clock=lambda: 0.0)
    timeline.begin(0.0)
    confirm, burst = config.detection.confirm_delay, config.detection.max_confirmations
    pending: list[tuple[float, str, bool, list[timedelta]]] = []  # (at s, service, confirmation, further gaps)
    for service in config.services:
        pending.append((0.0, service.id, False, []))
    failing = {service.id: False for service in config.services}
    observations = []
    while pending:
        pending.sort(key=lambda run: run[0])
        at, sid, confirmation, gaps = pending.pop(0)
        if at >= until.total_seconds():
            continue
        timeline.run_due(at)
        service = config.service(sid)
        fault = board.active(service.provider, sid)
        outcome, latency = measured.get((sid, fault.name if fault else None), measured.get((sid, None), (Outcome.OK, 50.0)))
        observations.append(Observation(ts=T0 + timedelta(seconds=at), service=sid, region=config.region, outcome=outcome,
                                        canary=service.canaries[0], latency_ms=latency, confirmation=confirmation))
        next_scheduled = at + INTERVAL.total_seconds()
        bad = outcome not in HEALTHY_OUTCOMES
        if not confirmation:
            pending.append((next_scheduled, sid, False, []))
            if bad:
                gaps = confirmation_delays(confirm, burst, streak_start=not failing[sid])
        if bad and gaps and (confirmation is False or keeps_confirming(outcome)):
            when = at + gaps[0].total_seconds()
            if when < (next_scheduled if not confirmation else _next_scheduled(at, sid, pending)):
                pending.append((when, sid, True, gaps[1:]))
        failing[sid] = bad
    return observations


def _next_scheduled(at: float, sid: str, pending) -> float:
    return min((when for when, s, confirmation, _ in pending if s == sid and not confirmation), default=at + 1e9)


@pytest.mark.slow
def test_the_builtin_scenario_plays_a_day_that_returns_to_green(scenario, tmp_path):
    config, measured = calibrate(scenario, tmp_path)
    healthy = {key: value for key, value in measured.items() if key[1] is None}
    assert all(outcome is Outcome.OK for outcome, _ in healthy.values()), healthy
    for (sid, fault), (outcome, _) in measured.items():
        if fault is not None:  # every scripted fault is something the monitor notices
            assert outcome is not Outcome.OK, (sid, fault)

    cycle = scenario.repeat.total_seconds()
    cycles = 2
    trace = simulate(config, scenario, measured, timedelta(seconds=cycles * cycle))
    detector = DetectorConfig.from_config(config)
    incidents = [r for r in replay(trace, detector) if r.audience == "public"]
    by_service: dict[str, list[IncidentRecord]] = {}
    for record in incidents:
        by_service.setdefault(record.service or "", []).append(record)

    # one incident per scripted event and cycle, opened during its spell and resolved within its cycle;
    # never reopened (a new cycle's incident is a new incident) and nothing on the services left alone
    interval = INTERVAL.total_seconds()
    # how long detection may trail the script: a few intervals for the confirmation run, the two good
    # results and the recovery period; a latency incident also waits for its slow runs to leave the window
    lag_s = 4 * interval + 5.0
    latency_lag_s = lag_s + config.detection.latency_window.total_seconds()
    expected = 0
    for event in scenario.events:
        for sid in targets(event, config):
            for n in range(cycles):
                expected += 1
                spell_start = n * cycle + event.at.total_seconds()
                spell_end = n * cycle + event.end
                allowed = latency_lag_s if event.fault == "slow" else lag_s
                mine = [r for r in by_service.get(sid, [])
                        if spell_start <= (r.started_at - T0).total_seconds() <= spell_end]
                assert len(mine) == 1, (event.describe(), n, [r.to_dict() for r in by_service.get(sid, [])])
                record = mine[0]
                opened = (record.detected_at - T0).total_seconds()
                # an error or bad image: the canary and its confirmation run; slowness: enough slow runs in the window
                assert opened - spell_start <= (6 if event.fault == "slow" else 2) * interval + 5, (event.describe(), record.to_dict())
                assert record.resolved_at is not None, (event.describe(), record.to_dict())
                resolved = (record.resolved_at - T0).total_seconds()
                assert resolved <= (n + 1) * cycle, ("resolves within its cycle", event.describe(), record.to_dict())
                assert resolved - opened <= event.duration.total_seconds() + allowed, (event.describe(), record.to_dict())
                assert [u["action"] for u in record.updates][0] == "open" and "reopen" not in [u["action"] for u in record.updates]
    assert len(incidents) == expected, [r.to_dict() for r in incidents]

    # most of the page green: at every moment after the warm-up, at least 80 % of the services operational
    services = len(config.services)
    for second in range(int(WARM_UP.total_seconds()), int(cycles * cycle), 5):
        now = T0 + timedelta(seconds=second)
        down = {r.service or "" for r in incidents if r.detected_at <= now and (r.resolved_at is None or now < r.resolved_at)}
        assert (services - len(down)) / services >= MIN_OPERATIONAL, (second, sorted(down))
