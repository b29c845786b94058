"""The public status page: overview, one page per service and per incident, the incident history,
images, robots.txt and the health check.

Every page is plain server-rendered HTML (no scripts: the CSP forbids them), and costs the same
whatever the length of the history: the current state comes from ``web.snapshot``, the 90 daily bars
from ``web.uptime`` (incident intervals and the daily rollups), charts from the rollup tables, lists
from bounded queries (``web.page_data``).  A rendered page is reused for a few seconds while the
database has not changed (``web.caching.cached_view``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, current_app, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.enums import ComponentStatus, Impact, IncidentStatus, Outcome
from web import charts, richtext, timefmt
from web.caching import cached_view
from web.context import db_session, state
from web.page_data import (
    DEFAULT_WINDOW,
    WINDOWS,
    IncidentView,
    ServiceSeries,
    open_incidents,
    public_incident,
    service_incidents,
    service_series,
)
from web.page_data import incident_history as history_page
from web.queries import (
    NO_DATA,
    ServiceInfo,
    latest_images,
    latest_results,
    reference_images,
    reference_thumbnail,
    result_thumbnail,
)
from web.snapshot import MAINTENANCE_TEXT, NO_DATA_TEXT, Snapshot, snapshot
from web.uptime import FORMULA, History, calendar, histories

log = logging.getLogger("genstatus.web")

bp = Blueprint("status", __name__)

UPTIME_DAYS = 90
#: incidents per page of ``/history``
HISTORY_PAGE_SIZE = 25
#: recent incidents listed on a service page
SERVICE_INCIDENTS = 10
#: rows of the latest-results table on a service page
LATEST_RESULTS = 20
#: seconds a rendered page is reused while the database has not changed (``web.caching.cached_view``)
RENDER_SECONDS = 5

STATUS_LABELS = {
    ComponentStatus.OPERATIONAL.value: "Operational",
    ComponentStatus.DEGRADED_PERFORMANCE.value: "Degraded performance",
    ComponentStatus.PARTIAL_OUTAGE.value: "Partial outage",
    ComponentStatus.MAJOR_OUTAGE.value: "Major outage",
    ComponentStatus.UNDER_MAINTENANCE.value: "Under maintenance",
    NO_DATA: "No data",
}
IMPACT_LABELS = {
    Impact.NONE.value: "No impact",
    Impact.MINOR.value: "Minor",
    Impact.MAJOR.value: "Major",
    Impact.CRITICAL.value: "Critical",
}
INCIDENT_STATUS_LABELS = {s.value: s.value.capitalize() for s in IncidentStatus}
OUTCOME_LABELS = {
    Outcome.OK.value: "Image delivered",
    Outcome.SLOW.value: "Slow",
    Outcome.DEGRADED_QUALITY.value: "Image failed a quality check",
    Outcome.BAD_OUTPUT.value: "Unusable answer",
    Outcome.CONTENT_FILTERED.value: "Benign prompt blocked",
    Outcome.RATE_LIMITED.value: "Rate limited",
    Outcome.SERVER_ERROR.value: "Server error",
    Outcome.TIMEOUT.value: "Timed out",
    Outcome.CONNECTION_ERROR.value: "Provider unreachable",
    Outcome.CLIENT_ERROR.value: "Request refused",
}


# -- the overview -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Banner:
    impact: str  # the Statuspage indicator: none, minor, major or critical
    text: str
    css: str  # the colour: the impact, or ``maintenance`` / ``nodata``


def banner(snap: Snapshot) -> Banner:
    impact, text = snap.indicator.impact.value, snap.indicator.description
    css = {NO_DATA_TEXT: "nodata", MAINTENANCE_TEXT: "maintenance"}.get(text, impact)
    return Banner(impact, text, css)


@dataclass(frozen=True)
class MaintenanceView:
    title: str
    body: str
    services: list[str]  # display names; empty: every service
    starts_at: datetime
    ends_at: datetime
    in_progress: bool


def maintenance_views(snap: Snapshot, config: Config | None, names: dict[str, str]) -> list[MaintenanceView]:
    """Windows in progress or still to come: the config's and those scheduled on the admin side, soonest first."""
    now = snap.now
    found = [MaintenanceView(w.title, "", [names.get(s, s) for s in w.services], w.start, w.end, w.start <= now)
             for w in (config.maintenance if config else []) if w.end > now]
    found += [MaintenanceView(m.title, m.body or "", [names.get(s, s) for s in (m.services or [])], m.starts_at,
                              m.ends_at, m.starts_at <= now) for m in snap.maintenances]
    return sorted(found, key=lambda m: (m.starts_at, m.ends_at))


@dataclass(frozen=True)
class ServiceRow:
    info: ServiceInfo
    status: str  # the component's state key (``unknown``: no recent data)
    history: History


def uptime_histories(session: Session, service_ids: Sequence[str], now: datetime, tz: tzinfo) -> dict[str, History]:
    """The 90 daily bars of each service: three queries for any number of services."""
    days = calendar(UPTIME_DAYS, now, tz)
    config = state().config
    return histories(session, service_ids, days, now, tz, config.maintenance if config else ())


def _grouped(rows: list[ServiceRow]) -> list[tuple[str, list[ServiceRow]]]:
    groups: dict[str, list[ServiceRow]] = {}
    for row in rows:
        groups.setdefault(row.info.group, []).append(row)
    return list(groups.items())


@bp.get("/")
@cached_view(seconds=RENDER_SECONDS, on_results=False)
def index() -> str:
    now = datetime.now(UTC)
    session, web = db_session(), state()
    services = web.services(session)
    snap = snapshot(session, services, web.config, now)
    histories = uptime_histories(session, [s.id for s in services], now, site_zone())
    rows = [ServiceRow(c.info, c.state.key, histories[c.info.id]) for c in snap.components]
    names = {s.id: s.name for s in services}
    return render_template(
        "index.html",
        banner=banner(snap),
        groups=_grouped(rows),
        incidents=open_incidents(session, [i.id for i in snap.incidents]),
        maintenances=maintenance_views(snap, web.config, names),
        names=names,
        formula=FORMULA,
        now=now,
    )


# -- a service ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeShare:
    outcome: str
    label: str
    count: int
    share: float  # percent of the window's public runs


def outcome_shares(series: ServiceSeries) -> list[OutcomeShare]:
    """The window's public outcomes that happened, most frequent first."""
    total = series.runs
    shares = [OutcomeShare(o, OUTCOME_LABELS.get(o, o), n, 100.0 * n / total) for o, n in series.outcomes.items() if n]
    return sorted(shares, key=lambda s: -s.count)


def _bucket_label(series: ServiceSeries, start: datetime) -> str:
    if series.window.step >= timedelta(days=1):
        return start.date().isoformat()  # daily rollups are UTC days
    style = "time" if series.window.slots <= 24 else "date"
    return timefmt.local_text(start, site_zone(), style)


def _x_labels(series: ServiceSeries) -> list[str]:
    buckets = series.buckets
    return [_bucket_label(series, b.start) for b in (buckets[0], buckets[len(buckets) // 2], buckets[-1])]


def latency_chart(series: ServiceSeries) -> charts.LineChart:
    lines = [charts.Series("p50", "s-p50", [b.p50_ms for b in series.buckets]),
             charts.Series("p95", "s-p95", [b.p95_ms for b in series.buckets])]
    desc = "; ".join(charts.describe(s, duration_ms) for s in lines)
    return charts.line_chart("latency-chart", f"Total latency, last {series.window.label}", desc, lines,
                             _x_labels(series), _latency_tick)


def _latency_tick(value: float) -> str:
    """An axis label: ``0``, ``500 ms``, ``1.5 s``, ``40 s`` (no trailing ``.0``)."""
    return "0" if value == 0 else duration_ms(value).replace(".0 s", " s")


def quality_chart(series: ServiceSeries) -> charts.LineChart:
    lines = [charts.Series("mean quality score", "s-quality", [b.quality for b in series.buckets])]
    return charts.line_chart("quality-chart", f"Mean quality score, last {series.window.label}",
                             charts.describe(lines[0], _score), lines, _x_labels(series), _score, top=1.0)


def _score(value: float) -> str:
    return f"{value:.2f}" if value else "0"


@bp.get("/services/<service_id>")
@cached_view(seconds=RENDER_SECONDS)
def service(service_id: str) -> str:
    session, web = db_session(), state()
    info = next((s for s in web.services(session) if s.id == service_id), None)
    if info is None:
        abort(404, f"There is no service named {service_id!r}.")
    window = WINDOWS.get(request.args.get("window", DEFAULT_WINDOW))
    if window is None:
        abort(404, f"There is no chart window {request.args['window']!r}: choose one of {', '.join(WINDOWS)}.")
    now = datetime.now(UTC)
    (component,) = snapshot(session, [info], web.config, now).components
    series = service_series(session, service_id, window, now)
    return render_template(
        "service.html",
        info=info,
        status=component.state.key,
        regions=component.state.regions,
        checked_at=component.state.checked_at,
        history=uptime_histories(session, [service_id], now, site_zone())[service_id],
        series=series,
        windows=list(WINDOWS.values()),
        latency=latency_chart(series),
        quality=quality_chart(series),
        outcomes=outcome_shares(series),
        incidents=service_incidents(session, service_id, SERVICE_INCIDENTS),
        results=latest_results(session, service_id, LATEST_RESULTS),
        images=latest_images(session, service_id),
        references=reference_images(session, service_id),
        formula=FORMULA,
        now=now,
    )


# -- incidents ------------------------------------------------------------------------------


def _service_names(session: Session) -> dict[str, str]:
    return {s.id: s.name for s in state().services(session)}


@bp.get("/incidents/<int:incident_id>")
@cached_view(seconds=RENDER_SECONDS, on_results=False)
def incident(incident_id: int) -> str:
    session = db_session()
    found = public_incident(session, incident_id) if incident_id <= MAX_ROW_ID else None
    if found is None:
        abort(404, "There is no such incident.")
    names = _service_names(session)
    return render_template("incident.html", incident=found, names=names, now=datetime.now(UTC))


def months(incidents: list[IncidentView], tz: tzinfo) -> list[tuple[date, list[IncidentView]]]:
    """Incidents (newest first) grouped by the month they started in, in the site's timezone."""
    grouped: dict[date, list[IncidentView]] = {}
    for item in incidents:
        local = item.started_at.astimezone(tz)
        grouped.setdefault(date(local.year, local.month, 1), []).append(item)
    return list(grouped.items())


@bp.get("/history")
@cached_view(seconds=RENDER_SECONDS, on_results=False)
def incident_history() -> str:
    raw = request.args.get("page", "1")
    page = int(raw) if raw.isdecimal() and len(raw) < 10 else 0
    session = db_session()
    found = history_page(session, page, HISTORY_PAGE_SIZE)
    if found is None:
        abort(404, "There is no such page of the incident history.")
    return render_template("history.html", page=found, months=months(found.incidents, site_zone()),
                           names=_service_names(session), now=datetime.now(UTC))


# -- images, robots, health -------------------------------------------------------------------


def _webp(data: bytes | None) -> Response:
    if data is None:
        abort(404, "There is no such image.")
    response = Response(data, mimetype="image/webp")
    response.headers["Cache-Control"] = "public, max-age=86400, immutable"  # an id never changes its picture
    return response


MAX_ROW_ID = 2**63 - 1  # larger than any id a database column holds: not found, not an overflow


@bp.get("/images/results/<int:result_id>.webp")
def result_image(result_id: int) -> Response:
    """The stored thumbnail of a result (full images are never served on the public page)."""
    return _webp(result_thumbnail(db_session(), result_id) if result_id <= MAX_ROW_ID else None)


@bp.get("/images/references/<int:reference_id>.webp")
def reference_image(reference_id: int) -> Response:
    return _webp(reference_thumbnail(db_session(), reference_id) if reference_id <= MAX_ROW_ID else None)


@bp.get("/robots.txt")
def robots() -> Response:
    return current_app.send_static_file("robots.txt")


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Browsers and crawlers ask for it without reading the page: the SVG icon the pages link to."""
    return current_app.send_static_file("favicon.svg")


@bp.get("/healthz")
def healthz() -> tuple[dict, int]:
    try:
        with state().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:  # the cause goes to the log: a public answer never names hosts, ports or databases
        log.warning("health check: database unavailable: %s", str(getattr(exc, "orig", None) or exc).splitlines()[0][:200])
        return {"status": "error"}, 503
    return {"status": "ok"}, 200


# -- template filters -------------------------------------------------------------------------


@bp.app_template_filter("public_detail")
def public_detail(outcome: str) -> str:
    """The public page's phrase for a run's outcome; the raw error detail (provider pages, addresses,
    tracebacks) is for the operator only."""
    try:
        return Outcome(outcome).public_phrase
    except ValueError:
        return ""


@bp.app_template_filter("status_label")
def status_label(key: str) -> str:
    return STATUS_LABELS.get(key, key)


@bp.app_template_filter("impact_label")
def impact_label(impact: str) -> str:
    return IMPACT_LABELS.get(impact, impact)


@bp.app_template_filter("incident_status_label")
def incident_status_label(status: str) -> str:
    return INCIDENT_STATUS_LABELS.get(status, status)


@bp.app_template_filter("outcome_effect")
def outcome_effect(outcome: str) -> str:
    """none, degraded, down or operator; ``unknown`` for an outcome this version does not know."""
    try:
        return Outcome(outcome).uptime_effect.value
    except ValueError:
        return "unknown"


@bp.app_template_filter("duration_ms")
def duration_ms(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 1000:
        return f"{value:.0f} ms"
    return f"{value / 1000:.1f} s" if value < 100_000 else f"{value / 1000:.0f} s"


@bp.app_template_filter("duration")
def duration(value: timedelta) -> str:
    """``3 d 4 h``, ``2 h 15 min``, ``45 min``; under a minute ``< 1 min``."""
    minutes = int(value.total_seconds() // 60)
    if minutes < 1:
        return "< 1 min"
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


@bp.app_template_filter("percent")
def percent(value: float | None) -> str:
    """Uptime with enough digits that 99.95 % never shows as 100 %."""
    return charts.percent_text(value)


@bp.app_template_filter("public_text")
def public_text(value: str | None) -> Markup:
    """Text written for the public (incident updates, summaries, postmortems, maintenance notes): the
    one place that turns it into HTML — Markdown, sanitised (``web.richtext``)."""
    return richtext.render(value)


@bp.app_template_filter("uptime_bars")
def uptime_bars(value: History) -> Markup:
    label = f"Daily uptime over the last {len(value.days)} days: {charts.percent_text(value.uptime)}"
    return charts.uptime_bars(value, label)


@bp.app_template_filter("incident_day_items")
def incident_day_items(value: History) -> Markup:
    url = url_for("status.incident", incident_id=0).removesuffix("0") + "{id}"
    return charts.incident_day_items(value, url)


@bp.app_template_filter("month_label")
def month_label(value: date) -> str:
    return value.strftime("%B %Y")


def site_zone() -> tzinfo:
    """The zone the page shows times in: ``site.timezone`` (UTC by default)."""
    return timefmt.zone(state().site.timezone)


@bp.app_template_filter("time_tag")
def time_tag(value: datetime | None, style: str = "minute") -> Markup:
    """``<time datetime=… title="… UTC">`` with the time in the site's timezone (styles: ``timefmt.STYLES``)."""
    return timefmt.time_element(value, site_zone(), style)


@bp.app_template_filter("local_time")
def local_time(value: datetime | None, style: str = "minute") -> str:
    """The time in the site's timezone as plain text (for attributes such as ``alt``)."""
    return timefmt.local_text(value, site_zone(), style)


#: query parameters that make a different page (kept in the canonical address when not the default)
CANONICAL_ARGS = {"window": DEFAULT_WINDOW, "page": "1"}


def canonical_url() -> str | None:
    """This page's address under ``site.url`` (None when the site's public address is not configured)."""
    base = state().site.url
    if not base:
        return None
    kept = [(k, request.args[k]) for k, default in CANONICAL_ARGS.items() if request.args.get(k, default) != default]
    return base.rstrip("/") + request.path + (f"?{urlencode(kept)}" if kept else "")


@bp.app_context_processor
def _page_context() -> dict[str, object]:
    return {"timezone_name": timefmt.zone_name(site_zone()), "canonical": canonical_url()}
