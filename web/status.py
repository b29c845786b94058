"""The public status page: overview, one page per service, and the health check."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, abort, render_template
from markupsafe import Markup
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from monitor.enums import ComponentStatus, Outcome, in_maintenance
from web import timefmt
from web.context import db_session, state
from web.queries import (
    NO_DATA,
    ServiceInfo,
    ServiceState,
    UptimeHistory,
    active_incidents,
    daily_uptime,
    latency_summary,
    latest_images,
    latest_results,
    reference_images,
    reference_thumbnail,
    result_thumbnail,
    service_states,
)

log = logging.getLogger("genstatus.web")

bp = Blueprint("status", __name__)

UPTIME_DAYS = 90
LATENCY_WINDOW = timedelta(hours=24)

STATUS_LABELS = {
    ComponentStatus.OPERATIONAL.value: "Operational",
    ComponentStatus.DEGRADED_PERFORMANCE.value: "Degraded performance",
    ComponentStatus.PARTIAL_OUTAGE.value: "Partial outage",
    ComponentStatus.MAJOR_OUTAGE.value: "Major outage",
    ComponentStatus.UNDER_MAINTENANCE.value: "Under maintenance",
    NO_DATA: "No data",
}
LEVEL_LABELS = {
    "up": "No downtime",
    "degraded": "Degraded",
    "partial": "Partial outage",
    "major": "Major outage",
    "none": "No data",
}


@dataclass(frozen=True)
class ServiceView:
    info: ServiceInfo
    state: ServiceState
    history: UptimeHistory


@dataclass(frozen=True)
class Banner:
    status: str  # worst component status, or "unknown" when no service has data
    text: str


def overall_banner(states: Iterable[ServiceState]) -> Banner:
    """The page-level summary, from the worst current state of any service."""
    known = {s.status for s in states if s.status is not None}
    if not known:
        return Banner(NO_DATA, "No data yet")
    if ComponentStatus.MAJOR_OUTAGE in known:
        return Banner(ComponentStatus.MAJOR_OUTAGE.value, "Major outage")
    for worse in (ComponentStatus.PARTIAL_OUTAGE, ComponentStatus.DEGRADED_PERFORMANCE):
        if worse in known:
            return Banner(worse.value, "Some services are degraded")
    if ComponentStatus.UNDER_MAINTENANCE in known:
        return Banner(ComponentStatus.UNDER_MAINTENANCE.value, "Scheduled maintenance in progress")
    return Banner(ComponentStatus.OPERATIONAL.value, "All systems operational")


def _views(services: list[ServiceInfo], now: datetime) -> list[ServiceView]:
    session = db_session()
    ids = [s.id for s in services]
    states = service_states(session, ids, now, maintenance=_in_maintenance(now))
    histories = daily_uptime(session, ids, UPTIME_DAYS, now.date())
    return [ServiceView(s, states[s.id], histories[s.id]) for s in services]


def _in_maintenance(now: datetime) -> set[str]:
    """Services inside a configured maintenance window (an empty ``services`` list means all)."""
    config = state().config
    if config is None:
        return set()
    return {s.id for s in config.services if in_maintenance(config.maintenance, s.id, now)}


def _grouped(views: list[ServiceView]) -> list[tuple[str, list[ServiceView]]]:
    """Views grouped by their group, groups in order of first appearance."""
    groups: dict[str, list[ServiceView]] = {}
    for view in views:
        groups.setdefault(view.info.group, []).append(view)
    return list(groups.items())


@bp.get("/")
def index() -> str:
    now = datetime.now(UTC)
    services = state().services(db_session())
    views = _views(services, now)
    return render_template(
        "index.html",
        groups=_grouped(views),
        banner=overall_banner(v.state for v in views),
        incidents=active_incidents(db_session(), [s.id for s in services]),
        now=now,
    )


@bp.get("/services/<service_id>")
def service(service_id: str) -> str:
    session = db_session()
    info = next((s for s in state().services(session) if s.id == service_id), None)
    if info is None:
        abort(404, f"There is no service named {service_id!r}.")
    now = datetime.now(UTC)
    (view,) = _views([info], now)
    return render_template(
        "service.html",
        view=view,
        latency=latency_summary(session, service_id, now - LATENCY_WINDOW),
        results=latest_results(session, service_id),
        images=latest_images(session, service_id),
        references=reference_images(session, service_id),
        now=now,
    )


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


@bp.get("/healthz")
def healthz() -> tuple[dict, int]:
    try:
        with state().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:  # the cause goes to the log: a public answer never names hosts, ports or databases
        log.warning("health check: database unavailable: %s", str(getattr(exc, "orig", None) or exc).splitlines()[0][:200])
        return {"status": "error"}, 503
    return {"status": "ok"}, 200


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


@bp.app_template_filter("level_label")
def level_label(level: str) -> str:
    return LEVEL_LABELS[level]


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
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


@bp.app_template_filter("percent")
def percent(value: float | None) -> str:
    """Uptime with enough digits that 99.95 % never shows as 100 %."""
    if value is None:
        return "no data"
    if value >= 100:
        return "100%"
    return f"{min(value, 99.99):.2f}%"


def site_zone():
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


@bp.app_context_processor
def _timezone() -> dict[str, str]:
    return {"timezone_name": timefmt.zone_name(site_zone())}
