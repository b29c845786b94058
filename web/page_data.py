"""Read-only queries of the public HTML pages beyond ``web.queries``: incidents as the public sees them
(``public_title`` over the detector's title, operator-only incidents never), the incident history
one page at a time, and a service's latency, quality and outcome series from the rollup tables.

Every query is bounded by a window or a page size, so a page costs the same after a year of history
as after a day.  No Flask here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from monitor.enums import OPERATOR_OUTCOMES, Audience, Outcome
from monitor.store.histogram import COLUMN_NAMES as HISTOGRAM_COLUMNS
from monitor.store.histogram import percentile
from monitor.store.models import Incident, IncidentUpdate, rollup_daily, rollup_hourly

#: outcomes the public may see counted (operator-only ones are our side, never shown)
PUBLIC_OUTCOMES = tuple(o for o in Outcome if o not in OPERATOR_OUTCOMES)


# -- incidents --------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateView:
    status: str
    body: str
    at: datetime  # the update's display time


@dataclass(frozen=True)
class IncidentView:
    """A public incident as the pages show it (no author, no operator detail)."""

    id: int
    title: str  # ``public_title`` when set
    summary: str | None  # ``public_body``
    service_id: str | None
    kind: str
    impact: str
    status: str
    started_at: datetime
    resolved_at: datetime | None
    postmortem: str | None = None
    postmortem_at: datetime | None = None
    updates: tuple[UpdateView, ...] = ()  # newest first

    def duration(self, now: datetime) -> timedelta:
        """From the start to the resolution, or to ``now`` while it goes on."""
        return max(timedelta(0), (self.resolved_at or now) - self.started_at)


def _view(row: Incident, updates: Sequence[UpdateView] = (), with_postmortem: bool = False) -> IncidentView:
    return IncidentView(
        id=row.id, title=row.public_title or row.title, summary=row.public_body or None, service_id=row.service_id,
        kind=row.kind, impact=row.impact, status=row.status, started_at=row.started_at, resolved_at=row.resolved_at,
        postmortem=(row.postmortem or None) if with_postmortem else None,
        postmortem_at=row.postmortem_at if with_postmortem else None, updates=tuple(updates),
    )


#: the one condition that keeps operator-only incidents off every public page
PUBLIC = Incident.audience == Audience.PUBLIC.value


def _newest_updates(session: Session, incident_ids: Sequence[int], per_incident: int | None) -> dict[int, list[UpdateView]]:
    """The updates of these incidents, newest first (at most ``per_incident`` each; None: all)."""
    if not incident_ids:
        return {}
    U = IncidentUpdate
    rank = func.row_number().over(partition_by=U.incident_id, order_by=(U.display_at.desc(), U.id.desc())).label("rank")
    ranked = select(U.incident_id, U.status, U.body, U.display_at, rank).where(U.incident_id.in_(list(incident_ids))).subquery()
    query = select(ranked.c.incident_id, ranked.c.status, ranked.c.body, ranked.c.display_at)
    if per_incident is not None:
        query = query.where(ranked.c.rank <= per_incident)
    found: dict[int, list[UpdateView]] = {}
    for incident_id, status, body, display_at in session.execute(query.order_by(ranked.c.incident_id, ranked.c.rank)):
        found.setdefault(incident_id, []).append(UpdateView(status, body, display_at))
    return found


def public_incident(session: Session, incident_id: int) -> IncidentView | None:
    """One public incident with its whole timeline and postmortem; None for operator-only or unknown ids."""
    row = session.scalar(select(Incident).where(Incident.id == incident_id, PUBLIC))
    if row is None:
        return None
    return _view(row, _newest_updates(session, [row.id], None).get(row.id, []), with_postmortem=True)


def open_incidents(session: Session, incident_ids: Sequence[int]) -> list[IncidentView]:
    """These incidents (the snapshot's open ones), in the order given, each with its newest update."""
    if not incident_ids:
        return []
    rows = {r.id: r for r in session.scalars(select(Incident).where(Incident.id.in_(list(incident_ids)), PUBLIC))}
    latest = _newest_updates(session, list(rows), 1)
    return [_view(rows[i], latest.get(i, [])) for i in incident_ids if i in rows]


def service_incidents(session: Session, service_id: str, limit: int = 10) -> list[IncidentView]:
    """The newest public incidents of one service, newest first."""
    rows = session.scalars(select(Incident).where(Incident.service_id == service_id, PUBLIC)
                           .order_by(Incident.started_at.desc(), Incident.id.desc()).limit(limit))
    return [_view(r) for r in rows]


@dataclass(frozen=True)
class HistoryPage:
    incidents: list[IncidentView]  # newest first
    page: int
    pages: int  # at least 1
    total: int


def incident_history(session: Session, page: int, per_page: int) -> HistoryPage | None:
    """Page ``page`` (from 1) of every public incident, newest first; None for a page past the last."""
    total = session.scalar(select(func.count()).select_from(Incident).where(PUBLIC)) or 0
    pages = max(1, -(-total // per_page))
    if page < 1 or page > pages:
        return None
    rows = session.scalars(select(Incident).where(PUBLIC).order_by(Incident.started_at.desc(), Incident.id.desc())
                           .offset((page - 1) * per_page).limit(per_page))
    return HistoryPage([_view(r) for r in rows], page, pages, total)


# -- a service's series from the rollups --------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A chart window: ``slots`` buckets of ``step`` from ``table``, the newest one holding now."""

    key: str
    label: str
    table: Table
    step: timedelta
    slots: int

    def first_bucket(self, now: datetime) -> datetime:
        now = now.astimezone(UTC)
        floor = now.replace(minute=0, second=0, microsecond=0)
        if self.step >= timedelta(days=1):
            floor = floor.replace(hour=0)
        return floor - (self.slots - 1) * self.step


WINDOWS = {w.key: w for w in (
    Window("24h", "24 hours", rollup_hourly, timedelta(hours=1), 24),
    Window("7d", "7 days", rollup_hourly, timedelta(hours=1), 24 * 7),
    Window("30d", "30 days", rollup_daily, timedelta(days=1), 30),
    Window("90d", "90 days", rollup_daily, timedelta(days=1), 90),
)}
DEFAULT_WINDOW = "24h"


@dataclass(frozen=True)
class Bucket:
    start: datetime
    p50_ms: float | None
    p95_ms: float | None
    quality: float | None  # mean quality score of the bucket's scored runs


@dataclass(frozen=True)
class ServiceSeries:
    window: Window
    buckets: list[Bucket]  # one per slot, oldest first (empty slots have None values)
    p50_ms: float | None  # over the whole window
    p95_ms: float | None
    measured: int  # runs with a latency
    outcomes: dict[str, int]  # public outcome -> runs, every public outcome present (0 for none)

    @property
    def runs(self) -> int:
        return sum(self.outcomes.values())


def service_series(session: Session, service_id: str, window: Window, now: datetime) -> ServiceSeries:
    """Latency percentiles and mean quality per bucket, and outcome counts, summed across regions.

    One grouped query over at most ``window.slots`` buckets per region.
    """
    t = window.table
    first = window.first_bucket(now)
    rows = session.execute(
        select(t.c.bucket_start, *(func.sum(t.c[h]) for h in HISTOGRAM_COLUMNS), func.sum(t.c.quality_sum),
               func.sum(t.c.quality_count), *(func.sum(t.c[f"n_{o.value}"]) for o in PUBLIC_OUTCOMES))
        .where(t.c.service_id == service_id, t.c.bucket_start >= first)
        .group_by(t.c.bucket_start)
    ).all()
    n_hist = len(HISTOGRAM_COLUMNS)
    by_slot: dict[int, Bucket] = {}
    merged = [0] * n_hist
    outcomes = {o.value: 0 for o in PUBLIC_OUTCOMES}
    for row in rows:
        start = row[0].astimezone(UTC)
        slot = int((start - first) / window.step)
        if not 0 <= slot < window.slots:
            continue  # a bucket from the future (a clock ahead of ours): not on this chart
        counts = [int(c or 0) for c in row[1:1 + n_hist]]
        quality_sum, quality_count = float(row[1 + n_hist] or 0.0), int(row[2 + n_hist] or 0)
        for i, c in enumerate(counts):
            merged[i] += c
        for outcome, count in zip(outcomes, row[3 + n_hist:]):
            outcomes[outcome] += int(count or 0)
        by_slot[slot] = Bucket(start, percentile(counts, 0.5), percentile(counts, 0.95),
                               quality_sum / quality_count if quality_count else None)
    buckets = [by_slot.get(i) or Bucket(first + i * window.step, None, None, None) for i in range(window.slots)]
    return ServiceSeries(window, buckets, percentile(merged, 0.5), percentile(merged, 0.95), sum(merged), outcomes)
