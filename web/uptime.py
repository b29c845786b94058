"""Public uptime, the way Statuspage counts it: from incident intervals, not from single results.

A service's time in a **major outage** counts fully as downtime, time in a **partial outage**
counts at ``PARTIAL_WEIGHT`` (0.3), and degraded performance and maintenance do not count at all.
Intervals come from public incidents (``queries.incident_status`` maps kind and impact to a
component status) and maintenance windows; each is clipped to the day (in the site's timezone) or
window asked for, overlapping intervals are merged so no second counts twice, and a major outage
overlapping a partial one counts as major.

A day is "no data" when the service had no public probe result that day and no incident touched
it: before the service existed, or while the monitor was not running.  The bars' colour is the
worst state of the day; their text alternative says the day's uptime and incidents.

Everything here except ``intervals`` and ``days_with_results`` is pure, so the figures can be
checked by hand in tests.
"""

from __future__ import annotations

import functools
import threading
import time as clock
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from monitor.enums import STATUS_RANK, Audience, ComponentStatus, MaintenancePeriod, maintenance_covers
from monitor.store.models import Incident as IncidentRow
from monitor.store.models import Maintenance as MaintenanceRow
from monitor.store.models import rollup_daily
from web.queries import incident_status

#: the weight of partial-outage time in downtime (major outage counts 1, degraded and maintenance 0)
PARTIAL_WEIGHT = 0.3
DOWNTIME_WEIGHT = {ComponentStatus.MAJOR_OUTAGE: 1.0, ComponentStatus.PARTIAL_OUTAGE: PARTIAL_WEIGHT}
#: the note every page with uptime figures shows under them
FORMULA = ("Uptime counts time in a major outage fully and time in a partial outage at 30%; "
           "degraded performance and maintenance do not count as downtime.")


@dataclass(frozen=True)
class Interval:
    """A stretch of one service in one state: an incident (``incident_id``) or a maintenance window."""

    service_id: str
    status: ComponentStatus
    start: datetime
    end: datetime | None  # None: still going on
    incident_id: int | None = None
    title: str = ""

    def clipped(self, start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
        """This interval within ``[start, end)``, or None when they do not overlap."""
        lo, hi = max(self.start, start), min(self.end or end, end)
        return (lo, hi) if lo < hi else None


@dataclass(frozen=True)
class DayIncident:
    id: int
    title: str
    status: ComponentStatus


@dataclass(frozen=True)
class Day:
    """One bar: a calendar day of the site's timezone."""

    day: date
    uptime: float | None  # percent; None: no data
    worst: ComponentStatus | None  # the worst state of the day; None: no data
    downtime_s: float = 0.0  # weighted seconds of downtime
    incidents: tuple[DayIncident, ...] = ()

    @property
    def level(self) -> str:
        """The bar's colour class: ``none`` (no data) or a component status."""
        return self.worst.value if self.worst is not None else "none"


@dataclass(frozen=True)
class History:
    days: list[Day]  # oldest first, today last
    uptime: float | None = field(default=None)  # percent over the days with data; None: no data at all

    @property
    def incident_days(self) -> list[Day]:
        """The days an incident touched, newest first (the bars' text alternative lists them)."""
        return [day for day in reversed(self.days) if day.incidents]


def _merged(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _length(spans: Iterable[tuple[datetime, datetime]]) -> float:
    return sum((end - start).total_seconds() for start, end in spans)


def _minus(spans: list[tuple[datetime, datetime]], cut: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """``spans`` without the time in ``cut`` (both merged and sorted)."""
    left: list[tuple[datetime, datetime]] = []
    for start, end in spans:
        for cut_start, cut_end in cut:
            if cut_end <= start or cut_start >= end:
                continue
            if cut_start > start:
                left.append((start, cut_start))
            start = max(start, cut_end)
            if start >= end:
                break
        if start < end:
            left.append((start, end))
    return left


def downtime_seconds(intervals: Iterable[Interval], start: datetime, end: datetime) -> float:
    """Weighted downtime within ``[start, end)``: major time fully, partial time not already major at 0.3."""
    by_status: dict[ComponentStatus, list[tuple[datetime, datetime]]] = {}
    for interval in intervals:
        if interval.status in DOWNTIME_WEIGHT and (span := interval.clipped(start, end)):
            by_status.setdefault(interval.status, []).append(span)
    major = _merged(by_status.get(ComponentStatus.MAJOR_OUTAGE, []))
    partial = _minus(_merged(by_status.get(ComponentStatus.PARTIAL_OUTAGE, [])), major)
    return _length(major) + PARTIAL_WEIGHT * _length(partial)


def uptime_percent(intervals: Iterable[Interval], start: datetime, end: datetime) -> float | None:
    """Uptime over ``[start, end)`` in percent (None for an empty window)."""
    seconds = (end - start).total_seconds()
    if seconds <= 0:
        return None
    return max(0.0, 100.0 * (1.0 - downtime_seconds(intervals, start, end) / seconds))


def local_midnight(day: date, tz: tzinfo) -> datetime:
    """The UTC instant a calendar day of ``tz`` begins."""
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def calendar(days: int, now: datetime, tz: tzinfo) -> list[date]:
    """The last ``days`` calendar days of ``tz``, today last."""
    today = now.astimezone(tz).date()
    return [today - timedelta(days=days - 1 - i) for i in range(days)]


@functools.lru_cache(maxsize=64)
def _bounds(days: tuple[date, ...], tz: tzinfo) -> tuple[tuple[datetime, datetime], ...]:
    """Each day's ``[start, end)`` in UTC (computed once per calendar, not once per service and day)."""
    return tuple((local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz)) for day in days)


def history(
    intervals: Sequence[Interval], days: Sequence[date], now: datetime, tz: tzinfo, with_results: set[date],
) -> History:
    """One service's bars for ``days``; ``with_results`` are the days (of ``tz``) it had public results.

    Days before today do not depend on ``now``: they are computed once per set of intervals and
    reused (a page of 50 services x 90 days then computes 50 bars, not 4,500).
    """
    if not days:
        return History([], None)
    *past, today = days
    spans = tuple(intervals)
    before = _bars(spans, tuple(past), tz, frozenset(with_results.intersection(past)), None) if past else ((), 0.0, 0.0)
    last = _bars(spans, (today,), tz, frozenset(with_results.intersection((today,))), now)
    total_s, down_s = before[1] + last[1], before[2] + last[2]
    return History([*before[0], *last[0]], max(0.0, 100.0 * (1 - down_s / total_s)) if total_s else None)


@functools.lru_cache(maxsize=4096)
def _bars(intervals: tuple[Interval, ...], days: tuple[date, ...], tz: tzinfo, with_results: frozenset[date],
          now: datetime | None) -> tuple[tuple[Day, ...], float, float]:
    """``(bars, seconds with data, weighted downtime seconds)`` of ``days`` (``now``: None for past days)."""
    bars: list[Day] = []
    total_s = down_s = 0.0
    for day, (start, day_end) in zip(days, _bounds(days, tz), strict=True):
        end = min(day_end, now) if now is not None else day_end
        touching = [i for i in intervals if i.start < end and (i.end is None or i.end > start)] if intervals else []
        if end <= start or (day not in with_results and not touching):
            bars.append(Day(day, None, None))
            continue
        seconds = (end - start).total_seconds()
        total_s += seconds
        if not touching:  # the common day: nothing happened
            bars.append(Day(day, 100.0, ComponentStatus.OPERATIONAL))
            continue
        downtime = downtime_seconds(touching, start, end)
        worst = max((i.status for i in touching), key=STATUS_RANK.__getitem__, default=ComponentStatus.OPERATIONAL)
        seen: dict[int, DayIncident] = {}
        for i in touching:
            if i.incident_id is not None and i.incident_id not in seen:
                seen[i.incident_id] = DayIncident(i.incident_id, i.title, i.status)
        bars.append(Day(day, max(0.0, 100.0 * (1 - downtime / seconds)), worst, downtime, tuple(seen.values())))
        down_s += downtime
    return tuple(bars), total_s, down_s


def histories(
    session: Session, service_ids: Sequence[str], days: Sequence[date], now: datetime, tz: tzinfo,
    config_windows: Iterable[MaintenancePeriod] = (),
) -> dict[str, History]:
    """Each service's bars for ``days`` (oldest first): the two queries and ``history``, for every
    page, API, badge and metric that shows uptime, so they all agree."""
    spans = intervals(session, service_ids, local_midnight(days[0], tz), now, config_windows)
    with_results = days_with_results(session, service_ids, days, tz)
    return {sid: history(spans[sid], days, now, tz, with_results[sid]) for sid in service_ids}


# -- the two queries ------------------------------------------------------------------------


def intervals(
    session: Session, service_ids: Sequence[str], start: datetime, end: datetime,
    config_windows: Iterable[MaintenancePeriod] = (),
) -> dict[str, list[Interval]]:
    """Per service, the public incidents and maintenance windows overlapping ``[start, end)``."""
    found: dict[str, list[Interval]] = {sid: [] for sid in service_ids}
    rows = session.execute(
        select(IncidentRow.id, IncidentRow.service_id, IncidentRow.kind, IncidentRow.impact, IncidentRow.started_at,
               IncidentRow.resolved_at, IncidentRow.title, IncidentRow.public_title)
        .where(IncidentRow.service_id.in_(list(service_ids)), IncidentRow.audience == Audience.PUBLIC.value,
               IncidentRow.started_at < end, or_(IncidentRow.resolved_at.is_(None), IncidentRow.resolved_at > start))
    )
    for incident_id, service_id, kind, impact, started_at, resolved_at, title, public_title in rows:
        if service_id is None:  # pragma: no cover - the query asks for these services only
            continue
        found[service_id].append(Interval(service_id, incident_status(kind, impact), started_at, resolved_at,
                                          incident_id, public_title or title))
    for window in config_windows:
        for sid in service_ids:
            if maintenance_covers(window, sid):
                found[sid].append(Interval(sid, ComponentStatus.UNDER_MAINTENANCE, window.start, window.end))
    stored = session.scalars(select(MaintenanceRow).where(
        MaintenanceRow.starts_at < end, MaintenanceRow.ends_at > start, MaintenanceRow.status != "completed"))
    for row in stored:
        for sid in service_ids:
            if not row.services or sid in row.services:
                found[sid].append(Interval(sid, ComponentStatus.UNDER_MAINTENANCE, row.starts_at, row.ends_at))
    return found


#: seconds the result days of completed days are reused: a result stored late (spool replay) shows
#: on an old day's bar within this long
PAST_DAYS_TTL_S = 600.0
_past_days: dict[tuple, tuple[float, dict[str, set[date]]]] = {}
_past_days_lock = threading.Lock()


def days_with_results(session: Session, service_ids: Sequence[str], days: Sequence[date], tz: tzinfo) -> dict[str, set[date]]:
    """Per service, the days (of ``tz``) on which it had any probe result, from ``rollup_daily``.

    Daily rollups are UTC days: a UTC day with results marks every local day it overlaps.  Days
    before yesterday rarely change, so they are read once per ``PAST_DAYS_TTL_S`` per database and
    reused: each page then reads two days of rollups however long the history is.
    """
    if not days:
        return {sid: set() for sid in service_ids}
    recent = [day for day in days if day >= days[-1] - timedelta(days=1)]
    older = [day for day in days if day not in recent]
    url = session.get_bind().engine.url
    if url.database in (None, "", ":memory:"):  # one database per connection: nothing to key a cache on
        return _days_with_results(session, service_ids, days, tz)
    key = (str(url), tuple(service_ids), tuple(older), getattr(tz, "key", str(tz)))
    with _past_days_lock:
        cached = _past_days.get(key)
    if cached is None or cached[0] < clock.monotonic():
        cached = (clock.monotonic() + PAST_DAYS_TTL_S, _days_with_results(session, service_ids, older, tz))
        with _past_days_lock:
            if len(_past_days) >= 64:
                _past_days.clear()
            _past_days[key] = cached
    found = _days_with_results(session, service_ids, recent, tz)
    return {sid: found[sid] | cached[1][sid] for sid in service_ids}


def _days_with_results(session: Session, service_ids: Sequence[str], days: Sequence[date], tz: tzinfo) -> dict[str, set[date]]:
    """``days_with_results`` read from the database."""
    if not days:
        return {sid: set() for sid in service_ids}
    start = local_midnight(days[0], tz) - timedelta(days=1)
    end = local_midnight(days[-1] + timedelta(days=1), tz) + timedelta(days=1)
    t = rollup_daily
    rows = session.execute(
        select(t.c.service_id, t.c.bucket_start).where(
            t.c.service_id.in_(list(service_ids)), t.c.bucket_start >= start, t.c.bucket_start < end)
        .group_by(t.c.service_id, t.c.bucket_start).having(func.sum(t.c.n_total) > 0)
    )
    wanted = set(days)
    found: dict[str, set[date]] = {sid: set() for sid in service_ids}
    for service_id, bucket_start in rows:
        utc_start = bucket_start.astimezone(UTC)
        for instant in (utc_start, utc_start + timedelta(hours=23, minutes=59, seconds=59)):
            local_day = instant.astimezone(tz).date()
            if local_day in wanted:
                found[service_id].add(local_day)
    return found
