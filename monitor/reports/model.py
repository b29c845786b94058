"""The weekly report's figures: plain dataclasses every output (HTML, Markdown, JSON, charts) is rendered from.

``monitor.reports.figures.build_report`` fills them from the rollups and incidents of one ISO week;
``monitor.reports.schema.to_json`` turns them into the documented JSON.  All datetimes are UTC-aware
(render them in ``WeeklyReportData.timezone``); a figure that cannot be computed (no probes counted,
no latency measured, no budget configured, ...) is ``None``, never 0.  Percentages are 0..100.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class LatencyPercentiles:
    """Total latency percentiles (ms) read from the summed hourly latency histograms.

    The histogram buckets are ~26 % wide, so a percentile is within ~13 % of the exact value.
    """

    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


@dataclass(frozen=True)
class LatencyChange:
    """This week's percentiles minus the previous week's: in ms and as % of the previous week's value.

    ``None`` when either week has no latency.  Positive = slower.
    """

    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    p50_pct: float | None = None
    p95_pct: float | None = None
    p99_pct: float | None = None


@dataclass(frozen=True)
class ServiceWeek:
    """One service's summary line for the week.

    Availability is results-based (what an SLO on probes measures): ``1 - down / counted`` over the
    canary and confirmation runs of the week, where ``counted`` leaves out operator outcomes
    (our side or our credentials) and ``down`` is ``monitor.enums.DOWN_OUTCOMES``.  Incident figures
    count PUBLIC incidents only (operator incidents are in ``WeeklyReportData.operator_incidents``).
    """

    id: str
    name: str
    group: str
    # -- probes -------------------------------------------------------------------------
    probes: int                 # canary + confirmation runs in the week (every outcome)
    counted: int                # probes minus operator outcomes: the availability denominator
    down: int                   # runs with a down outcome
    degraded: int               # runs with a degraded outcome (slow, quality, filtered, rate limited)
    operator_errors: int        # auth_error + probe_error: excluded from every public figure
    regions: list[str]          # regions that reported a probe this week, sorted
    # -- availability and SLO -----------------------------------------------------------
    availability_pct: float | None
    availability_previous_pct: float | None  # the previous week's, the same way
    slo_target_pct: float
    slo_met: bool | None        # None when nothing was counted
    #: the 30 days ending at the week's end: availability, and the error budget (100 - target) used / left
    budget_window_availability_pct: float | None
    error_budget_used_pct: float | None   # may exceed 100 (budget overspent)
    error_budget_left_pct: float | None   # 100 - used; negative when overspent
    # -- incidents (public) -------------------------------------------------------------
    incidents: int              # public incidents of this service overlapping the week (any kind)
    downtime_s: float           # time inside the week covered by public outage incidents (overlaps merged)
    longest_incident_s: float | None  # the longest whole duration among them (open ones: up to the report's now)
    # -- latency ------------------------------------------------------------------------
    latency: LatencyPercentiles
    latency_previous: LatencyPercentiles
    latency_change: LatencyChange
    latency_slo_p95_ms: float | None    # slo.latency_p95, when configured
    latency_slo_met: bool | None        # p95 <= target; None without a target or without latency
    # -- quality ------------------------------------------------------------------------
    quality_mean: float | None  # mean score of the scored images (quality_sum / quality_count)
    quality_min: float | None
    quality_scored: int
    quality_slo_min: float | None       # slo.min_quality, when configured
    quality_slo_met: bool | None
    degraded_share_pct: float | None    # degraded / counted
    #: public incidents of kind ``quality`` (the detector's drift/quality incidents) overlapping the week;
    #: per-result reference-drift flags live in raw rows only and are not used (old weeks have none)
    drift_events: int
    safety_blocks: int          # canary/confirmation runs answered ``content_filtered`` (a benign prompt blocked)
    # -- cost ---------------------------------------------------------------------------
    cost: float                 # USD, sum of the probes' cost in the week
    cost_budget: float | None   # monthly_budget x week hours / 720 x regions that probed (each region plans its own)
    cost_budget_used_pct: float | None
    successful: int             # runs that returned an image that passed (ok + slow)
    cost_per_success: float | None


@dataclass(frozen=True)
class GroupWeek:
    """A group's totals (services with the same ``group``; ``""`` is the ungrouped services)."""

    group: str
    services: list[str]         # service ids, in config order
    probes: int
    counted: int
    down: int
    availability_pct: float | None    # pooled: 1 - sum(down) / sum(counted)
    slo_met: int                # services that met their SLO
    slo_missed: int             # services that missed it (services without data are in neither)
    incidents: int
    downtime_s: float           # sum over the services
    cost: float
    cost_budget: float | None   # sum of the services' budgets (None when none has one)


@dataclass(frozen=True)
class IncidentRow:
    """One incident that overlapped the week.

    ``time_to_detect_s`` = detected_at - started_at (first bad result -> incident opened);
    ``time_to_resolve_s`` = resolved_at - detected_at; ``duration_s`` = resolved_at - started_at.
    Those are ``None`` while the incident is open.  ``title`` is ``public_title`` when set.
    """

    id: int
    service: str | None         # service id; None for an agent (region) incident
    service_name: str | None
    kind: str                   # outage | latency | quality | safety | agent | operator
    audience: str               # public | operator
    impact: str
    status: str
    source: str                 # auto | manual
    title: str
    started_at: datetime
    detected_at: datetime
    resolved_at: datetime | None
    duration_s: float | None
    time_to_detect_s: float
    time_to_resolve_s: float | None
    in_week_s: float            # the part of the incident inside the week (open: up to min(week end, now))
    regions: list[str]


@dataclass(frozen=True)
class ComparisonRow:
    service: str
    name: str
    availability_pct: float | None
    latency_p95_ms: float | None
    quality_mean: float | None
    cost_per_success: float | None
    probes: int


@dataclass(frozen=True)
class GroupComparison:
    """Providers of one group side by side (groups with two services or more), best availability first."""

    group: str
    rows: list[ComparisonRow]


@dataclass(frozen=True)
class ModelVersionChange:
    """A model version a service reported in the week other than the one it reported last before the week.

    ``previous`` is that earlier version, looked up in the raw results of the 7 days before the week
    (None: none reported there, e.g. a new service or a provider that names no version).
    """

    service: str
    version: str
    first_seen: datetime
    previous: str | None


@dataclass(frozen=True)
class WorstHour:
    """The (service, hour) of the week with the lowest availability, the service's regions summed, among
    hours with a down run (ties: more down runs, then the earliest hour, then the service id)."""

    service: str
    hour_start: datetime
    down: int
    counted: int
    availability_pct: float | None


@dataclass(frozen=True)
class Notable:
    #: new or changed model versions -- from raw results only, so only while they are retained
    model_versions: list[ModelVersionChange]
    #: False when retention (``retention.raw_results`` before the report's now) has reached into the week:
    #: model versions are then unknown, not "none"
    model_versions_known: bool
    worst_hour: WorstHour | None
    #: runs skipped to stay under monthly_budget.  Nothing records them (the scheduler stretches the
    #: interval at start-up and only logs it), so this is always empty and ``budget_overruns_recorded`` False.
    budget_overruns_avoided: list[str] = field(default_factory=list)
    budget_overruns_recorded: bool = False
    notes: list[str] = field(default_factory=list)  # plain-language caveats for the reader


@dataclass(frozen=True)
class DayFigures:
    """One local day (site timezone) of one service, for the charts."""

    day: date                   # the local date
    start: datetime             # UTC bounds of the local day
    end: datetime
    probes: int
    counted: int
    down: int
    availability_pct: float | None
    latency: LatencyPercentiles
    quality_mean: float | None


@dataclass(frozen=True)
class WeeklyReportData:
    """Everything in one week's report.  ``[start, end)`` is the ISO week in ``timezone``, in UTC."""

    week: str                   # "2026-W47"
    start: datetime
    end: datetime
    timezone: str
    generated_at: datetime
    site_title: str
    site_url: str | None
    previous_week: str
    budget_window_start: datetime   # the 30-day error-budget window: [end - 30 days, end)
    services: list[ServiceWeek]
    groups: list[GroupWeek]
    incidents: list[IncidentRow]            # public incidents, by start
    operator_incidents: list[IncidentRow]   # operator-audience incidents, listed apart
    comparisons: list[GroupComparison]
    notable: Notable
    daily: dict[str, list[DayFigures]]      # service id -> its 7 local days, Monday first
    complete: bool              # False when the week had not ended at generated_at (a partial report)
