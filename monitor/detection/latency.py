"""Latency incidents: the p95 over a window against the threshold, or the share of runs recorded slow."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from monitor.config.durations import format_duration
from monitor.detection.model import Action, DetectorConfig, Incident, Observation, ServiceRules, Transition
from monitor.enums import (
    IMAGE_OUTCOMES,
    Audience,
    Impact,
    IncidentKind,
    IncidentStatus,
    Outcome,
)

#: a latency incident needs more than this share of slow runs (what "p95 over the threshold" means)
SLOW_SHARE = 0.05


def _wilson_lower(successes: int, n: int, z: float = 3.0) -> float:
    """Lower bound of the Wilson score interval for a proportion."""
    if n == 0:
        return 0.0
    p = successes / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - margin) / (1 + z * z / n)


def _p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def latency_transitions(
    service: str, obs: Sequence[Observation], rules: ServiceRules, incident: Incident | None, config: DetectorConfig, now: datetime
) -> list[Transition]:
    """Latency incidents from the p95 over a window against the service's threshold.

    Without a threshold (a service configured without one, or a trace replayed without ``-c``) the
    recorded outcome is the evidence: a run that says ``slow`` is slow, and "more than 5 % of runs
    slow" takes the place of "p95 over the threshold".
    """
    threshold = rules.latency_threshold_ms
    settings = config.settings
    window = [o for o in obs if o.outcome in IMAGE_OUTCOMES and not o.health and o.ts >= now - settings.latency_window]
    latency = {id(o): o.latency_ms for o in window if o.latency_ms is not None}
    if threshold is not None:
        timed = [o for o in window if id(o) in latency]
        slow = [o for o in timed if latency[id(o)] > threshold]
    else:
        timed = window
        slow = [o for o in timed if o.outcome is Outcome.SLOW]
    if len(timed) < settings.latency_min_samples:
        return []  # too few samples to judge either way: keep whatever state we have
    if threshold is not None:
        p95 = _p95([latency[id(o)] for o in timed])
        over = p95 > threshold
        level = f"p95 latency {p95 / 1000:.1f}s"
        limit = f"the {threshold / 1000:g}s threshold"
        recent_fast = all(latency[id(o)] <= threshold for o in timed[-settings.success_threshold:])
    else:
        over = len(slow) > SLOW_SHARE * len(timed)
        level = f"{len(slow) / len(timed):.0%} of runs slow"
        limit = "the 5 % allowed (runs recorded as slow; no latency threshold configured)"
        recent_fast = all(o.outcome is not Outcome.SLOW for o in timed[-settings.success_threshold:])
    if incident is None:
        # over the threshold means more than 5 % of runs are slow; with few samples one outlier
        # decides, so open only when the slow share is above 5 % with high confidence (z = 3:
        # the window slides over every result, so a single test must be strict)
        if not over or _wilson_lower(len(slow), len(timed)) <= SLOW_SHARE or rules.in_maintenance(now):
            return []
        regions = tuple(sorted({o.region for o in slow}))
        new = Incident(service, IncidentKind.LATENCY, Audience.PUBLIC, Impact.MINOR, regions, slow[0].ts, now)
        return [Transition(Action.OPEN, new, now, f"{level} over {limit} "
                           f"({len(slow)} of {len(timed)} runs slow in {format_duration(settings.latency_window)}).")]
    last_slow = slow[-1].ts if slow else None
    if not over and recent_fast and (last_slow is None or now - last_slow >= config.recovery(service)):
        done = replace(incident, status=IncidentStatus.RESOLVED, resolved_at=now)
        return [Transition(Action.RESOLVE, done, now, f"Resolved: latency back to normal ({level}).")]
    if not over and incident.status is IncidentStatus.INVESTIGATING:
        return [Transition(Action.MONITORING, replace(incident, status=IncidentStatus.MONITORING), now,
                           f"Latency back to normal ({level}); monitoring.")]
    if over and incident.status is IncidentStatus.MONITORING:
        return [Transition(Action.UPDATE, replace(incident, status=IncidentStatus.INVESTIGATING), now,
                           f"Latency up again ({level}).")]
    return []


