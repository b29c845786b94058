"""Incidents in the database: the detector's input (open and recently resolved incidents)
and its output (transitions written with their updates and alert-outbox rows in one
transaction).  State lives in the database, so an incident stays open across restarts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, select
from sqlalchemy.orm import Session

from monitor.detection.background import WINDOW, BackgroundCounter
from monitor.detection.detect import Action, DetectorConfig, Incident, Observation, Transition
from monitor.enums import Audience, Impact, IncidentKind, IncidentStatus, Outcome, ProbeKind
from monitor.store.models import AlertOutbox, IncidentUpdate, ProbeResultRow
from monitor.store.models import Incident as IncidentRow

KIND_TITLES = {
    IncidentKind.OUTAGE: {Impact.MINOR: "partial outage", Impact.MAJOR: "major outage", Impact.CRITICAL: "major outage"},
    IncidentKind.LATENCY: "slow image generation",
    IncidentKind.QUALITY: "degraded image quality",
    IncidentKind.SAFETY: "benign prompts blocked by the safety system",
    IncidentKind.OPERATOR: "probe credentials or configuration problem",
    IncidentKind.AGENT: "probe agent problem",
}


#: the results the detector reads: generations (scheduled and confirmation) and health checks
DETECTED_KINDS = tuple(kind.value for kind in ProbeKind)


def title_for(incident: Incident, names: dict[str, str]) -> str:
    what = KIND_TITLES[incident.kind]
    if isinstance(what, dict):
        what = what.get(incident.impact, "outage")
    subject = names.get(incident.service, incident.service) if incident.service else f"region {incident.regions[0]}"
    return f"{subject}: {what}"


def _to_incident(row: IncidentRow) -> Incident:
    return Incident(
        service=row.service_id,
        kind=IncidentKind(row.kind),
        audience=Audience(row.audience),
        impact=Impact(row.impact),
        regions=tuple(row.regions or ()),
        started_at=row.started_at,
        detected_at=row.detected_at,
        status=IncidentStatus(row.status),
        resolved_at=row.resolved_at,
        id=row.id,
    )


def known_incidents(session: Session, now: datetime, reopen_window: timedelta) -> list[Incident]:
    """Open incidents, plus those resolved within ``reopen_window`` (they may be reopened)."""
    rows = session.scalars(
        select(IncidentRow).where(or_(IncidentRow.resolved_at.is_(None), IncidentRow.resolved_at >= now - reopen_window))
    )
    return [_to_incident(row) for row in rows]


def recent_observations(session: Session, since: datetime, until: datetime) -> list[Observation]:
    """Canary, confirmation and health-check results in ``[since, until]``, in the detector's canonical order."""
    rows = session.execute(
        select(ProbeResultRow.started_at, ProbeResultRow.service_id, ProbeResultRow.region, ProbeResultRow.outcome,
               ProbeResultRow.canary_id, ProbeResultRow.total_ms, ProbeResultRow.quality_score, ProbeResultRow.kind,
               ProbeResultRow.error_detail)
        .where(ProbeResultRow.started_at >= since, ProbeResultRow.started_at <= until,
               ProbeResultRow.kind.in_(DETECTED_KINDS))
        .order_by(ProbeResultRow.started_at, ProbeResultRow.service_id, ProbeResultRow.region, ProbeResultRow.canary_id,
                  ProbeResultRow.id)
    )
    return [
        Observation(ts=ts, service=service, region=region, outcome=Outcome(outcome), canary=canary, latency_ms=total,
                    quality=quality, confirmation=kind == ProbeKind.CONFIRMATION.value, health=kind == ProbeKind.HEALTH.value,
                    detail=detail)
        for ts, service, region, outcome, canary, total, quality, kind, detail in rows
    ]


def background_counts(session: Session, config: DetectorConfig, now: datetime) -> BackgroundCounter:
    """Each service's background noise from the database (``monitor.detection.background``).

    The results of the last week older than the detector's lookback, as replay counts them, less
    those that fell within an incident of the same service and kind.
    """
    counter = BackgroundCounter(config)
    count_background(session, counter, now - WINDOW, now - config.lookback())
    return counter


def count_background(session: Session, counter: BackgroundCounter, since: datetime, until: datetime) -> None:
    """Add the results in ``[since, until)`` to ``counter``, in time order, less those within an incident.

    Only results older than the detector's lookback are counted: an incident opened later starts
    within the lookback of its opening, so it never covers a result already counted, and a
    counter can be kept and topped up (the coordinator does, every few minutes).
    """
    spans: dict[str | None, list[tuple[IncidentKind, datetime, datetime | None]]] = {}
    for service, kind, started, resolved in session.execute(
        select(IncidentRow.service_id, IncidentRow.kind, IncidentRow.started_at, IncidentRow.resolved_at)
        .where(IncidentRow.service_id.is_not(None), IncidentRow.started_at < until,
               or_(IncidentRow.resolved_at.is_(None), IncidentRow.resolved_at >= since))
    ):
        spans.setdefault(service, []).append((IncidentKind(kind), started, resolved))
    rows = session.execute(
        select(ProbeResultRow.started_at, ProbeResultRow.service_id, ProbeResultRow.region, ProbeResultRow.outcome,
               ProbeResultRow.canary_id, ProbeResultRow.quality_score, ProbeResultRow.kind)
        .where(ProbeResultRow.started_at >= since, ProbeResultRow.started_at < until,
               ProbeResultRow.kind.in_(DETECTED_KINDS))
        .order_by(ProbeResultRow.started_at, ProbeResultRow.service_id, ProbeResultRow.region, ProbeResultRow.canary_id,
                  ProbeResultRow.id)
        .execution_options(yield_per=5000)
    )
    for ts, service, region, outcome, canary, quality, kind in rows:
        covering = spans.get(service)
        excluded = {k for k, start, end in covering if start <= ts and (end is None or ts <= end)} if covering else ()
        counter.add(Observation(ts=ts, service=service, region=region, outcome=Outcome(outcome), canary=canary,
                                quality=quality, confirmation=kind == ProbeKind.CONFIRMATION.value,
                                health=kind == ProbeKind.HEALTH.value), excluded)


def apply_transitions(db: Engine | Session, transitions: Sequence[Transition], names: dict[str, str]) -> list[int]:
    """Write the transitions, their incident updates and their alert-outbox rows in one transaction.

    Given an engine it is a transaction of its own; given a session, the caller's transaction (the
    coordinator's, which holds the coordinator lock and read the state these transitions came from).
    A second open incident with the same key is refused by the database (``IntegrityError``).
    Returns the ids of the incidents touched.
    """
    if not transitions:
        return []
    if isinstance(db, Session):
        return _write_all(db, transitions, names)
    with Session(db) as session, session.begin():
        return _write_all(session, transitions, names)


def _write_all(session: Session, transitions: Sequence[Transition], names: dict[str, str]) -> list[int]:
    rows_by_key: dict[tuple, IncidentRow] = {}  # an incident opened and escalated in the same tick has no id yet
    return [_write(session, transition, names, rows_by_key).id for transition in transitions]


def key_region(incident: Incident) -> str | None:
    """The region part of ``Incident.key`` (agent incidents are per region), stored for the unique index."""
    return incident.key[2]


def _write(session: Session, transition: Transition, names: dict[str, str], rows_by_key: dict) -> IncidentRow:
    incident = transition.incident
    row: IncidentRow | None
    if transition.action is Action.OPEN:
        row = IncidentRow(service_id=incident.service, kind=incident.kind.value, audience=incident.audience.value,
                          key_region=key_region(incident), started_at=incident.started_at,
                          detected_at=incident.detected_at)
        session.add(row)
    else:
        row = session.get(IncidentRow, incident.id) if incident.id is not None else rows_by_key.get(incident.key)
        if row is None:
            raise LookupError(f"incident {incident.key} is not in the database")
    rows_by_key[incident.key] = row
    row.impact = incident.impact.value
    row.status = incident.status.value
    row.regions = list(incident.regions)
    row.resolved_at = incident.resolved_at
    row.title = title_for(incident, names)[:300]
    session.flush()
    session.add(IncidentUpdate(incident_id=row.id, status=incident.status.value, body=transition.message,
                               created_at=transition.at, display_at=transition.at))
    session.add(AlertOutbox(incident_id=row.id, service_id=incident.service, event=transition.action.value,
                            audience=incident.audience.value, impact=incident.impact.value, title=row.title,
                            body=transition.message, created_at=transition.at, attempts=0))
    return row
