"""Probe agents: a region whose agent is blind (most services fail there, other regions see them
fine) or silent gets an operator-only ``agent`` incident and is left out of the evidence."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from monitor.detection.evidence import region_evidence
from monitor.detection.model import Action, DetectorConfig, Incident, Observation, Transition
from monitor.enums import (
    DOWN_OUTCOMES,
    Audience,
    Impact,
    IncidentKind,
    IncidentStatus,
)


def agent_transitions(
    recent: Sequence[Observation],
    by_service: dict[str, list[Observation]],
    open_by_key: dict,
    config: DetectorConfig,
    now: datetime,
    transitions: list[Transition],
    fresh: set[str] | None,
) -> set[str]:
    """Open/resolve operator incidents for blind or silent regions; return the regions to ignore.

    Blindness is only re-judged for regions with a result at ``now`` (``fresh``; None = all).
    """
    settings = config.settings
    last_seen: dict[str, datetime] = {}
    for obs in recent:
        last_seen[obs.region] = obs.ts
    regions = sorted(last_seen)
    ignored: set[str] = set()
    bad_now = {o.region for o in recent if o.ts == now and o.outcome in DOWN_OUTCOMES}
    for region in regions:
        is_open = (None, IncidentKind.AGENT, region) in open_by_key
        if fresh is not None and region not in fresh:
            if is_open:
                ignored.add(region)
            if now - last_seen[region] < settings.agent_timeout or is_open:
                continue
        if not is_open and region not in bad_now and now - last_seen[region] < settings.agent_timeout:
            continue  # only a new failure can make a region blind
        blind_services, compared = _blind_services(region, by_service, config, now)
        silent = now - last_seen[region] >= settings.agent_timeout and len(regions) > 1 and any(
            last_seen[other] > last_seen[region] for other in regions if other != region)
        blind = compared >= 2 and len(blind_services) >= max(2, math.ceil(compared / 2))
        incident = open_by_key.get((None, IncidentKind.AGENT, region))
        if incident is None and (blind or silent):
            started = last_seen[region] if silent else _earliest_failure(region, blind_services, by_service, config)
            why = (f"no results from region {region} since {last_seen[region]:%Y-%m-%d %H:%M:%S} UTC" if silent else
                   f"{len(blind_services)} of {compared} services fail only from region {region} "
                   f"({', '.join(blind_services)}) while other regions see them fine")
            incident = Incident(None, IncidentKind.AGENT, Audience.OPERATOR, Impact.MINOR, (region,), started, now)
            transitions.append(Transition(Action.OPEN, incident, now, f"Probe agent problem: {why}."))
        elif incident is not None and not (blind or silent) and _region_healthy(region, by_service, config):
            done = replace(incident, status=IncidentStatus.RESOLVED, resolved_at=now)
            transitions.append(Transition(Action.RESOLVE, done, now, f"Region {region} sees services fine again."))
            incident = None
        if incident is not None:
            ignored.add(region)
    return ignored


class SuspectRegions:
    """``region in suspects``: computed on first use only (most steps never ask)."""

    def __init__(self, by_service: dict[str, list[Observation]], blind: set[str], config: DetectorConfig, now: datetime) -> None:
        self._args = (by_service, blind, config, now)
        self._regions: set[str] | None = None

    def __contains__(self, region: object) -> bool:
        if self._regions is None:
            self._regions = suspect_regions(*self._args)
        return region in self._regions


def suspect_regions(by_service: dict[str, list[Observation]], blind: set[str], config: DetectorConfig, now: datetime) -> set[str]:
    """Regions (of several) where most services' latest results are confirmed failures."""
    failing: Counter[str] = Counter()
    probed: Counter[str] = Counter()
    for service, obs in by_service.items():
        start = now - config.probe_window(service)
        evidence = region_evidence(IncidentKind.OUTAGE, [o for o in obs if o.ts >= start], config.rules(service))
        for region, ev in evidence.items():
            probed[region] += 1
            if len(ev.streak()) >= config.settings.failure_threshold:
                failing[region] += 1
    if len(probed) < 2:
        return set()
    return {r for r, n in failing.items() if r not in blind and n >= max(2, math.ceil(probed[r] / 2))}


def _blind_services(region: str, by_service: dict[str, list[Observation]], config: DetectorConfig, now: datetime) -> tuple[list[str], int]:
    """Services failing (confirmed) from ``region`` but fine from every other region that probes them."""
    failing, compared = [], 0
    for service, obs in by_service.items():
        start = now - config.probe_window(service)
        window = [o for o in obs if o.ts >= start]
        evidence = region_evidence(IncidentKind.OUTAGE, window, config.rules(service))
        if region not in evidence or len(evidence) < 2:
            continue
        compared += 1
        streak = evidence[region].streak()
        if len(streak) < config.settings.failure_threshold:
            continue
        # the other regions must have seen the service fine *since* it began failing here
        others_fine = all(not ev.failing and ev.verdicts[-1][0].ts > streak[0].ts
                          for r, ev in evidence.items() if r != region)
        if others_fine:
            failing.append(service)
    return sorted(failing), compared


def _earliest_failure(region: str, services: Sequence[str], by_service: dict[str, list[Observation]], config: DetectorConfig) -> datetime:
    firsts = []
    for service in services:
        evidence = region_evidence(IncidentKind.OUTAGE, by_service[service], config.rules(service))
        firsts.append(evidence[region].streak()[0].ts)
    return min(firsts)


def _region_healthy(region: str, by_service: dict[str, list[Observation]], config: DetectorConfig) -> bool:
    """Every service seen from ``region`` has its latest results there good again."""
    seen = False
    for service, obs in by_service.items():
        ev = region_evidence(IncidentKind.OUTAGE, [o for o in obs if o.region == region], config.rules(service)).get(region)
        if ev is None:
            continue
        seen = True
        if ev.good_run() < config.settings.success_threshold:
            return False
    return seen


