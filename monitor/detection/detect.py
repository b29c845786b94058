"""Incident detection: confirmed, quorum-based and hysteretic.

``detect(observations, open_incidents, config, now) -> transitions`` is a pure function:
the live coordinator and ``genstatus replay`` run exactly this code.  It looks at the
recent results of every service, per region, and decides which incidents to open,
escalate, de-escalate, move to monitoring or resolve.

The rules, per service and incident kind (outage, quality, safety, operator):

* A region is *failing* when its latest relevant result is bad, *confirmed* when its last
  ``failure_threshold`` results are bad (a failed canary plus its confirmation run),
  *significant* when its bad streak is too unlikely for that service's own background noise
  (``monitor.detection.background``: the false-incident budget decides), and *persistent*
  when it is significant and spans ``failure_threshold`` scheduled runs and at least
  ``2 x failure_threshold`` results (so a blip shorter than one interval never qualifies).
* Quorum: confirmed failures in at least half of the regions that probed the service
  recently -- and in at least two of them -- open the incident (impact major when every
  probing region fails, else minor).  Where one region makes the quorum (one or two probing
  regions), that region's failures must be significant.  Bad results in every region at once
  (three or more regions) are independent evidence and open it without waiting for a
  confirmation.  Failures in fewer regions open a regional (minor) incident only when they
  persist.
* Hysteresis: an incident resolves only after ``success_threshold`` good results in a row in
  every probing region *and* a recovery period without bad results; until then a re-failure
  continues the same incident.  Impact changes update it instead of opening another.
* Regions whose probe agent is blind (most services fail there while other regions see them
  fine) or silent get an operator-only ``agent`` incident and are left out of the evidence.
* Latency incidents come from the p95 over a window with a minimum sample count.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Collection, Container, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from operator import attrgetter

from monitor.config.durations import format_duration
from monitor.detection.agents import SuspectRegions, agent_transitions
from monitor.detection.background import NOISY_KINDS, Background, BackgroundCounter, Judgement, judge
from monitor.detection.evidence import AUDIENCE, RegionEvidence, region_evidence, verdict
from monitor.detection.latency import latency_transitions
from monitor.detection.model import Action, DetectorConfig, Incident, Observation, ServiceRules, Transition
from monitor.enums import (
    IMPACT_RANK,
    Audience,
    Impact,
    IncidentKind,
    IncidentStatus,
)

# -- the detector ----------------------------------------------------------------------

_PRIOR = Background()  # a service with no history: judged on the prior alone


def detect(
    observations: Iterable[Observation],
    open_incidents: Iterable[Incident],
    config: DetectorConfig,
    now: datetime,
    *,
    focus: Collection[str] | None = None,
    background: BackgroundCounter | None = None,
) -> list[Transition]:
    """Transitions that the results up to ``now`` call for, given the incidents already open.

    ``open_incidents`` may also hold incidents resolved within ``reopen_window``: one of those
    is reopened, rather than a new one opened, when its service fails again (flap damping).

    ``focus`` limits the per-service evaluation to those services (replay passes the ones
    with a new result at ``now``: nothing changes for the others until their next result).
    ``background`` holds each service's recent noise (none: every service is judged on the prior).
    """
    lookback = now - config.lookback()
    # time order; ties keep the caller's order, which is ``order_key`` order for replay (it sorts
    # the trace once) and for the coordinator (its query orders the same way)
    recent = sorted((o for o in observations if lookback <= o.ts <= now), key=attrgetter("ts"))
    by_service: dict[str, list[Observation]] = defaultdict(list)
    for obs in recent:
        by_service[obs.service].append(obs)
    open_by_key: dict[tuple, Incident] = {}
    resolved_by_key: dict[tuple, Incident] = {}
    for known in open_incidents:
        if known.resolved_at is None:
            open_by_key[known.key] = known
        elif now - known.resolved_at <= config.settings.reopen_window:
            previous = resolved_by_key.get(known.key)
            if previous is None or previous.resolved_at is None or known.resolved_at > previous.resolved_at:
                resolved_by_key[known.key] = known

    transitions: list[Transition] = []
    fresh = None if focus is None else {o.region for o in recent if o.ts == now}
    blind = agent_transitions(recent, by_service, open_by_key, config, now, transitions, fresh)
    suspects = SuspectRegions(by_service, blind, config, now)
    outages = {key[0]: incident for key, incident in open_by_key.items() if key[1] is IncidentKind.OUTAGE}
    for service in sorted(by_service if focus is None else set(focus) & set(by_service)):
        service_obs = [o for o in by_service[service] if o.region not in blind]
        blind_probing = {o.region for o in by_service[service] if o.region in blind and o.ts >= now - config.probe_window(service)}
        rules = config.rules(service)
        newest = [o for o in service_obs if o.ts == now]
        for kind in (IncidentKind.OUTAGE, IncidentKind.QUALITY, IncidentKind.SAFETY, IncidentKind.OPERATOR):
            incident = open_by_key.get((service, kind, None))
            if focus is not None and incident is None and not any(verdict(kind, o, rules) for o in newest):
                continue  # stepping result by result: with nothing open, only a new bad result can open something
            result = _reopening(_evaluate(kind, service, service_obs, rules, incident, config, now, len(blind_probing),
                                          suspects, background), resolved_by_key)
            transitions.extend(result)
            current: Incident | None = result[-1].incident if result else open_by_key.get((service, kind, None))
            if kind is IncidentKind.OUTAGE:
                outages.pop(service, None)
                if current is not None and current.resolved_at is None:
                    outages[service] = current
        latency = latency_transitions(service, service_obs, rules, open_by_key.get((service, IncidentKind.LATENCY, None)), config, now)
        transitions.extend(_reopening(latency, resolved_by_key))
    transitions.extend(_critical_groups(outages, config, now))
    return transitions


def _reopening(transitions: list[Transition], resolved_by_key: dict[tuple, Incident]) -> list[Transition]:
    """Turn an ``open`` into a ``reopen`` of the same incident when it was resolved only recently."""
    out = []
    for transition in transitions:
        previous = resolved_by_key.get(transition.incident.key) if transition.action is Action.OPEN else None
        if previous is None:
            out.append(transition)
            continue
        new = transition.incident
        reopened = replace(previous, status=IncidentStatus.INVESTIGATING, resolved_at=None, impact=new.impact,
                           regions=tuple(sorted(set(previous.regions) | set(new.regions))))
        out.append(Transition(Action.REOPEN, reopened, transition.at, f"Failing again soon after recovering. {transition.message}"))
    return out


def order_key(obs: Observation) -> tuple:
    """Results in time order, ties at one timestamp broken the same way every time."""
    return (obs.ts, obs.service, obs.region, obs.canary or "", obs.confirmation, obs.health, obs.outcome)


def _evaluate(
    kind: IncidentKind,
    service: str,
    obs: Sequence[Observation],
    rules: ServiceRules,
    incident: Incident | None,
    config: DetectorConfig,
    now: datetime,
    blind_regions: int = 0,
    suspects: Container[str] = (),
    background: BackgroundCounter | None = None,
) -> list[Transition]:
    """Transitions for one service and kind.

    ``blind_regions`` probe the service but are ignored (their agent is blind): they still
    count in the quorum's denominator, so losing a region never makes a single region's
    failures a majority.  ``suspects`` are regions where most services fail at once: a
    regional incident waits there until the agent check has had its say.
    """
    settings = config.settings
    window_start = now - config.probe_window(service)
    probing = sorted({o.region for o in obs if o.ts >= window_start})
    evidence = {region: ev for region, ev in region_evidence(kind, obs, rules).items() if region in probing}
    failing = sorted(r for r, ev in evidence.items() if ev.failing)
    # a streak of failed health checks alone proves nothing about generation: it needs a failed canary in it
    confirmed = [r for r in failing if len(streak := evidence[r].streak()) >= settings.failure_threshold
                 and not all(o.health for o in streak)]
    n = len(probing)
    quorum = max(1, math.ceil((n + blind_regions) / 2))
    judged: dict[str, Judgement] = {}
    if incident is None and kind in NOISY_KINDS:
        for region in confirmed:
            streak = evidence[region].streak()
            canaries = {o.canary for o, _ in evidence[region].verdicts if not (o.confirmation or o.health)}
            judged[region] = judge(kind, streak, background.of(service, region, kind) if background else _PRIOR,
                                   interval=rules.interval, canaries=len(canaries), regions=n + blind_regions,
                                   budget=settings.false_incident_budget)

    def significant(region: str) -> bool:
        return region not in judged or judged[region].significant

    persistent = [r for r in confirmed if _persists(evidence[r].streak(), settings.failure_threshold)
                  and significant(r) and r not in suspects]
    backed = len(confirmed) >= max(quorum, 2)  # two or more regions confirm it: independent evidence
    alone = quorum == 1 and any(significant(r) for r in confirmed)  # one region is the quorum: noise-aware
    wide = n > 0 and (backed or alone or (n >= 3 and len(failing) == n))
    audience = AUDIENCE.get(kind, Audience.PUBLIC)

    if incident is None:
        if not (wide or persistent):
            return []
        if audience is Audience.PUBLIC and rules.in_maintenance(now):
            return []
        regions = tuple(failing if wide else persistent)
        started = min(evidence[r].streak()[0].ts for r in regions)
        new = Incident(service, kind, audience, _impact(kind, wide, failing, n), regions, started, now)
        facts = _facts(kind, regions, evidence, started, "confirmed")
        reasons = [] if backed else [judged[r] for r in regions if r in judged]
        if reasons:
            facts += " Evidence: " + " ".join(reason.explain() for reason in reasons)
        return [Transition(Action.OPEN, new, now, facts, evidence=max(len(evidence[r].streak()) for r in regions))]

    if failing:
        impact = _impact(kind, wide or len(failing) >= quorum, failing, n)
        if impact is Impact.MAJOR and incident.impact is Impact.CRITICAL:
            impact = Impact.CRITICAL  # critical is decided across the provider group (_critical_groups)
        regions = tuple(sorted(set(failing)))
        if impact != incident.impact:
            action = Action.ESCALATE if IMPACT_RANK[impact] > IMPACT_RANK[incident.impact] else Action.DEESCALATE
            updated = replace(incident, impact=impact, regions=regions, status=IncidentStatus.INVESTIGATING)
            return [Transition(action, updated, now, _facts(kind, regions, evidence, incident.started_at, f"impact now {impact}"))]
        if incident.status is IncidentStatus.MONITORING or not set(regions) <= set(incident.regions):
            updated = replace(incident, regions=tuple(sorted(set(regions) | set(incident.regions))), status=IncidentStatus.INVESTIGATING)
            return [Transition(Action.UPDATE, updated, now, _facts(kind, regions, evidence, incident.started_at, "still failing"))]
        return []

    if not evidence:
        return []  # no recent results at all: silence is not recovery
    last_bad = max((ts for ev in evidence.values() if (ts := ev.last_bad()) is not None), default=None)
    recovered = all(ev.good_run() >= settings.success_threshold for ev in evidence.values())
    if recovered and (last_bad is None or now - last_bad >= config.recovery(service)):
        done = replace(incident, status=IncidentStatus.RESOLVED, resolved_at=now)
        return [Transition(Action.RESOLVE, done, now, f"Resolved: {settings.success_threshold}+ good results in a row in "
                           f"{', '.join(sorted(evidence)) or 'every region'} and no failure for {format_duration(now - last_bad) if last_bad else 'the recovery period'}.")]
    if incident.status is IncidentStatus.INVESTIGATING:
        watching = replace(incident, status=IncidentStatus.MONITORING)
        return [Transition(Action.MONITORING, watching, now, "Results look good again; monitoring before resolving.")]
    return []


def _persists(streak: Sequence[Observation], threshold: int) -> bool:
    scheduled = sum(1 for o in streak if not (o.confirmation or o.health))
    return scheduled >= threshold and len(streak) >= 2 * threshold


def _impact(kind: IncidentKind, wide: bool, failing: Sequence[str], n: int) -> Impact:
    if kind is not IncidentKind.OUTAGE:
        return Impact.MINOR
    return Impact.MAJOR if wide and len(failing) == n else Impact.MINOR


def _facts(kind: IncidentKind, regions: Sequence[str], evidence: dict[str, RegionEvidence], started: datetime, lead: str) -> str:
    """A one-paragraph, human-readable summary of the evidence."""
    outcomes: Counter[str] = Counter()
    canaries: set[str] = set()
    example = None
    for region in regions:
        for obs in evidence[region].streak():
            outcomes[obs.outcome.value] += 1
            if obs.canary:
                canaries.add(obs.canary)
            example = example or obs.detail
    seen = ", ".join(f"{name} ({count})" for name, count in outcomes.most_common())
    text = (f"{lead.capitalize()} {kind.value} problem in {', '.join(regions)}: {seen}; first failure "
            f"{started.strftime('%Y-%m-%d %H:%M:%S')} UTC")
    if canaries:
        text += f"; canaries {', '.join(sorted(canaries))}"
    if example:
        text += f"; e.g. {example[:300]}"
    return text if text.endswith((".", "!", "?")) else text + "."


# -- provider groups -------------------------------------------------------------------


def _critical_groups(outages: dict[str, Incident], config: DetectorConfig, now: datetime) -> list[Transition]:
    """Several services of one provider group down together make each of those incidents critical."""
    by_group: dict[str, list[Incident]] = defaultdict(list)
    for service, incident in outages.items():
        group = config.rules(service).group
        if group and incident.impact in (Impact.MAJOR, Impact.CRITICAL):
            by_group[group].append(incident)
    transitions = []
    for group, incidents in sorted(by_group.items()):
        target = Impact.CRITICAL if len(incidents) >= 2 else Impact.MAJOR
        for incident in incidents:
            if incident.impact != target:
                action = Action.ESCALATE if target is Impact.CRITICAL else Action.DEESCALATE
                message = (f"{len(incidents)} services of {group} are down together." if target is Impact.CRITICAL
                           else f"Only this service of {group} is still down.")
                transitions.append(Transition(action, replace(incident, impact=target), now, message))
    return transitions
