"""Read-only queries and public views behind the JSON APIs (``web.api_v1``, ``web.api_v2``); no Flask here.

Everything here is public by construction: incidents of the ``public`` audience only, named by the
admin's ``public_title`` when set, with the admin's ``public_body`` as their summary (as on the
pages and feeds); probe results of the canary and confirmation kinds only, never an operator-only
outcome and never an error detail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, func, or_, select, true
from sqlalchemy.orm import Session, selectinload

from monitor.enums import (
    DOWN_OUTCOMES,
    OPERATOR_OUTCOMES,
    Audience,
    Impact,
    IncidentStatus,
    MaintenancePeriod,
    maintenance_active,
    maintenance_covers,
)
from monitor.store.histogram import COLUMN_NAMES as HISTOGRAM_COLUMNS
from monitor.store.histogram import percentile
from monitor.store.models import Incident as IncidentRow
from monitor.store.models import IncidentUpdate as IncidentUpdateRow
from monitor.store.models import Maintenance as MaintenanceRow
from monitor.store.models import ProbeResultRow, Service, rollup_hourly
from web.queries import OPERATOR_COLUMNS, PUBLIC_KINDS

PUBLIC = Audience.PUBLIC.value
OPERATOR_VALUES = sorted(o.value for o in OPERATOR_OUTCOMES)
DOWN_COLUMNS = tuple(sorted(f"n_{o.value}" for o in DOWN_OUTCOMES))
#: the maintenance statuses of Statuspage; the time decides the first two and ``completed``
SCHEDULED, IN_PROGRESS, VERIFYING, COMPLETED = "scheduled", "in_progress", "verifying", "completed"


# -- cursors ----------------------------------------------------------------------------------


class BadCursor(ValueError):
    """A cursor this API did not give out (or one for another listing)."""


@dataclass(frozen=True)
class Cursor:
    """A position in a listing ordered by (``started_at``, ``id``) newest first: the next page starts below it."""

    started_at: datetime
    id: int

    def encode(self, kind: str) -> str:
        raw = json.dumps([kind, self.started_at.astimezone(UTC).isoformat(), self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, kind: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            made_for, started_at, row_id = json.loads(raw)
            at = datetime.fromisoformat(started_at)
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
            raise BadCursor("not a cursor this API gave out") from None
        if made_for != kind or not isinstance(row_id, int) or isinstance(row_id, bool) or at.tzinfo is None:
            raise BadCursor("not a cursor this API gave out for this listing")
        if not 0 < row_id < 2**63:
            raise BadCursor("not a cursor this API gave out")
        return cls(at.astimezone(UTC), row_id)


def _below(started_at, row_id, cursor: Cursor | None) -> ColumnElement[bool]:
    """The keyset condition: rows after ``cursor`` in (started_at desc, id desc) order."""
    if cursor is None:
        return true()
    # the plain upper bound first, so the database reads the index as a range
    return and_(started_at <= cursor.started_at, or_(started_at < cursor.started_at, row_id < cursor.id))


# -- ids --------------------------------------------------------------------------------------


def stable_id(kind: str, name: str) -> str:
    """12 lowercase hex digits that depend only on ``kind`` and ``name`` (Statuspage ids are opaque strings)."""
    return hashlib.sha256(f"{kind}\0{name}".encode()).hexdigest()[:12]


def group_id(name: str) -> str:
    """The id of a service group as a component: ``group-`` and a digest of its name."""
    return f"group-{stable_id('group', name)}"


# -- services ---------------------------------------------------------------------------------


def service_rows(session: Session, service_ids: Sequence[str]) -> dict[str, Service]:
    """The ``services`` rows (creation and update times) of these services; a service from the config
    that was never synced to the table has none."""
    return {s.id: s for s in session.scalars(select(Service).where(Service.id.in_(list(service_ids))))}


def status_changes(
    session: Session, service_ids: Sequence[str], config_windows: Iterable[MaintenancePeriod], now: datetime,
) -> dict[str, datetime]:
    """Per service, the last moment up to ``now`` its public status can have changed: a public incident
    starting or resolving, or a maintenance window (config or stored) starting or ending."""
    changes: dict[str, datetime] = {}

    def seen(sid: str, at: datetime | None) -> None:
        if at is not None and at <= now and (sid not in changes or at > changes[sid]):
            changes[sid] = at

    rows = session.execute(
        select(IncidentRow.service_id, func.max(IncidentRow.started_at), func.max(IncidentRow.resolved_at))
        .where(IncidentRow.service_id.in_(list(service_ids)), IncidentRow.audience == PUBLIC,
               IncidentRow.started_at <= now)
        .group_by(IncidentRow.service_id))
    for service_id, started_at, resolved_at in rows:
        if service_id is not None:  # pragma: no branch - the query asks for these services only
            seen(service_id, started_at)
            seen(service_id, resolved_at)
    stored = session.scalars(select(MaintenanceRow).where(MaintenanceRow.starts_at <= now))
    for window in maintenance_views(config_windows, stored):
        ended = window.completed_at(now) or window.end
        if ended <= window.start:
            continue  # called off before it began: it never changed a status
        for sid in service_ids:
            if maintenance_covers(window, sid):
                seen(sid, window.start)
                seen(sid, ended)
    return changes


def last_change(session: Session, service_ids: Sequence[str], changes: dict[str, datetime], now: datetime) -> datetime:
    """When anything public last changed: a status, a public incident or its updates, a stored maintenance
    window.  ``now`` when nothing ever did."""
    incident_ids = select(IncidentRow.id).where(IncidentRow.service_id.in_(list(service_ids)),
                                                IncidentRow.audience == PUBLIC)
    candidates = [
        *changes.values(),
        session.scalar(select(func.max(IncidentRow.updated_at)).where(IncidentRow.id.in_(incident_ids))),
        session.scalar(select(func.max(IncidentUpdateRow.created_at)).where(IncidentUpdateRow.incident_id.in_(incident_ids))),
        session.scalar(select(func.max(MaintenanceRow.updated_at))),
    ]
    past = [at for at in candidates if at is not None and at <= now]
    return max(past, default=now)


# -- incidents --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicUpdate:
    id: str
    status: IncidentStatus
    body: str
    created_at: datetime
    display_at: datetime


def public_name(row: IncidentRow) -> str:
    return row.public_title or row.title


def public_status(row: IncidentRow) -> IncidentStatus:
    """The stored status (the admin side sets ``postmortem`` when it publishes one), as on the pages."""
    try:
        return IncidentStatus(row.status)
    except ValueError:
        return IncidentStatus.RESOLVED if row.resolved_at is not None else IncidentStatus.INVESTIGATING


def public_summary(row: IncidentRow) -> str | None:
    """The admin's ``public_body``: shown above the updates on the pages and feeds (the updates stay as written)."""
    return row.public_body or None


def published_postmortem(row: IncidentRow) -> tuple[str, datetime] | None:
    if row.postmortem and row.postmortem_at is not None:
        return row.postmortem, row.postmortem_at
    return None


def public_impact(row: IncidentRow) -> Impact:
    try:
        return Impact(row.impact)
    except ValueError:
        return Impact.MINOR


def _update_status(value: str, fallback: IncidentStatus) -> IncidentStatus:
    try:
        return IncidentStatus(value)
    except ValueError:
        return fallback


def public_updates(row: IncidentRow) -> list[PublicUpdate]:
    """The incident's updates, oldest first, as the incident page shows them."""
    status = public_status(row)
    return [PublicUpdate(str(u.id), _update_status(u.status, status), u.body, u.created_at, u.display_at)
            for u in sorted(row.updates, key=lambda u: (u.created_at, u.id))]


def public_incidents(
    session: Session, service_ids: Sequence[str], *, limit: int, after: Cursor | None = None,
    unresolved: bool = False, only: Collection[int] | None = None,
) -> list[IncidentRow]:
    """Public incidents of these services, newest first (``started_at``, then id), with their updates."""
    where = [IncidentRow.service_id.in_(list(service_ids)), IncidentRow.audience == PUBLIC,
             _below(IncidentRow.started_at, IncidentRow.id, after)]
    if unresolved:
        where.append(IncidentRow.resolved_at.is_(None))
    if only is not None:
        where.append(IncidentRow.id.in_(list(only)))
    return list(session.scalars(
        select(IncidentRow).where(*where).options(selectinload(IncidentRow.updates))
        .order_by(IncidentRow.started_at.desc(), IncidentRow.id.desc()).limit(limit)))


def public_incident(session: Session, service_ids: Sequence[str], incident_id: int) -> IncidentRow | None:
    """One public incident of these services; None for an operator incident as for a missing one."""
    if not 0 < incident_id < 2**63:
        return None
    found = public_incidents(session, service_ids, limit=1, only=[incident_id])
    return found[0] if found else None


# -- maintenance ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaintenanceView:
    """A maintenance window from the config (``config-<n>``) or the ``maintenances`` table (``maintenance-<id>``)."""

    id: str
    title: str
    body: str
    services: tuple[str, ...]  # empty: every service
    start: datetime
    end: datetime
    created_at: datetime  # config windows have no creation time: their start
    updated_at: datetime
    stored_status: str | None = None  # the admin's status of a stored window; None for a config window

    @property
    def stored(self) -> bool:
        return self.stored_status is not None

    def status(self, now: datetime) -> str:
        """``completed`` once ended (or marked so), ``verifying`` when an admin says so, else the time decides."""
        if self.stored_status == COMPLETED or now >= self.end:
            return COMPLETED
        if self.stored_status == VERIFYING:
            return VERIFYING
        return IN_PROGRESS if maintenance_active(self.start, self.end, now) else SCHEDULED

    def completed_at(self, now: datetime) -> datetime | None:
        if self.stored_status == COMPLETED:
            return min(self.updated_at, self.end)
        return self.end if now >= self.end else None

    def changed_at(self, now: datetime) -> datetime:
        """The last change up to ``now``: an edit, the start, the end."""
        moments = [self.updated_at, self.start, self.completed_at(now) or self.end]
        return max((m for m in moments if m <= now), default=self.updated_at)


def maintenance_views(config_windows: Iterable[MaintenancePeriod], stored: Iterable[MaintenanceRow]) -> list[MaintenanceView]:
    views = [
        MaintenanceView(f"config-{n}", getattr(w, "title", "Scheduled maintenance"), "", tuple(w.services),
                        w.start, w.end, w.start, w.start)
        for n, w in enumerate(config_windows, start=1)
    ]
    views += [
        MaintenanceView(f"maintenance-{row.id}", row.title, row.body or "", tuple(row.services or ()),
                        row.starts_at, row.ends_at, row.created_at, row.updated_at, row.status)
        for row in stored
    ]
    return views


def recent_maintenances(session: Session, limit: int) -> list[MaintenanceRow]:
    """The stored windows that start latest (any status)."""
    return list(session.scalars(
        select(MaintenanceRow).order_by(MaintenanceRow.starts_at.desc(), MaintenanceRow.id.desc()).limit(limit)))


# -- results ----------------------------------------------------------------------------------


def public_results(
    session: Session, service_ids: Sequence[str], *, every: bool = False, regions: Sequence[str] = (),
    outcomes: Sequence[str] = (), since: datetime | None = None, until: datetime | None = None,
    after: Cursor | None = None, limit: int = 100,
) -> list[Row[Any]]:
    """Canary and confirmation results of these services, newest first by (``started_at``, id), operator
    outcomes left out; ``since`` inclusive, ``until`` exclusive.

    ``every``: ``service_ids`` are all the services shown.  Then the query names the services to leave
    out instead (those no longer shown, usually none), so the database walks the ``started_at`` index
    newest first and stops after ``limit`` rows rather than sorting every result of every service.
    """
    P = ProbeResultRow
    if every:
        hidden = set(session.scalars(select(Service.id))) - set(service_ids)
        chosen = P.service_id.not_in(sorted(hidden)) if hidden else true()
    else:
        chosen = P.service_id.in_(list(service_ids))
    where = [chosen, P.kind.in_(PUBLIC_KINDS), P.outcome.not_in(OPERATOR_VALUES), _below(P.started_at, P.id, after)]
    if regions:
        where.append(P.region.in_(list(regions)))
    if outcomes:
        where.append(P.outcome.in_(list(outcomes)))
    if since is not None:
        where.append(P.started_at >= since)
    if until is not None:
        where.append(P.started_at < until)
    columns = [P.id, P.service_id, P.region, P.kind, P.canary_id, P.started_at, P.finished_at, P.outcome, P.http_status,
               P.total_ms, P.submit_ms, P.queue_ms, P.generation_ms, P.download_ms, P.quality_score, P.quality_verdict,
               P.quality_reasons, P.image_width, P.image_height, P.image_format]  # never error_detail, request_id, cost
    return list(session.execute(select(*columns).where(*where).order_by(P.started_at.desc(), P.id.desc()).limit(limit)))


# -- rollups: latency, recent health ----------------------------------------------------------


def hour_floor(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Latency:
    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


def _latency(counts: Sequence[int]) -> Latency:
    return Latency(sum(counts), percentile(counts, 0.5), percentile(counts, 0.95), percentile(counts, 0.99))


def latency_by_region(session: Session, service_id: str, since: datetime) -> tuple[Latency, dict[str, Latency]]:
    """p50/p95/p99 total latency over every region and per region, from the summed ``rollup_hourly``
    histograms of the hours from ``since`` (the hour containing ``since`` counts whole, as on the page)."""
    t = rollup_hourly
    rows = session.execute(
        select(t.c.region, *(func.coalesce(func.sum(t.c[name]), 0) for name in HISTOGRAM_COLUMNS))
        .where(t.c.service_id == service_id, t.c.bucket_start >= hour_floor(since))
        .group_by(t.c.region).order_by(t.c.region))
    total = [0] * len(HISTOGRAM_COLUMNS)
    regions: dict[str, Latency] = {}
    for region, *cells in rows:
        counts = [int(c) for c in cells]
        total = [a + b for a, b in zip(total, counts)]
        if sum(counts):
            regions[region] = _latency(counts)
    return _latency(total), regions


@dataclass(frozen=True)
class RecentHealth:
    """One service's public runs since an hour boundary, from ``rollup_hourly``."""

    counted: int  # runs that count publicly (operator outcomes left out)
    down: int
    p95_ms: float | None
    quality_mean: float | None

    @property
    def down_share(self) -> float | None:
        return self.down / self.counted if self.counted else None


def recent_health(session: Session, service_ids: Sequence[str], since: datetime) -> dict[str, RecentHealth]:
    """Per service, counted and down runs, p95 latency and mean quality over the hours from ``since``."""
    t = rollup_hourly
    rows = session.execute(
        select(t.c.service_id, func.sum(t.c.n_total), *(func.sum(t.c[c]) for c in OPERATOR_COLUMNS),
               *(func.sum(t.c[c]) for c in DOWN_COLUMNS), func.sum(t.c.quality_count), func.sum(t.c.quality_sum),
               *(func.sum(t.c[name]) for name in HISTOGRAM_COLUMNS))
        .where(t.c.service_id.in_(list(service_ids)), t.c.bucket_start >= hour_floor(since))
        .group_by(t.c.service_id))
    n_operator, n_down = len(OPERATOR_COLUMNS), len(DOWN_COLUMNS)
    found = {sid: RecentHealth(0, 0, None, None) for sid in service_ids}
    for service_id, total, *rest in rows:
        values = [v or 0 for v in rest]
        operator, down = values[:n_operator], values[n_operator:n_operator + n_down]
        quality_count, quality_sum = values[n_operator + n_down:n_operator + n_down + 2]
        histogram = [int(v) for v in values[n_operator + n_down + 2:]]
        found[service_id] = RecentHealth(
            counted=int((total or 0) - sum(operator)), down=int(sum(down)), p95_ms=percentile(histogram, 0.95),
            quality_mean=float(quality_sum) / int(quality_count) if quality_count else None)
    return found
