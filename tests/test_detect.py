"""The detector, rule by rule, on small hand-written traces replayed through ``monitor.detection.replay``."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from monitor.config import DetectionSettings
from monitor.detection.detect import DetectorConfig, Observation, ServiceRules, detect
from monitor.detection.replay import replay
from monitor.enums import Outcome

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
LOOSE = 10_000  # a false-incident budget so loose that failure_threshold alone decides (the mechanics under test)
MIN = timedelta(minutes=1)
OK, ERR, TIMEOUT, SLOW = Outcome.OK, Outcome.SERVER_ERROR, Outcome.TIMEOUT, Outcome.SLOW


def config(**settings) -> DetectorConfig:
    rules = {s: ServiceRules(interval=timedelta(minutes=5), group="OpenAI" if s in ("a", "b") else "", latency_threshold_ms=45_000)
             for s in ("a", "b", "c", "s")}
    return DetectorConfig(settings=DetectionSettings(**settings), services=rules)


def obs(minute: float, outcome: Outcome, region: str = "eu", service: str = "s", confirmation: bool = False,
        latency: float | None = 5000, quality: float | None = None) -> Observation:
    return Observation(T0 + timedelta(minutes=minute), service, region, outcome, canary="c",
                       latency_ms=latency if outcome in (OK, SLOW, Outcome.DEGRADED_QUALITY) else None,
                       quality=quality, confirmation=confirmation)


def rounds(regions: dict[str, float], minutes: range, outcome_at, service: str = "s", confirm: bool = True) -> list[Observation]:
    """Scheduled runs every 5 min from each region's phase, plus a confirmation 20 s after each failure."""
    out = []
    for region, phase in regions.items():
        for m in minutes:
            t = m * 5 + phase
            outcome = outcome_at(region, t)
            out.append(obs(t, outcome, region, service))
            if outcome not in (OK, SLOW) and confirm:
                out.append(obs(t + 1 / 3, outcome_at(region, t + 1 / 3), region, service, confirmation=True))
    return out


def incidents(trace, **settings):
    return [i.to_dict() for i in replay(trace, config(**settings))]


THREE = {"eu": 0.0, "us": 1.5, "ap": 3.2}


def test_a_single_transient_failure_opens_nothing():
    trace = rounds(THREE, range(24), lambda r, t: ERR if (r, t) == ("eu", 30.0) else OK)
    assert incidents(trace) == []


def test_hard_outage_in_every_region_opens_one_major_incident_fast():
    trace = rounds(THREE, range(24), lambda r, t: ERR if 30 <= t < 60 else OK)
    (incident,) = incidents(trace)
    assert incident["kind"] == "outage" and incident["impact"] == "major" and incident["audience"] == "public"
    assert incident["regions"] == ["ap", "eu", "us"]
    assert incident["started_at"] == "2026-11-02T10:30:00Z"
    # eu fails at 30:00 and its confirmation at 30:20; us fails at 31:30: confirmed in 2 of 3 at 31:50
    assert incident["detected_at"] == "2026-11-02T10:31:50Z"
    assert incident["resolved_at"] is not None


def test_single_region_evidence_is_sized_to_the_service_noise():
    outage = rounds({"eu": 0}, range(24), lambda r, t: ERR if 30 <= t < 60 else OK)
    # a new service is judged on the prior, with its uncertainty (as if 2.4 % failures, 12 % repeats): five bad results
    (incident,) = incidents(outage)
    assert incident["detected_at"] == "2026-11-02T10:40:00Z" and incident["impact"] == "major"
    assert incident["evidence_results"] == 5
    # a week of clean history before: three are enough (live, a run and two confirmations: 40 seconds)
    day = rounds({"eu": 0}, range(288), lambda r, t: OK)
    week = [replace(o, ts=o.ts - timedelta(days=days_ago)) for days_ago in range(7, 0, -1) for o in day]
    (incident,) = incidents(week + outage)
    assert incident["detected_at"] == "2026-11-02T10:35:00Z" and incident["evidence_results"] == 3
    # a week failing 8 % of the time: more than the whole first ten minutes of the outage
    rng = random.Random(4)
    noisy = [replace(o, outcome=ERR) if rng.random() < 0.08 else o for o in week]
    (incident,) = [i for i in incidents(noisy + outage) if i["started_at"] >= "2026-11-02"]
    assert incident["detected_at"] > "2026-11-02T10:40:00Z"
    # the budget decides: a loose one opens on a run and its confirmation
    (incident,) = incidents(outage, false_incident_budget=LOOSE)
    assert incident["detected_at"] == "2026-11-02T10:30:20Z"


def test_failure_in_one_of_three_regions_must_persist():
    blip = rounds(THREE, range(24), lambda r, t: ERR if r == "eu" and 30 <= t < 33 else OK)
    assert incidents(blip) == []
    regional = rounds(THREE, range(24), lambda r, t: ERR if r == "eu" and 30 <= t < 60 else OK)
    (incident,) = incidents(regional)
    assert incident["impact"] == "minor" and incident["regions"] == ["eu"]
    # two scheduled runs and their confirmations persist; a new service probed from three regions asks for a sixth
    assert incident["detected_at"] == "2026-11-02T10:40:20Z"


def test_two_of_three_regions_is_a_quorum_with_minor_impact():
    trace = rounds(THREE, range(24), lambda r, t: ERR if r in ("eu", "us") and 30 <= t < 60 else OK)
    (incident,) = incidents(trace)
    assert incident["impact"] == "minor" and incident["regions"] == ["eu", "us"]
    assert incident["detected_at"] == "2026-11-02T10:31:50Z"


def test_escalation_updates_the_same_incident():
    # eu and us fail from 30, ap joins at 40: one incident, escalated to major
    trace = rounds(THREE, range(24), lambda r, t: ERR if (30 <= t < 60 and r != "ap") or (40 <= t < 60) else OK)
    (incident,) = incidents(trace)
    assert incident["impact"] == "major"


def test_hysteresis_no_resolve_on_first_good_result_and_refail_continues():
    # down 30-45, one good run at 45, down again 50-60: still one incident
    trace = rounds({"eu": 0}, range(24), lambda r, t: ERR if (30 <= t < 45) or (50 <= t < 60) else OK)
    (incident,) = incidents(trace)
    assert incident["resolved_at"] >= "2026-11-02T11:05:00Z"


def test_resolution_needs_success_threshold_and_recovery_period():
    trace = rounds({"eu": 0}, range(24), lambda r, t: ERR if 30 <= t < 40 else OK)
    (incident,) = incidents(trace, false_incident_budget=LOOSE)
    # last failure 35:20; good at 40 and 45 -> 2 in a row; recovery of one interval from 35:20 -> 40:20
    assert incident["resolved_at"] == "2026-11-02T10:45:00Z"
    (longer,) = incidents(trace, recovery_period="15m", false_incident_budget=LOOSE)
    assert longer["resolved_at"] == "2026-11-02T10:55:00Z"


def test_flapping_is_one_incident():
    down = lambda r, t: ERR if any(a <= t < a + 10 for a in (30, 50, 70, 90)) else OK  # noqa: E731 - 10 down, 10 up
    (incident,) = incidents(rounds(THREE, range(30), down))
    assert incident["kind"] == "outage"


def test_probing_window_boundary_is_inclusive():
    """A region whose last result is exactly one probing window old still counts in the quorum."""
    cfg = config(false_incident_budget=LOOSE)  # a run and its confirmation are evidence enough in one region
    now = T0 + timedelta(minutes=40)
    edge = (now - cfg.probe_window("s") - T0).total_seconds() / 60
    failing_eu = [obs(39.5, ERR, "eu"), obs(39.7, ERR, "eu", confirmation=True), obs(39.9, ERR, "eu", confirmation=True),
                  obs(39.0, OK, "us")]
    # ap exactly at the edge: 3 regions probe, eu alone is not a quorum -> nothing opens
    assert detect(failing_eu + [obs(edge, OK, "ap")], [], cfg, now) == []
    # ap a moment older: 2 regions probe, eu is half of them -> the outage opens
    opened = detect(failing_eu + [obs(edge - 0.01, OK, "ap")], [], cfg, now)
    assert [(t.action.value, t.incident.regions) for t in opened] == [("open", ("eu",))]


def test_region_appearing_and_disappearing():
    # ap starts probing at minute 40 and eu stops at minute 60; an outage in us alone stays regional
    def outcome(region, t):
        return ERR if region == "us" and 50 <= t < 80 else OK
    trace = [o for o in rounds(THREE, range(24), outcome) if not (o.region == "ap" and o.ts < T0 + 40 * MIN)
             and not (o.region == "eu" and o.ts >= T0 + 60 * MIN)]
    result = incidents(trace, agent_timeout="2h")
    outages = [i for i in result if i["kind"] == "outage"]
    assert len(outages) == 1 and outages[0]["regions"] == ["us"]


def test_ties_at_one_timestamp_are_order_independent():
    trace = rounds({"eu": 0, "us": 0, "ap": 0}, range(24), lambda r, t: ERR if 30 <= t < 60 else OK)
    assert incidents(trace) == incidents(list(reversed(trace)))
    (incident,) = incidents(trace)
    assert incident["detected_at"] == "2026-11-02T10:30:00Z"  # every region at once: no confirmation needed


def test_agent_blind_opens_only_the_operator_incident():
    services = ("a", "b", "c")
    trace = []
    for service in services:
        trace += rounds(THREE, range(24), lambda r, t: Outcome.CONNECTION_ERROR if r == "ap" and 30 <= t < 80 else OK, service)
    result = incidents(trace)
    assert [(i["kind"], i["audience"], i["service"], i["regions"]) for i in result] == [("agent", "operator", None, ["ap"])]
    assert result[0]["resolved_at"] is not None


def test_silent_agent_opens_operator_incident():
    trace = [o for o in rounds(THREE, range(24), lambda r, t: OK) if not (o.region == "ap" and o.ts > T0 + 30 * MIN)]
    (incident,) = incidents(trace)
    assert incident["kind"] == "agent" and incident["regions"] == ["ap"] and incident["service"] is None
    assert incident["resolved_at"] is None


def test_auth_errors_open_an_operator_incident_not_a_public_one():
    trace = rounds(THREE, range(24), lambda r, t: Outcome.AUTH_ERROR if t >= 30 else OK)
    (incident,) = incidents(trace)
    assert incident["kind"] == "operator" and incident["audience"] == "operator" and incident["service"] == "s"


def test_quality_and_safety_kinds():
    quality = rounds(THREE, range(24), lambda r, t: Outcome.DEGRADED_QUALITY if 30 <= t < 60 else OK)
    (incident,) = incidents(quality)
    assert incident["kind"] == "quality" and incident["impact"] == "minor"
    safety = rounds(THREE, range(24), lambda r, t: Outcome.CONTENT_FILTERED if 30 <= t < 60 else OK)
    assert [i["kind"] for i in incidents(safety)] == ["safety"]


def test_latency_needs_enough_slow_samples():
    one_outlier = rounds(THREE, range(24), lambda r, t: SLOW if (r, t) == ("eu", 30.0) else OK)
    assert incidents([o if o.outcome is not SLOW else obs((o.ts - T0).total_seconds() / 60, SLOW, o.region, latency=90_000)
                      for o in one_outlier]) == []
    slow = [obs((o.ts - T0).total_seconds() / 60, o.outcome, o.region, latency=90_000 if o.outcome is SLOW else 5000)
            for o in rounds(THREE, range(36), lambda r, t: SLOW if 60 <= t < 120 else OK)]
    (incident,) = incidents(slow)
    assert incident["kind"] == "latency" and incident["resolved_at"] is not None


def test_several_services_of_one_group_down_is_critical():
    trace = []
    for service in ("a", "b", "c"):
        trace += rounds(THREE, range(24), lambda r, t: ERR if 30 <= t < 60 else OK, service)
    by_service = {i["service"]: i["impact"] for i in incidents(trace)}
    assert by_service == {"a": "critical", "b": "critical", "c": "major"}  # c is in no group


def test_maintenance_suppresses_public_incidents():
    cfg = config()
    cfg.services["s"] = ServiceRules(interval=timedelta(minutes=5), maintenance=((T0 + 25 * MIN, T0 + 70 * MIN),))
    trace = rounds(THREE, range(24), lambda r, t: ERR if 30 <= t < 60 else OK)
    assert replay(trace, cfg) == []


def test_replay_is_deterministic():
    trace = rounds(THREE, range(48), lambda r, t: ERR if 30 <= t < 60 or (r == "eu" and 150 <= t < 190) else OK)
    assert incidents(trace) == incidents(trace)


@pytest.mark.parametrize("threshold, detected", [(2, "2026-11-02T10:30:20Z"), (3, "2026-11-02T10:35:00Z")])
def test_failure_threshold_is_configurable(threshold, detected):
    trace = rounds({"eu": 0}, range(24), lambda r, t: ERR if 30 <= t < 60 else OK)
    (incident,) = incidents(trace, failure_threshold=threshold, false_incident_budget=LOOSE)
    assert incident["detected_at"] == detected


def test_silence_is_not_recovery():
    """An open incident stays open when its service stops producing results."""
    cfg = config(false_incident_budget=LOOSE)
    trace = rounds({"eu": 0}, range(8), lambda r, t: ERR if t >= 30 else OK)
    opened = [t for t in detect([o for o in trace if o.ts <= T0 + 31 * MIN], [], cfg, T0 + 31 * MIN)]
    assert [t.action.value for t in opened] == ["open"]
    later = T0 + 60 * MIN  # the last results are now older than the probing window
    assert detect(trace, [opened[0].incident], cfg, later) == []


def test_runs_recorded_slow_open_a_latency_incident_without_a_threshold():
    """No latency threshold (a service configured without one, or replay without -c): the recorded outcome decides."""
    cfg = DetectorConfig(settings=DetectionSettings())  # no service rules at all: the defaults, as replay without -c
    trace = rounds({"eu": 0.0}, range(60), lambda r, t: SLOW if 60 <= t < 180 else OK)
    found = [i.to_dict() for i in replay(trace, cfg)]
    assert [(i["kind"], i["audience"]) for i in found] == [("latency", "public")]
    assert found[0]["started_at"] == "2026-11-02T11:00:00Z" and found[0]["resolved_at"] is not None
    # a lone slow run among fast ones is not a degradation
    one = rounds({"eu": 0.0}, range(48), lambda r, t: SLOW if t == 60 else OK)
    assert replay(one, cfg) == []


def test_a_configured_threshold_still_decides_over_the_recorded_outcome():
    """With a threshold, the measured latency is the evidence (a run recorded slow under another threshold is not)."""
    trace = [obs((o.ts - T0).total_seconds() / 60, o.outcome, o.region, latency=5000)
             for o in rounds(THREE, range(36), lambda r, t: SLOW if 60 <= t < 120 else OK)]
    assert incidents(trace) == []


def test_rate_limited_is_degraded_not_an_outage():
    """One meaning everywhere: rate_limited never counts as down (uptime, SLO and the detector agree)."""
    trace = rounds(THREE, range(24), lambda r, t: Outcome.RATE_LIMITED if 30 <= t < 60 else OK)
    assert incidents(trace) == []


def test_windows_scheduled_on_the_admin_side_suppress_public_incidents_like_config_ones():
    from monitor.detection.admin import StoredWindow

    trace = rounds(THREE, range(24), lambda r, t: ERR if 30 <= t < 60 else OK)
    window = StoredWindow(T0 + 25 * MIN, T0 + 70 * MIN, ("s",))
    assert replay(trace, config().with_maintenance([window])) == []
    assert replay(trace, config().with_maintenance([StoredWindow(window.start, window.end, ())])) == []  # every service
    assert len(replay(trace, config().with_maintenance([StoredWindow(window.start, window.end, ("a",))]))) == 1
    late = StoredWindow(T0 + 40 * MIN, T0 + 70 * MIN, ("s",))  # starts after the incident opened: it does not undo it
    assert len(replay(trace, config().with_maintenance([late]))) == 1
    # the config's own windows stay, the stored ones add to them; a service outside the config gets the defaults
    cfg = config()
    cfg.services["s"] = ServiceRules(interval=timedelta(minutes=5), maintenance=((T0, T0 + MIN),))
    merged = cfg.with_maintenance([window, StoredWindow(T0, T0 + MIN, ("new",))])
    assert merged.services["s"].maintenance == ((T0, T0 + MIN), (window.start, window.end))
    assert merged.rules("new").in_maintenance(T0) and merged.rules("new").interval == cfg.settings.default_interval
    assert cfg.services["s"].maintenance == ((T0, T0 + MIN),)  # the original is left as it was
