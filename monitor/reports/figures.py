"""The figures of one week's report, from the rollups and incidents (``build_report``).

Every figure of any past week comes from ``rollup_hourly``/``rollup_daily`` (kept forever) and
``incidents``; raw results are read only for model versions, and only while retention keeps them.
Each query is bounded in time -- the week, the previous week (latency and availability change), the
30 days ending at the week's end (error budget) -- so a report costs the same however much older
history the database holds.

Rules (the documented meaning of the JSON):

* A rollup hour belongs to a period when its ``bucket_start`` lies in the period (weeks and days are
  cut at local midnight; in a timezone with a half-hour offset an hour goes to the period it starts in).
* Availability is results-based, as an SLO on probes measures it: ``1 - down / counted`` over the
  scheduled canary runs (the rollups' samples: a confirmation run repeats a failure already counted,
  so it adds only its cost), ``counted`` = every run but operator outcomes, ``down`` = ``DOWN_OUTCOMES``.
* The error budget is ``100 % - target`` of the counted runs of the 30 days (30 x 24 h) ending at the
  week's end; ``used`` = the share of it the down runs spent.  Whole UTC days of it are read from
  ``rollup_daily``, the edges from ``rollup_hourly``.
* Latency percentiles come from the summed histograms (image outcomes only, as the rollups time them).
* Incidents: every incident overlapping the week; public ones in the service lines and the incident
  list, operator-audience ones listed apart.  Downtime is the time inside the week covered by public
  ``outage`` incidents (overlaps merged); open incidents run to the report's ``now``.
* Cost vs budget: ``monthly_budget`` is what each region's scheduler plans per 30 days, so a week's
  budget is ``monthly_budget x week length / 30 days x regions that probed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, func, literal_column, or_, select
from sqlalchemy.orm import Session

from monitor.config import Config, ServiceConfig
from monitor.enums import DEGRADED_OUTCOMES, DOWN_OUTCOMES, HEALTHY_OUTCOMES, OPERATOR_OUTCOMES, Audience, IncidentKind, Outcome
from monitor.reports.model import (
    ComparisonRow,
    DayFigures,
    GroupComparison,
    GroupWeek,
    IncidentRow,
    LatencyChange,
    LatencyPercentiles,
    ModelVersionChange,
    Notable,
    ServiceWeek,
    WeeklyReportData,
    WorstHour,
)
from monitor.reports.weeks import day_bounds, parse_week
from monitor.store.histogram import COLUMN_NAMES as HISTOGRAM_COLUMNS
from monitor.store.histogram import percentile
from monitor.store.models import Incident, ProbeResultRow, rollup_daily, rollup_hourly
from monitor.store.retention import raw_results_cutoff

#: the error-budget window, ending at the week's end
BUDGET_WINDOW = timedelta(days=30)
#: the period ``monthly_budget`` is planned over (the scheduler's ``BUDGET_MONTH``)
BUDGET_MONTH = timedelta(days=30)

_OUTCOME_COLUMNS = [f"n_{o.value}" for o in Outcome]
_SUMMED = ["n_total", *_OUTCOME_COLUMNS, *HISTOGRAM_COLUMNS, "quality_count", "quality_sum", "cost_sum"]


# -- tallies --------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Summed rollup rows: counts per outcome, the latency histogram, quality and cost."""

    total: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys((o.value for o in Outcome), 0))
    histogram: list[int] = field(default_factory=lambda: [0] * len(HISTOGRAM_COLUMNS))
    quality_count: int = 0
    quality_sum: float = 0.0
    quality_min: float | None = None
    cost: float = 0.0

    def add_row(self, row: Any) -> None:
        """Add one row of ``_sums`` (a mapping of the summed columns and ``quality_min``)."""
        self.total += int(row["n_total"] or 0)
        for outcome in self.outcomes:
            self.outcomes[outcome] += int(row[f"n_{outcome}"] or 0)
        for i, name in enumerate(HISTOGRAM_COLUMNS):
            self.histogram[i] += int(row[name] or 0)
        self.quality_count += int(row["quality_count"] or 0)
        self.quality_sum += float(row["quality_sum"] or 0.0)
        if row["quality_min"] is not None:
            low = float(row["quality_min"])
            self.quality_min = low if self.quality_min is None else min(self.quality_min, low)
        self.cost += float(row["cost_sum"] or 0.0)

    def merge(self, other: Tally) -> None:
        self.total += other.total
        for outcome, n in other.outcomes.items():
            self.outcomes[outcome] += n
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]
        self.quality_count += other.quality_count
        self.quality_sum += other.quality_sum
        if other.quality_min is not None:
            self.quality_min = other.quality_min if self.quality_min is None else min(self.quality_min, other.quality_min)
        self.cost += other.cost

    def count(self, outcomes: Iterable[Outcome]) -> int:
        return sum(self.outcomes[o.value] for o in outcomes)

    @property
    def operator(self) -> int:
        return self.count(OPERATOR_OUTCOMES)

    @property
    def counted(self) -> int:
        return self.total - self.operator

    @property
    def down(self) -> int:
        return self.count(DOWN_OUTCOMES)

    @property
    def availability_pct(self) -> float | None:
        return availability(self.down, self.counted)

    @property
    def quality_mean(self) -> float | None:
        return self.quality_sum / self.quality_count if self.quality_count else None

    def latency(self) -> LatencyPercentiles:
        return LatencyPercentiles(*(percentile(self.histogram, f) for f in (0.50, 0.95, 0.99)))


def availability(down: int, counted: int) -> float | None:
    return 100.0 * (1 - down / counted) if counted else None


def _sums(table: Any) -> list[Any]:
    """SUM of every additive column of a rollup table (and MIN of ``quality_min``), labelled by column."""
    c = table.c
    return [*(func.sum(c[name]).label(name) for name in _SUMMED), func.min(c.quality_min).label("quality_min")]


# -- the report ---------------------------------------------------------------------------------------


def build_report(session: Session, config: Config, week: str, now: datetime) -> WeeklyReportData:
    """The figures of ISO ``week`` (``"2026-W47"``) in the site timezone, as the database holds them at ``now``.

    ``now`` is the generation time (UTC-aware): open incidents run to it, and a week that has not
    ended by then gives a partial report (``complete`` False).  A week that has not begun is refused.
    """
    if now.tzinfo is None:
        raise ValueError("build_report needs a timezone-aware now")
    now = now.astimezone(UTC)
    tz = config.site.timezone
    the_week = parse_week(week)
    start, end = the_week.bounds(tz)
    if now < start:
        raise ValueError(f"week {the_week} has not begun yet (it starts {start.isoformat()})")
    previous = the_week.previous()
    prev_start, _ = previous.bounds(tz)
    budget_start = end - BUDGET_WINDOW
    ids = [s.id for s in config.services]
    known = set(ids)

    days = [day_bounds(d, tz) for d in the_week.days()]
    per_day, regions = _week_tallies(session, start, end, days, known)
    week_tally = {sid: _merged(per_day.get(sid, {}).values()) for sid in ids}
    prev_tally = _period_tallies(session, prev_start, start, known)
    budget_tally = _budget_tallies(session, budget_start, end, known)
    incidents = _incident_rows(session, config, start, end, now)

    services = [
        _service_week(s, week_tally[s.id], prev_tally.get(s.id, Tally()), budget_tally.get(s.id, Tally()),
                      sorted(regions.get(s.id, ())), [i for i in incidents if i.service == s.id], start, end, now)
        for s in config.services
    ]
    public = [i for i in incidents if i.audience == Audience.PUBLIC.value]
    operator = [i for i in incidents if i.audience != Audience.PUBLIC.value]
    daily = {
        s.id: [_day_figures(d, bounds, per_day.get(s.id, {}).get(n, Tally()))
               for n, (d, bounds) in enumerate(zip(the_week.days(), days, strict=True))]
        for s in config.services
    }
    notable = _notable(session, config, start, end, prev_start, now, ids)
    return WeeklyReportData(
        week=str(the_week), start=start, end=end, timezone=tz, generated_at=now, site_title=config.site.title,
        site_url=config.site.url, previous_week=str(previous), budget_window_start=budget_start,
        services=services, groups=_groups(services), incidents=public, operator_incidents=operator,
        comparisons=_comparisons(services), notable=notable, daily=daily, complete=now >= end,
    )


# -- reading the rollups ------------------------------------------------------------------------------


def _week_tallies(
    session: Session, start: datetime, end: datetime, days: Sequence[tuple[datetime, datetime]], known: set[str]
) -> tuple[dict[str, dict[int, Tally]], dict[str, set[str]]]:
    """Per service: a tally per local day of the week (0 = Monday); and the regions that probed.  One scan
    of the week's hourly rows, summed in SQL by (service, region, local day)."""
    c = rollup_hourly.c
    day_no = case(*((c.bucket_start < day_end, n) for n, (_, day_end) in enumerate(days)), else_=len(days))
    query = (
        select(c.service_id, c.region, day_no.label("day_no"), *_sums(rollup_hourly))
        .where(c.bucket_start >= start, c.bucket_start < end)
        .group_by(c.service_id, c.region, literal_column("day_no"))
    )
    per_day: dict[str, dict[int, Tally]] = {}
    regions: dict[str, set[str]] = {}
    for row in session.execute(query).mappings():
        if row["service_id"] not in known:
            continue
        per_day.setdefault(row["service_id"], {}).setdefault(int(row["day_no"]), Tally()).add_row(row)
        regions.setdefault(row["service_id"], set()).add(row["region"])
    return per_day, regions


def _grouped(session: Session, query: Select[Any], known: set[str], into: dict[str, Tally] | None = None) -> dict[str, Tally]:
    tallies = {} if into is None else into
    for row in session.execute(query).mappings():
        if row["service_id"] in known:
            tallies.setdefault(row["service_id"], Tally()).add_row(row)
    return tallies


def _period_tallies(session: Session, start: datetime, end: datetime, known: set[str]) -> dict[str, Tally]:
    c = rollup_hourly.c
    query = (select(c.service_id, *_sums(rollup_hourly))
             .where(c.bucket_start >= start, c.bucket_start < end).group_by(c.service_id))
    return _grouped(session, query, known)


def _budget_tallies(session: Session, start: datetime, end: datetime, known: set[str]) -> dict[str, Tally]:
    """``[start, end)``: the whole UTC days inside it from ``rollup_daily``, the rest from ``rollup_hourly``."""
    first_day = _ceil_day(start)
    last_day = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if first_day >= last_day:
        return _period_tallies(session, start, end, known)
    d = rollup_daily.c
    daily = (select(d.service_id, *_sums(rollup_daily))
             .where(d.bucket_start >= first_day, d.bucket_start < last_day).group_by(d.service_id))
    h = rollup_hourly.c
    edges = (select(h.service_id, *_sums(rollup_hourly))
             .where(or_(and_(h.bucket_start >= start, h.bucket_start < first_day),
                        and_(h.bucket_start >= last_day, h.bucket_start < end)))
             .group_by(h.service_id))
    return _grouped(session, edges, known, _grouped(session, daily, known))


def _ceil_day(moment: datetime) -> datetime:
    floor = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(days=1)


def _merged(tallies: Iterable[Tally]) -> Tally:
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    return total


# -- incidents ----------------------------------------------------------------------------------------


def _incident_rows(session: Session, config: Config, start: datetime, end: datetime, now: datetime) -> list[IncidentRow]:
    """Incidents overlapping ``[start, end)`` of the configured services (and agent incidents), by start."""
    names = {s.id: s.display_name for s in config.services}
    query = (
        select(Incident)
        .where(Incident.started_at < end, or_(Incident.resolved_at > start, Incident.resolved_at.is_(None)),
               or_(Incident.service_id.in_(list(names)), Incident.service_id.is_(None)))
        .order_by(Incident.started_at, Incident.id)
    )
    rows = []
    for incident in session.scalars(query):
        resolved = incident.resolved_at
        if resolved is not None and resolved > now:
            resolved = None  # not resolved yet at the report's now (a report of the past, made again)
        if incident.started_at >= now:
            continue
        clipped_end = min(end, now if resolved is None else resolved)
        rows.append(IncidentRow(
            id=incident.id, service=incident.service_id,
            service_name=names.get(incident.service_id) if incident.service_id else None,
            kind=incident.kind, audience=incident.audience, impact=incident.impact, status=incident.status,
            source=incident.source, title=incident.public_title or incident.title,
            started_at=incident.started_at, detected_at=incident.detected_at, resolved_at=resolved,
            duration_s=None if resolved is None else _seconds(resolved - incident.started_at),
            time_to_detect_s=_seconds(incident.detected_at - incident.started_at),
            time_to_resolve_s=None if resolved is None else _seconds(resolved - incident.detected_at),
            in_week_s=max(0.0, _seconds(clipped_end - max(start, incident.started_at))),
            regions=sorted(str(r) for r in (incident.regions or [])),
        ))
    return rows


def _seconds(delta: timedelta) -> float:
    return delta.total_seconds()


def _covered_seconds(intervals: Iterable[tuple[datetime, datetime]]) -> float:
    """Length of the union of intervals."""
    total, reach = 0.0, None
    for begin, finish in sorted(intervals):
        if reach is None or begin > reach:
            total += _seconds(finish - begin)
            reach = finish
        elif finish > reach:
            total += _seconds(finish - reach)
            reach = finish
    return total


# -- a service's line ------------------------------------------------------------------------------


def _pct_change(now_value: float | None, before: float | None) -> tuple[float | None, float | None]:
    if now_value is None or before is None:
        return None, None
    delta = now_value - before
    return delta, (100.0 * delta / before if before else None)


def _latency_change(current: LatencyPercentiles, previous: LatencyPercentiles) -> LatencyChange:
    p50 = _pct_change(current.p50_ms, previous.p50_ms)
    p95 = _pct_change(current.p95_ms, previous.p95_ms)
    p99 = _pct_change(current.p99_ms, previous.p99_ms)
    return LatencyChange(p50_ms=p50[0], p95_ms=p95[0], p99_ms=p99[0], p50_pct=p50[1], p95_pct=p95[1], p99_pct=p99[1])


def _service_week(
    service: ServiceConfig, week: Tally, previous: Tally, window: Tally, regions: list[str],
    incidents: list[IncidentRow], start: datetime, end: datetime, now: datetime,
) -> ServiceWeek:
    slo = service.slo
    availability_pct = week.availability_pct
    allowed = 1 - slo.availability / 100  # the error budget, as a share of the counted runs
    used = None
    if window.counted and allowed > 0:
        used = 100.0 * (window.down / window.counted) / allowed
    public = [i for i in incidents if i.audience == Audience.PUBLIC.value]
    outages = [(max(start, i.started_at), min(end, now if i.resolved_at is None else i.resolved_at))
               for i in public if i.kind == IncidentKind.OUTAGE.value]
    durations = [_seconds((now if i.resolved_at is None else i.resolved_at) - i.started_at) for i in public]
    latency = week.latency()
    latency_previous = previous.latency()
    p95_target = slo.latency_p95.total_seconds() * 1000 if slo.latency_p95 is not None else None
    quality = week.quality_mean
    successful = week.count(HEALTHY_OUTCOMES)
    budget = None
    if service.monthly_budget and regions:
        budget = service.monthly_budget * ((end - start) / BUDGET_MONTH) * len(regions)
    return ServiceWeek(
        id=service.id, name=service.display_name, group=service.group,
        probes=week.total, counted=week.counted, down=week.down, degraded=week.count(DEGRADED_OUTCOMES),
        operator_errors=week.operator, regions=regions,
        availability_pct=availability_pct, availability_previous_pct=previous.availability_pct,
        slo_target_pct=slo.availability,
        slo_met=None if availability_pct is None else availability_pct >= slo.availability,
        budget_window_availability_pct=window.availability_pct,
        error_budget_used_pct=used, error_budget_left_pct=None if used is None else 100.0 - used,
        incidents=len(public), downtime_s=_covered_seconds((b, f) for b, f in outages if f > b),
        longest_incident_s=max(durations, default=None),
        latency=latency, latency_previous=latency_previous, latency_change=_latency_change(latency, latency_previous),
        latency_slo_p95_ms=p95_target,
        latency_slo_met=None if p95_target is None or latency.p95_ms is None else latency.p95_ms <= p95_target,
        quality_mean=quality, quality_min=week.quality_min, quality_scored=week.quality_count,
        quality_slo_min=slo.min_quality,
        quality_slo_met=None if slo.min_quality is None or quality is None else quality >= slo.min_quality,
        degraded_share_pct=100.0 * week.count(DEGRADED_OUTCOMES) / week.counted if week.counted else None,
        drift_events=sum(1 for i in public if i.kind == IncidentKind.QUALITY.value),
        safety_blocks=week.outcomes[Outcome.CONTENT_FILTERED.value],
        cost=week.cost, cost_budget=budget,
        cost_budget_used_pct=100.0 * week.cost / budget if budget else None,
        successful=successful, cost_per_success=week.cost / successful if successful else None,
    )


def _day_figures(day: date, bounds: tuple[datetime, datetime], tally: Tally) -> DayFigures:
    return DayFigures(day=day, start=bounds[0], end=bounds[1], probes=tally.total, counted=tally.counted,
                      down=tally.down, availability_pct=tally.availability_pct, latency=tally.latency(),
                      quality_mean=tally.quality_mean)


# -- groups ----------------------------------------------------------------------------------------


def _groups(services: Sequence[ServiceWeek]) -> list[GroupWeek]:
    """One entry per group, in the order the config first names it."""
    order: dict[str, list[ServiceWeek]] = {}
    for s in services:
        order.setdefault(s.group, []).append(s)
    groups = []
    for name, members in order.items():
        down, counted = sum(s.down for s in members), sum(s.counted for s in members)
        budgets = [s.cost_budget for s in members if s.cost_budget is not None]
        groups.append(GroupWeek(
            group=name, services=[s.id for s in members], probes=sum(s.probes for s in members), counted=counted,
            down=down, availability_pct=availability(down, counted),
            slo_met=sum(1 for s in members if s.slo_met is True), slo_missed=sum(1 for s in members if s.slo_met is False),
            incidents=sum(s.incidents for s in members), downtime_s=sum(s.downtime_s for s in members),
            cost=sum(s.cost for s in members), cost_budget=sum(budgets) if budgets else None,
        ))
    return groups


def _comparisons(services: Sequence[ServiceWeek]) -> list[GroupComparison]:
    """Groups of two services or more (the ungrouped ones are not compared), best availability first
    (then lower p95, then id)."""
    comparisons = []
    for group in _groups(services):
        if not group.group or len(group.services) < 2:
            continue
        members = [s for s in services if s.group == group.group]
        members.sort(key=lambda s: (s.availability_pct is None, -(s.availability_pct or 0.0),
                                    s.latency.p95_ms is None, s.latency.p95_ms or 0.0, s.id))
        comparisons.append(GroupComparison(group.group, [
            ComparisonRow(service=s.id, name=s.name, availability_pct=s.availability_pct, latency_p95_ms=s.latency.p95_ms,
                          quality_mean=s.quality_mean, cost_per_success=s.cost_per_success, probes=s.probes)
            for s in members]))
    return comparisons


# -- notable events ----------------------------------------------------------------------------------


def _notable(session: Session, config: Config, start: datetime, end: datetime, prev_start: datetime,
             now: datetime, ids: list[str]) -> Notable:
    notes = []
    cutoff = raw_results_cutoff(config.retention, now)
    known = cutoff <= start
    versions: list[ModelVersionChange] = []
    if known:
        versions = model_version_changes(session, max(prev_start, cutoff), start, end, set(ids))
        if cutoff > prev_start:
            notes.append("Raw results of the previous week are partly gone (retention): a model version first "
                         "seen this week may have been reported before.")
    else:
        notes.append("Model versions are read from raw results, which retention has deleted for this week: "
                      "changes are unknown.")
    notes.append("Budget overruns avoided are not recorded: the scheduler stretches the probe interval to fit "
                 "monthly_budget at start-up and only logs it.")
    if now < end:
        notes.append("The week is not over: the figures cover it up to the time of the report.")
    return Notable(model_versions=versions, model_versions_known=known, worst_hour=_worst_hour(session, start, end, ids),
                   budget_overruns_avoided=[], budget_overruns_recorded=False, notes=notes)


def model_version_changes(session: Session, since: datetime, start: datetime, end: datetime,
                    known: set[str]) -> list[ModelVersionChange]:
    """Every version a service reported in ``[start, end)`` other than the one it reported last before
    the week (looked up back to ``since``), with when it was first seen.

    One scan of the week's raw rows (there is no index on ``model_version``), then one index lookup
    per service that reported a version: the newest row before the week that has one.
    """
    P = ProbeResultRow
    query = (
        select(P.service_id, P.model_version, func.min(P.started_at))
        .where(P.started_at >= start, P.started_at < end, P.model_version.is_not(None))
        .group_by(P.service_id, P.model_version)
    )
    during: dict[str, dict[str, datetime]] = {}  # service -> version -> first seen in the week
    for service, version, first in session.execute(query):
        if service in known and version is not None:
            during.setdefault(service, {})[version] = first
    changes = []
    for service in sorted(during):
        previous = session.scalar(
            select(P.model_version)
            .where(P.service_id == service, P.started_at >= since, P.started_at < start, P.model_version.is_not(None))
            .order_by(P.started_at.desc()).limit(1))
        for version, first in sorted(during[service].items(), key=lambda item: (item[1], item[0])):
            if version != previous:
                changes.append(ModelVersionChange(service, version, first, previous))
    changes.sort(key=lambda c: (c.first_seen, c.service, c.version))
    return changes


def _column_sum(columns: Any, outcomes: Iterable[Outcome]) -> Any:
    """SQL adding the ``n_<outcome>`` columns of some outcomes."""
    names = sorted(f"n_{o.value}" for o in outcomes)
    total = columns[names[0]]
    for name in names[1:]:
        total = total + columns[name]
    return total


def _worst_hour(session: Session, start: datetime, end: datetime, ids: list[str]) -> WorstHour | None:
    """The (service, hour) of the week with the lowest availability among hours with a down run (ties:
    more down runs, then the earliest, then the service id).

    No filter on the service ids in SQL: with one, SQLite reads the primary key (every hour of each
    service's whole history) instead of the week's range of ``bucket_start``.  Rows of services no
    longer configured are skipped here instead.
    """
    c = rollup_hourly.c
    down = func.sum(_column_sum(c, DOWN_OUTCOMES))
    counted = func.sum(c.n_total - _column_sum(c, OPERATOR_OUTCOMES))
    query = (
        select(c.service_id, c.bucket_start, down.label("down"), counted.label("counted"))
        .where(c.bucket_start >= start, c.bucket_start < end)
        .group_by(c.service_id, c.bucket_start)
        .having(down > 0)
        .order_by((down * 1.0 / counted).desc(), down.desc(), c.bucket_start, c.service_id)
    )
    configured = set(ids)
    for row in session.execute(query):
        if row.service_id in configured:
            n_down, n_counted = int(row.down), int(row.counted)
            return WorstHour(service=row.service_id, hour_start=row.bucket_start, down=n_down, counted=n_counted,
                             availability_pct=availability(n_down, n_counted))
    return None


__all__ = ["BUDGET_MONTH", "BUDGET_WINDOW", "Tally", "availability", "build_report", "model_version_changes"]
