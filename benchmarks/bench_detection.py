"""Detection quality: our detector against Uptime Kuma-like baselines on the same seeded traces.

Baselines (as Uptime Kuma does it, one monitor per service and region): down after N
consecutive failed scheduled runs (N = 1 and N = 3), up again on the first success; a
service counts as down while any of its region monitors is.  They see the scheduled runs
only (they have no confirmation runs) and know nothing of quality or latency.

Figures per scenario and detector: incidents opened, precision (incidents matching a real
injected event / all incidents), recall (real events of at least two intervals that were
caught), median and max time to detect (from the first affected result), and the most
incidents opened for one event (flapping).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from benchmarks.tracegen import Event, Scenario, scenarios, simulate
from monitor.detection.detect import Observation
from monitor.detection.replay import IncidentRecord, replay
from monitor.enums import DOWN_OUTCOMES

#: which incident kinds of ours may match which event kinds
MATCHING_KINDS = {"outage": {"outage"}, "regional": {"outage"}, "flapping": {"outage"}, "latency": {"latency"},
                  "quality": {"quality"}, "agent": {"agent"}}


@dataclass
class Score:
    incidents: int
    precision: float | None
    recall: float | None
    ttd_median_s: float | None
    ttd_max_s: float | None
    max_per_event: int
    false_incidents: int

    def note(self) -> str:
        def fmt(seconds: float | None) -> str:
            return "-" if seconds is None else f"{seconds / 60:.1f}m"
        precision = "-" if self.precision is None else f"{self.precision:.0%}"
        return (f"incidents {self.incidents} (false {self.false_incidents}), precision {precision}, "
                f"TTD median {fmt(self.ttd_median_s)} max {fmt(self.ttd_max_s)}, max {self.max_per_event}/event")


def kuma_baseline(observations: Iterable[Observation], n: int) -> list[IncidentRecord]:
    """Down after ``n`` consecutive failures per (service, region), up on the first success; merged per service."""
    streaks: dict[tuple[str, str], list[datetime]] = {}
    down_since: dict[tuple[str, str], tuple[datetime, datetime]] = {}
    periods: list[tuple[str, datetime, datetime, datetime | None]] = []
    for obs in observations:
        if obs.confirmation:
            continue
        key = (obs.service, obs.region)
        if obs.outcome in DOWN_OUTCOMES:
            streak = streaks.setdefault(key, [])
            streak.append(obs.ts)
            if len(streak) == n and key not in down_since:
                down_since[key] = (streak[0], obs.ts)
        else:
            streaks.pop(key, None)
            if key in down_since:
                started, detected = down_since.pop(key)
                periods.append((obs.service, started, detected, obs.ts))
    periods += [(service, started, detected, None) for (service, _), (started, detected) in down_since.items()]
    return _merge_per_service(periods)


def _merge_per_service(periods: list[tuple[str, datetime, datetime, datetime | None]]) -> list[IncidentRecord]:
    merged: list[IncidentRecord] = []
    open_by_service: dict[str, IncidentRecord] = {}
    for service, started, detected, resolved in sorted(periods, key=lambda p: p[2]):
        current = open_by_service.get(service)
        if current is not None and (current.resolved_at is None or current.resolved_at >= detected):
            if current.resolved_at is not None and (resolved is None or resolved > current.resolved_at):
                current.resolved_at = resolved
            continue
        record = IncidentRecord(service, "outage", "public", "major", [], started, detected, resolved)
        merged.append(record)
        open_by_service[service] = record
    return merged


def evaluate(scenario: Scenario, incidents: list[IncidentRecord], observations: list[Observation], ours: bool) -> Score:
    real = [e for e in scenario.events if e.real]
    grace = 2 * scenario.interval + scenario.confirm_delay
    matched_per_event = {id(e): 0 for e in real}
    ttd: list[float] = []
    false = 0
    for incident in incidents:
        hits = [e for e in real if _matches(incident, e, grace, scenario.end, ours)]
        if not hits:
            false += 1
        for event in hits:
            matched_per_event[id(event)] += 1
    for event in real:
        mine = [i for i in incidents if _matches(i, event, grace, scenario.end, ours)]
        first = _first_affected(event, observations)
        if mine and first is not None and _counts_for_recall(event, scenario):
            ttd.append(max(0.0, (min(i.detected_at for i in mine) - first).total_seconds()))
    countable = [e for e in real if _counts_for_recall(e, scenario)]
    caught = [e for e in countable if matched_per_event[id(e)]]
    return Score(
        incidents=len(incidents),
        precision=(len(incidents) - false) / len(incidents) if incidents else None,
        recall=len(caught) / len(countable) if countable else None,
        ttd_median_s=statistics.median(ttd) if ttd else None,
        ttd_max_s=max(ttd) if ttd else None,
        max_per_event=max(matched_per_event.values(), default=0),
        false_incidents=false,
    )


def _counts_for_recall(event: Event, scenario: Scenario) -> bool:
    return event.duration >= 2 * scenario.interval


def _matches(incident: IncidentRecord, event: Event, grace: timedelta, trace_end: datetime, ours: bool) -> bool:
    if event.kind == "agent":
        if incident.kind != "agent" or not set(incident.regions) & set(event.regions):
            return False
    else:
        if incident.service != event.service:
            return False
        if ours and incident.kind not in MATCHING_KINDS[event.kind]:
            return False
    end = incident.resolved_at or trace_end
    return incident.started_at < event.end + grace and end > event.start


def _first_affected(event: Event, observations: list[Observation]) -> datetime | None:
    for obs in observations:
        if obs.ts >= event.start and (event.service is None or obs.service == event.service) and obs.region in event.regions:
            if obs.ts < event.end:
                return obs.ts
    return None


def run(quick: bool = False) -> list[dict]:
    figures = []
    for scenario in scenarios(days=7 if quick else 30):
        observations = simulate(scenario)
        detectors = {
            "ours": (replay(observations, scenario.detector_config()), True),
            "kuma N=1": (kuma_baseline(observations, 1), False),
            "kuma N=3": (kuma_baseline(observations, 3), False),
        }
        for name, (incidents, ours) in detectors.items():
            public_and_agent = [i for i in incidents if i.audience == "public" or i.kind == "agent"]
            score = evaluate(scenario, public_and_agent, observations, ours)
            recall = None if score.recall is None else round(100 * score.recall, 1)
            figures.append({"name": f"{scenario.name}: {name}", "value": recall if recall is not None else score.incidents,
                            "unit": "% recall" if recall is not None else "incidents", "note": score.note()})
    return figures
