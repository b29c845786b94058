"""Read-only queries behind the status pages (no Flask here).

Pages read only the rollup tables and the newest raw rows, so rendering time does not
grow with the length of the history.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, String, Table, func, literal, select, union_all
from sqlalchemy.orm import Session, aliased

from monitor.enums import (
    DEGRADED_OUTCOMES,
    DOWN_OUTCOMES,
    OPERATOR_OUTCOMES,
    STATUS_RANK,
    Audience,
    ComponentStatus,
    Impact,
    IncidentKind,
    Outcome,
    ProbeKind,
)
from monitor.store.histogram import COLUMN_NAMES as HISTOGRAM_COLUMNS
from monitor.store.histogram import percentile
from monitor.store.models import Incident as IncidentRow
from monitor.store.models import (
    ProbeResultRow,
    ReferenceImageRow,
    ResultImageRow,
    Service,
    rollup_daily,
    rollup_hourly,
)

#: Kinds that are real generations; cheap health checks do not decide the public state.
PUBLIC_KINDS = (ProbeKind.CANARY.value, ProbeKind.CONFIRMATION.value)
DOWN_COLUMNS = tuple(sorted(f"n_{o.value}" for o in DOWN_OUTCOMES))
DEGRADED_COLUMNS = tuple(sorted(f"n_{o.value}" for o in DEGRADED_OUTCOMES))
OPERATOR_COLUMNS = tuple(sorted(f"n_{o.value}" for o in OPERATOR_OUTCOMES))

#: A region's latest result older than this is stale and no longer decides the state.
STATE_WINDOW = timedelta(hours=24)
#: A day whose downtime share reaches this is drawn as a major outage (red), below it orange.
MAJOR_DOWN_SHARE = 0.10

NO_DATA = "unknown"
#: (service, region) pairs looked up per statement (SQLite allows 500 terms in a compound SELECT)
PAIRS_PER_QUERY = 400


@dataclass(frozen=True)
class ServiceInfo:
    id: str
    name: str
    group: str


@dataclass(frozen=True)
class ServiceState:
    """The current state of one service; ``status`` is None when there is no recent data."""

    status: ComponentStatus | None
    regions: dict[str, Outcome]
    checked_at: datetime | None

    @property
    def key(self) -> str:
        """The machine-readable state used in ``data-status`` (``unknown`` for no data)."""
        return self.status.value if self.status else NO_DATA


@dataclass(frozen=True)
class DayUptime:
    day: date
    counted: int  # results that count for public uptime (operator outcomes excluded)
    down: int
    degraded: int

    @property
    def uptime(self) -> float | None:
        """Percentage of counted results that were not down; None when the day has no data."""
        return 100.0 * (self.counted - self.down) / self.counted if self.counted else None

    @property
    def level(self) -> str:
        """The bar colour class: none, up, degraded, partial or major."""
        if not self.counted:
            return "none"
        if self.down:
            return "major" if self.down / self.counted >= MAJOR_DOWN_SHARE else "partial"
        return "degraded" if self.degraded else "up"


@dataclass(frozen=True)
class UptimeHistory:
    days: list[DayUptime]  # oldest first, one per UTC day, today last

    @property
    def uptime(self) -> float | None:
        """Uptime over every day with data, weighted by the number of counted results."""
        counted = sum(d.counted for d in self.days)
        down = sum(d.down for d in self.days)
        return 100.0 * (counted - down) / counted if counted else None


@dataclass(frozen=True)
class LatencySummary:
    count: int
    p50_ms: float | None
    p95_ms: float | None


def active_services(session: Session) -> list[ServiceInfo]:
    """Active services from the ``services`` table, in display order."""
    rows = session.scalars(select(Service).where(Service.active.is_(True)).order_by(Service.position, Service.id))
    return [ServiceInfo(id=s.id, name=s.name, group=s.group_name or "") for s in rows]


#: component status for an open public incident, by kind (outages by impact)
_INCIDENT_STATUS = {
    IncidentKind.LATENCY.value: ComponentStatus.DEGRADED_PERFORMANCE,
    IncidentKind.QUALITY.value: ComponentStatus.DEGRADED_PERFORMANCE,
    IncidentKind.SAFETY.value: ComponentStatus.DEGRADED_PERFORMANCE,
}


def incident_status(kind: str, impact: str) -> ComponentStatus:
    """The component status an open public incident of this kind and impact puts its service in
    (impact ``none``, a notice written by hand, leaves it operational)."""
    if impact == Impact.NONE.value:
        return ComponentStatus.OPERATIONAL
    if kind == IncidentKind.OUTAGE.value:
        return ComponentStatus.PARTIAL_OUTAGE if impact == Impact.MINOR.value else ComponentStatus.MAJOR_OUTAGE
    return _INCIDENT_STATUS.get(kind, ComponentStatus.DEGRADED_PERFORMANCE)


def open_incident_statuses(session: Session, service_ids: Sequence[str]) -> dict[str, ComponentStatus]:
    """The worst component status each service's open public incidents call for."""
    rows = session.execute(
        select(IncidentRow.service_id, IncidentRow.kind, IncidentRow.impact).where(
            IncidentRow.service_id.in_(list(service_ids)), IncidentRow.resolved_at.is_(None),
            IncidentRow.audience == Audience.PUBLIC.value)
    )
    worst: dict[str, ComponentStatus] = {}
    for service_id, kind, impact in rows:
        status = incident_status(kind, impact)
        if service_id is None:
            continue
        if service_id not in worst or STATUS_RANK[status] > STATUS_RANK[worst[service_id]]:
            worst[service_id] = status
    return worst


def service_states(
    session: Session,
    service_ids: Sequence[str],
    now: datetime,
    window: timedelta = STATE_WINDOW,
    maintenance: Collection[str] = (),
) -> dict[str, ServiceState]:
    """The current state of each service: under maintenance, else its worst open public incident,
    else operational when it has recent results (None: no data).

    The state follows confirmed incidents, never a single failed result, so the page does not
    flap on blips.  The latest public result of each region is returned for display (operator
    outcomes skipped), limited to ``window`` before ``now``: see ``latest_by_region``.
    """
    latest = latest_by_region(session, service_ids, now - window)
    regions: dict[str, dict[str, Outcome]] = {sid: {} for sid in service_ids}
    checked: dict[str, datetime] = {}
    for service_id, region, outcome, started_at in latest:
        regions[service_id][region] = Outcome(outcome)
        checked[service_id] = max(started_at, checked.get(service_id, started_at))
    incidents = open_incident_statuses(session, service_ids)

    def status(sid: str, by_region: dict[str, Outcome]) -> ComponentStatus | None:
        if sid in maintenance:
            return ComponentStatus.UNDER_MAINTENANCE
        if sid in incidents:
            return incidents[sid]
        return ComponentStatus.OPERATIONAL if by_region else None

    return {
        sid: ServiceState(status=status(sid, by_region), regions=dict(sorted(by_region.items())), checked_at=checked.get(sid))
        for sid, by_region in regions.items()
    }


def latest_by_region(session: Session, service_ids: Sequence[str], since: datetime) -> list[tuple[str, str, str, datetime]]:
    """``(service, region, outcome, started_at)`` of the newest public result per service and region since ``since``.

    The regions come from the hourly rollups (written with every result), and each region's newest
    row is one index lookup on ``(service_id, started_at)``: the cost does not grow with the number
    of results in the window (a window function over a day of raw rows took 0.6 s at 50 services x 3
    regions x 1/min).  Services without rollups in the window (rows written without them) fall back
    to scanning their raw rows.
    """
    P, R = ProbeResultRow, rollup_hourly
    floor = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    # the pairs of the last hours, read on the bucket_start index and made distinct here (a DISTINCT in
    # SQL makes SQLite scan the whole rollup history on the primary key instead)
    wanted = set(service_ids)
    pairs_seen = sorted({(sid, region) for sid, region in session.execute(
        select(R.c.service_id, R.c.region).where(R.c.bucket_start >= floor)) if sid in wanted})
    covered = {sid for sid, _ in pairs_seen}
    public = (P.kind.in_(PUBLIC_KINDS), P.outcome.not_in(sorted(o.value for o in OPERATOR_OUTCOMES)))
    found: list[tuple] = []
    for start in range(0, len(pairs_seen), PAIRS_PER_QUERY):
        chunk = pairs_seen[start:start + PAIRS_PER_QUERY]
        pairs = union_all(*(select(literal(sid, String).label("service_id"), literal(region, String).label("region"))
                            for sid, region in chunk)).subquery("pairs")
        x = aliased(P)
        newest = (select(x.id).where(x.service_id == pairs.c.service_id, x.region == pairs.c.region,
                                     x.started_at >= since, x.kind.in_(PUBLIC_KINDS),
                                     x.outcome.not_in(sorted(o.value for o in OPERATOR_OUTCOMES)))
                  .order_by(x.started_at.desc(), x.id.desc()).limit(1).correlate(pairs).scalar_subquery())
        found += [tuple(row) for row in session.execute(
            select(P.service_id, P.region, P.outcome, P.started_at).where(P.id.in_(select(newest).select_from(pairs))))]
    rest = [sid for sid in service_ids if sid not in covered]
    if rest:
        ranked = (select(P.service_id, P.region, P.outcome, P.started_at,
                         func.row_number().over(partition_by=(P.service_id, P.region),
                                                order_by=(P.started_at.desc(), P.id.desc())).label("rank"))
                  .where(P.service_id.in_(rest), P.started_at >= since, *public).subquery())
        found += [tuple(row) for row in session.execute(
            select(ranked.c.service_id, ranked.c.region, ranked.c.outcome, ranked.c.started_at).where(ranked.c.rank == 1))]
    return found


def _sum(table: Table, columns: Sequence[str]) -> ColumnElement[int]:
    """``col1 + col2 + ...`` within one row."""
    return sum((table.c[name] for name in columns[1:]), table.c[columns[0]])


def daily_uptime(
    session: Session, service_ids: Sequence[str], days: int = 90, today: date | None = None
) -> dict[str, UptimeHistory]:
    """Per service, ``days`` daily entries (oldest first) summed across regions from ``rollup_daily``."""
    today = today or datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time(), tzinfo=UTC)
    end = datetime.combine(today + timedelta(days=1), time(), tzinfo=UTC)
    t = rollup_daily
    rows = session.execute(
        select(
            t.c.service_id,
            t.c.bucket_start,
            func.sum(t.c.n_total - _sum(t, OPERATOR_COLUMNS)),
            func.sum(_sum(t, DOWN_COLUMNS)),
            func.sum(_sum(t, DEGRADED_COLUMNS)),
        )
        .where(t.c.service_id.in_(list(service_ids)), t.c.bucket_start >= start, t.c.bucket_start < end)
        .group_by(t.c.service_id, t.c.bucket_start)
    )
    found: dict[tuple[str, date], DayUptime] = {}
    for service_id, bucket_start, counted, down, degraded in rows:
        day = bucket_start.date()
        found[(service_id, day)] = DayUptime(day, int(counted or 0), int(down or 0), int(degraded or 0))
    calendar = [first + timedelta(days=i) for i in range(days)]
    return {
        sid: UptimeHistory([found.get((sid, day)) or DayUptime(day, 0, 0, 0) for day in calendar])
        for sid in service_ids
    }


def latest_results(session: Session, service_id: str, limit: int = 50) -> list[ProbeResultRow]:
    """The newest canary and confirmation results of a service, newest first; operator-only outcomes
    (our credentials, our own errors) are not the public's business and are left out."""
    P = ProbeResultRow
    return list(
        session.scalars(
            select(P)
            .where(P.service_id == service_id, P.kind.in_(PUBLIC_KINDS),
                   P.outcome.not_in([o.value for o in OPERATOR_OUTCOMES]))
            .order_by(P.started_at.desc(), P.id.desc())
            .limit(limit)
        )
    )


def latency_summary(session: Session, service_id: str, since: datetime) -> LatencySummary:
    """p50/p95 total latency from the summed ``rollup_hourly`` histograms of the hours from ``since``.

    The hour that contains ``since`` is included whole (rollups have hourly resolution).
    """
    t = rollup_hourly
    floor = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    row = session.execute(
        select(*(func.coalesce(func.sum(t.c[name]), 0) for name in HISTOGRAM_COLUMNS)).where(
            t.c.service_id == service_id, t.c.bucket_start >= floor
        )
    ).one()
    counts = [int(value) for value in row]
    return LatencySummary(count=sum(counts), p50_ms=percentile(counts, 0.5), p95_ms=percentile(counts, 0.95))


@dataclass(frozen=True)
class ActiveIncident:
    id: int
    title: str
    status: str
    impact: str
    started_at: datetime
    latest: str | None  # the newest update's text


def active_incidents(session: Session, service_ids: Sequence[str]) -> list[ActiveIncident]:
    """Open public incidents of these services, newest first, each with its latest update."""
    rows = session.scalars(
        select(IncidentRow).where(IncidentRow.resolved_at.is_(None), IncidentRow.audience == Audience.PUBLIC.value,
                                  IncidentRow.service_id.in_(list(service_ids)))
        .order_by(IncidentRow.started_at.desc())
    )
    return [ActiveIncident(r.id, r.public_title or r.title, r.status, r.impact, r.started_at, r.updates[-1].body if r.updates else None)
            for r in rows]


@dataclass
class ImageCard:
    """A thumbnail on the service page: a recent output with its verdict, or a reference picture."""

    id: int
    canary_id: str | None
    taken_at: datetime
    verdict: str | None = None
    score: float | None = None
    outcome: str | None = None
    reasons: list[str] = field(default_factory=list)
    region: str | None = None


def latest_images(session: Session, service_id: str, limit: int = 8) -> list[ImageCard]:
    """The newest result thumbnails of a service (canary and confirmation runs), newest first."""
    P, Img = ProbeResultRow, ResultImageRow
    rows = session.execute(
        select(P.id, P.canary_id, P.started_at, P.quality_verdict, P.quality_score, P.outcome, P.quality_reasons,
               P.region)
        .join(Img, Img.result_id == P.id)
        .where(Img.service_id == service_id, Img.thumbnail.is_not(None), P.kind.in_(PUBLIC_KINDS))
        .order_by(P.id.desc()).limit(limit)
    ).all()
    return [ImageCard(id=r[0], canary_id=r[1], taken_at=r[2], verdict=r[3], score=r[4], outcome=r[5],
                      reasons=list(r[6] or []), region=r[7]) for r in rows]


def reference_images(session: Session, service_id: str) -> list[ImageCard]:
    R = ReferenceImageRow
    rows = session.execute(
        select(R.id, R.canary_id, R.captured_at, R.region).where(R.service_id == service_id, R.thumbnail.is_not(None))
        .order_by(R.canary_id, R.id)
    ).all()
    return [ImageCard(id=r[0], canary_id=r[1], taken_at=r[2], region=r[3]) for r in rows]


def result_thumbnail(session: Session, result_id: int) -> bytes | None:
    P, Img = ProbeResultRow, ResultImageRow
    return session.scalar(select(Img.thumbnail).join(P, P.id == Img.result_id)
                          .where(Img.result_id == result_id, P.kind.in_(PUBLIC_KINDS)))


def reference_thumbnail(session: Session, reference_id: int) -> bytes | None:
    return session.scalar(select(ReferenceImageRow.thumbnail).where(ReferenceImageRow.id == reference_id))
