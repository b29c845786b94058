"""The native JSON API, ``/api/v1/``: services, results, uptime, latency, incidents and a recommendation.

Also the conventions every JSON API here follows (``web.api_v2`` uses them too):

* errors are JSON, never HTML: ``{"error": "...", "parameter": "limit"}`` with 400 for a bad
  parameter (``parameter`` names it), 404 for an unknown id or path, 405 for a method other than
  GET/HEAD, 503 with ``Retry-After`` when the database does not answer;
* ``<``, ``>`` and ``&`` inside strings are written as ``\\u003c``, ``\\u003e``, ``\\u0026``, so a
  body never holds markup even when a client mistakes it for HTML (the text parses back verbatim);
* answers are public data: ``Access-Control-Allow-Origin: *`` so widgets on other sites may read
  them; ``web.caching`` gives them their cache headers, and each view's rendering is reused for
  ``RENDER_SECONDS`` while the database does not change;
* times are ISO-8601 with an offset (UTC here; the Statuspage API uses the site's timezone), ids
  are strings.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy import Row
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, NotFound, default_exceptions

from monitor.enums import OPERATOR_OUTCOMES, STATUS_RANK, ComponentStatus, Outcome
from monitor.store.models import Incident as IncidentRow
from web import timefmt
from web.api_queries import (
    BadCursor,
    Cursor,
    Latency,
    RecentHealth,
    group_id,
    hour_floor,
    latency_by_region,
    public_impact,
    public_incident,
    public_incidents,
    public_name,
    public_results,
    public_status,
    public_summary,
    public_updates,
    published_postmortem,
    recent_health,
)
from web.caching import cached_view
from web.context import db_session, state
from web.queries import NO_DATA, ServiceInfo, incident_status
from web.snapshot import Snapshot, snapshot
from web.uptime import (
    FORMULA,
    History,
    calendar,
    downtime_seconds,
    intervals,
    local_midnight,
    uptime_percent,
)
from web.uptime import histories as uptime_histories

log = logging.getLogger("genstatus.web")

#: routes carry their whole path: the blueprint also answers unknown paths anywhere under /api/
bp = Blueprint("api_v1", __name__)

#: seconds a rendered answer is reused while the database has not changed (``web.caching.cached_view``)
RENDER_SECONDS = 5
#: seconds a client should wait after a 503
RETRY_AFTER = 10
RESULTS_LIMIT, RESULTS_MAX = 100, 1000
INCIDENTS_LIMIT, INCIDENTS_MAX = 50, 100
#: ``window`` values: rolling 24 hours, or the last N calendar days of the site's timezone (today included)
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
UPTIME_WINDOW, LATENCY_WINDOW = "30d", "24h"
#: what ``recommend`` calls recent: the hours of ``rollup_hourly`` from this long ago (the current hour included)
RECENT = timedelta(hours=1)
PUBLIC_OUTCOMES = [o.value for o in Outcome if o not in OPERATOR_OUTCOMES]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def clock() -> datetime:
    """Now, in UTC (one place, so tests can move time)."""
    return datetime.now(UTC)


# -- JSON plumbing shared by the APIs ---------------------------------------------------------


def _markup_free(text: str) -> str:
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``payload`` as ``application/json``; ``<``, ``>``, ``&`` only ever occur inside strings, so escaping them is safe."""
    body = _markup_free(json.dumps(payload, ensure_ascii=True, separators=(",", ":"), allow_nan=False))
    return Response(body, status=status, mimetype="application/json", headers=headers)


class BadParameter(Exception):
    """A query parameter this API cannot use: answered 400 naming it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


def error(status: int, message: str, headers: dict[str, str] | None = None, **fields: str) -> Response:
    return json_response({"error": message, **fields}, status, headers)


def _bad_parameter(exc: BadParameter) -> Response:
    return error(400, str(exc), parameter=exc.parameter)


def _http_error(exc: HTTPException) -> Response:
    headers = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
    code = exc.code or 500
    message = exc.description if code < 500 else "internal error"
    return error(code, message or exc.name, headers)


def _database_unavailable(exc: Exception) -> Response:
    """The cause goes to the log; the answer names no host, port or database."""
    cause = str(getattr(exc, "orig", None) or exc).splitlines()
    log.warning("api: database unavailable: %s", cause[0][:200] if cause else type(exc).__name__)
    return error(503, "the status database is busy or unavailable; try again shortly",
                 {"Retry-After": str(RETRY_AFTER)})


def _public_headers(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def install_json_api(blueprint: Blueprint) -> None:
    """JSON errors and the public headers for every view of ``blueprint``."""
    blueprint.register_error_handler(BadParameter, _bad_parameter)
    blueprint.register_error_handler(HTTPException, _http_error)
    for code in default_exceptions:  # Flask asks code handlers of the app before class handlers of a blueprint
        blueprint.register_error_handler(code, _http_error)
    blueprint.register_error_handler(OperationalError, _database_unavailable)
    blueprint.register_error_handler(PoolTimeout, _database_unavailable)
    blueprint.after_request(_public_headers)


install_json_api(bp)


@bp.route("/api", methods=METHODS, strict_slashes=False)
@bp.route("/api/<path:_rest>", methods=METHODS)
def unknown_path(_rest: str = "") -> Response:
    """Any path under /api/ that no API route takes (routes win over this one): 404, or 405 for writes."""
    if request.method not in ("GET", "HEAD"):
        return error(405, "the API is read-only", {"Allow": "GET, HEAD, OPTIONS"})
    return error(404, f"no such API path: {request.path}")


def iso(value: datetime | None, tz: tzinfo = UTC) -> str | None:
    """ISO-8601 with an offset, to the millisecond (as Statuspage writes them)."""
    if value is None:
        return None
    return value.astimezone(tz).isoformat(timespec="milliseconds")


def number(value: float | None) -> float | None:
    """A JSON number (None for a missing or non-finite figure)."""
    return None if value is None or not math.isfinite(value) else float(value)


# -- parameters -------------------------------------------------------------------------------


def _one(name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise BadParameter(name, "give it at most once")
    return values[0] if values else None


def limit_param(default: int, most: int) -> int:
    text = _one("limit")
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= most:
        raise BadParameter("limit", f"must be a whole number from 1 to {most}")
    return int(text)


def time_param(name: str) -> datetime | None:
    """An ISO-8601 time; one without an offset is UTC.  A ``+`` left unencoded in the query string
    arrives as a space: ``...T10:00:00 01:00`` is read as ``+01:00``."""
    text = _one(name)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(re.sub(r"(T[\d:.]+) (\d\d:?\d\d)$", r"\1+\2", text))
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadParameter(name, "not an ISO-8601 time (e.g. 2026-11-02T10:00:00Z)") from None


def cursor_param(kind: str) -> Cursor | None:
    text = _one("cursor")
    if text is None:
        return None
    try:
        return Cursor.decode(text, kind)
    except BadCursor as exc:
        raise BadParameter("cursor", str(exc)) from None


def window_param(default: str) -> str:
    text = _one("window") or default
    if text not in WINDOWS:
        raise BadParameter("window", f"must be one of {', '.join(WINDOWS)}")
    return text


def services_param(services: Sequence[ServiceInfo], name: str = "service", required: bool = False) -> list[ServiceInfo]:
    """The services a (repeatable) ``service`` parameter names; every one must exist (404 otherwise)."""
    wanted = request.args.getlist(name)
    if not wanted:
        if required:
            raise BadParameter(name, "required: give a service id")
        return list(services)
    by_id = {s.id: s for s in services}
    for sid in wanted:
        if sid not in by_id:
            raise NotFound(f"no service {sid!r}")
    return [by_id[sid] for sid in dict.fromkeys(wanted)]


def one_service_param(services: Sequence[ServiceInfo]) -> ServiceInfo:
    if len(request.args.getlist("service")) > 1:
        raise BadParameter("service", "give it once")
    return services_param(services, required=True)[0]


# -- services ---------------------------------------------------------------------------------


def site_zone() -> tzinfo:
    return timefmt.zone(state().site.timezone)


def histories(services: Sequence[ServiceInfo], spans: Sequence[int], now: datetime) -> dict[int, dict[str, History]]:
    """Per number of days in ``spans``, per service: the uptime bars of the last that many calendar days
    of the site's timezone (``web.uptime``, the same figures as the page's bars)."""
    session, tz, config = db_session(), site_zone(), state().config
    ids = [s.id for s in services]
    longest = calendar(max(spans), now, tz)
    return {days: uptime_histories(session, ids, longest[-days:], now, tz, config.maintenance if config else ())
            for days in spans}


def current() -> tuple[list[ServiceInfo], Snapshot]:
    """The services in display order and what the public sees of them now (``web.snapshot``)."""
    session, web = db_session(), state()
    services = web.services(session)
    return services, snapshot(session, services, web.config, clock())


def service_json(snap: Snapshot, info: ServiceInfo, uptime: dict[int, dict[str, History]]) -> dict[str, Any]:
    component = next(c for c in snap.components if c.info.id == info.id)
    return {
        "id": info.id,
        "name": info.name,
        "group": info.group or None,
        "status": component.state.key,  # a component status, or "unknown" without recent data
        "checked_at": iso(component.state.checked_at),
        "regions": [{"region": region, "outcome": outcome.value} for region, outcome in component.state.regions.items()],
        "uptime_30d": number(uptime[30][info.id].uptime),
        "uptime_90d": number(uptime[90][info.id].uptime),
    }


@bp.get("/api/v1/services")
@cached_view(seconds=RENDER_SECONDS)
def services() -> Response:
    infos, snap = current()
    uptime = histories(infos, (30, 90), snap.now)
    return json_response({"services": [service_json(snap, info, uptime) for info in infos]})


@bp.get("/api/v1/services/<service_id>")
@cached_view(seconds=RENDER_SECONDS)
def service(service_id: str) -> Response:
    infos, snap = current()
    info = next((s for s in infos if s.id == service_id), None)
    if info is None:
        raise NotFound(f"no service {service_id!r}")
    return json_response({"service": service_json(snap, info, histories([info], (30, 90), snap.now))})


# -- results ----------------------------------------------------------------------------------


def _outcomes_param() -> list[str]:
    wanted = request.args.getlist("outcome")
    for value in wanted:
        if value not in PUBLIC_OUTCOMES:
            raise BadParameter("outcome", f"{value!r} is not a public outcome (one of {', '.join(PUBLIC_OUTCOMES)})")
    return wanted


def result_json(row: Row[Any]) -> dict[str, Any]:
    """A public result: no error detail, request id, cost or prompt; the outcome's public phrase instead."""
    try:
        outcome: Outcome | None = Outcome(row.outcome)
    except ValueError:
        outcome = None
    return {
        "id": str(row.id),
        "service": row.service_id,
        "region": row.region,
        "kind": row.kind,
        "canary": row.canary_id,
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "outcome": row.outcome,
        "effect": outcome.uptime_effect.value if outcome else None,
        "detail": (outcome.public_phrase or None) if outcome else None,
        "http_status": row.http_status,
        "latency_ms": {"total": number(row.total_ms), "submit": number(row.submit_ms), "queue": number(row.queue_ms),
                       "generation": number(row.generation_ms), "download": number(row.download_ms)},
        "quality": {"score": number(row.quality_score), "verdict": row.quality_verdict,
                    "reasons": list(row.quality_reasons or [])},
        "image": {"width": row.image_width, "height": row.image_height, "format": row.image_format},
    }


def _next_cursor(rows: Sequence[Row[Any]] | Sequence[IncidentRow], limit: int, kind: str) -> str | None:
    """A cursor after the last row of a full page (a page that came back short is the last one)."""
    if len(rows) < limit:
        return None
    return Cursor(rows[-1].started_at, rows[-1].id).encode(kind)


@bp.get("/api/v1/results")
def results() -> Response:
    """Public results newest first, by (``started_at``, id); ``next_cursor`` fetches the next page.
    Not render-cached: pages of up to 1000 results are large and rarely asked for twice."""
    infos = state().services(db_session())
    chosen = services_param(infos)
    regions = request.args.getlist("region")
    outcomes = _outcomes_param()
    since, until = time_param("since"), time_param("until")
    if since and until and since >= until:
        raise BadParameter("until", "must be after since")
    limit = limit_param(RESULTS_LIMIT, RESULTS_MAX)
    after = cursor_param("results")
    rows = public_results(db_session(), [s.id for s in chosen], every=len(chosen) == len(infos), regions=regions,
                          outcomes=outcomes, since=since, until=until, after=after, limit=limit)
    return json_response({"results": [result_json(r) for r in rows], "next_cursor": _next_cursor(rows, limit, "results")})


# -- uptime and latency -----------------------------------------------------------------------


@bp.get("/api/v1/uptime")
@cached_view(seconds=RENDER_SECONDS)
def uptime() -> Response:
    """Statuspage-style uptime of one service (``web.uptime``): 24h is the rolling last 24 hours; 7d, 30d
    and 90d are calendar days of the site's timezone, today included, days without data left out."""
    info = one_service_param(state().services(db_session()))
    window = window_param(UPTIME_WINDOW)
    now, session, tz = clock(), db_session(), site_zone()
    config = state().config
    windows = config.maintenance if config else ()
    if window == "24h":
        start = now - WINDOWS[window]
        found = intervals(session, [info.id], start, now, windows)[info.id]
        has_data = bool(found) or recent_health(session, [info.id], start)[info.id].counted > 0
        downtime = downtime_seconds(found, start, now)
        figure = uptime_percent(found, start, now) if has_data else None
        days: list[dict[str, Any]] | None = None
    else:
        bars = histories([info], (WINDOWS[window].days,), now)[WINDOWS[window].days][info.id]
        start = local_midnight(bars.days[0].day, tz)
        downtime = sum(d.downtime_s for d in bars.days)
        figure = bars.uptime
        days = [{"date": d.day.isoformat(), "uptime": number(d.uptime), "status": d.worst.value if d.worst else None,
                 "downtime_seconds": d.downtime_s} for d in bars.days]
    body: dict[str, Any] = {"service": info.id, "window": window, "start": iso(start), "end": iso(now),
                            "uptime": number(figure), "downtime_seconds": downtime, "formula": FORMULA}
    if days is not None:
        body["days"] = days
    return json_response(body)


def latency_json(figures: Latency) -> dict[str, Any]:
    return {"count": figures.count, "p50_ms": number(figures.p50_ms), "p95_ms": number(figures.p95_ms),
            "p99_ms": number(figures.p99_ms)}


@bp.get("/api/v1/latency")
@cached_view(seconds=RENDER_SECONDS)
def latency() -> Response:
    """p50/p95/p99 total latency from the hourly rollups' histograms (whole hours: ``start`` says from when)."""
    info = one_service_param(state().services(db_session()))
    window = window_param(LATENCY_WINDOW)
    now = clock()
    since = now - WINDOWS[window]
    overall, regions = latency_by_region(db_session(), info.id, since)
    return json_response({"service": info.id, "window": window, "start": iso(hour_floor(since)), "end": iso(now),
                          **latency_json(overall), "regions": {r: latency_json(f) for r, f in regions.items()}})


# -- incidents --------------------------------------------------------------------------------


def incident_json(row: IncidentRow) -> dict[str, Any]:
    """A public incident with its updates, oldest first: named by ``public_title`` when set, ``summary``
    is the admin's ``public_body`` (as on the incident page)."""
    postmortem = published_postmortem(row)
    return {
        "id": str(row.id),
        "service": row.service_id,
        "name": public_name(row),
        "summary": public_summary(row),
        "kind": row.kind,
        "status": public_status(row).value,
        "impact": public_impact(row).value,
        "component_status": incident_status(row.kind, row.impact).value,
        "started_at": iso(row.started_at),
        "resolved_at": iso(row.resolved_at),
        "updated_at": iso(max([row.updated_at, *(u.created_at for u in row.updates)])),
        "updates": [{"id": u.id, "status": u.status.value, "body": u.body, "created_at": iso(u.created_at),
                     "display_at": iso(u.display_at)} for u in public_updates(row)],
        "postmortem": {"body": postmortem[0], "published_at": iso(postmortem[1])} if postmortem else None,
    }


@bp.get("/api/v1/incidents")
def incidents() -> Response:
    """Public incidents newest first (by ``started_at``, id), paginated like results."""
    chosen = services_param(state().services(db_session()))
    limit = limit_param(INCIDENTS_LIMIT, INCIDENTS_MAX)
    after = cursor_param("incidents")
    rows = public_incidents(db_session(), [s.id for s in chosen], limit=limit, after=after)
    return json_response({"incidents": [incident_json(r) for r in rows],
                          "next_cursor": _next_cursor(rows, limit, "incidents")})


@bp.get("/api/v1/incidents/<incident_id>")
@cached_view(seconds=RENDER_SECONDS)
def incident(incident_id: str) -> Response:
    ids = [s.id for s in state().services(db_session())]
    row = public_incident(db_session(), ids, int(incident_id)) if incident_id.isascii() and incident_id.isdigit() \
        and len(incident_id) < 20 else None
    if row is None:  # an operator incident is as unknown as a missing one
        raise NotFound(f"no incident {incident_id!r}")
    return json_response({"incident": incident_json(row)})


# -- recommend --------------------------------------------------------------------------------

#: the status rank of a service without recent data: after every known status
UNKNOWN_RANK = len(STATUS_RANK)


@dataclass(frozen=True)
class Candidate:
    info: ServiceInfo
    status: str  # a component status or "unknown"
    recent: RecentHealth

    @property
    def status_rank(self) -> int:
        return UNKNOWN_RANK if self.status == NO_DATA else STATUS_RANK[ComponentStatus(self.status)]

    def key(self) -> tuple[float, ...]:
        """Compared in order: status, share of failed runs, p95 latency (lower is better), mean quality
        (higher is better); a missing figure counts as worse than any figure."""
        inf = math.inf
        share, p95, quality = self.recent.down_share, self.recent.p95_ms, self.recent.quality_mean
        return (self.status_rank, inf if share is None else share, inf if p95 is None else p95,
                inf if quality is None else -quality)

    def reasons(self) -> list[str]:
        r = self.recent
        found = ["no recent data" if self.status == NO_DATA else f"status {self.status}"]
        found.append(f"{r.down} of {r.counted} runs failed in the last hour ({_share(r.down_share)})" if r.counted
                     else "no runs in the last hour")
        found.append(f"p95 latency {r.p95_ms:.0f} ms in the last hour" if r.p95_ms is not None
                     else "no latency figures in the last hour")
        found.append(f"mean quality {r.quality_mean:.2f} in the last hour" if r.quality_mean is not None
                     else "no quality scores in the last hour")
        return found


def _share(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


#: what each position of ``Candidate.key`` compares, for the reason a choice was made
_DECIDERS: list[tuple[str, Callable[[Candidate], str]]] = [
    ("a better status", lambda c: c.status),
    ("fewer failed runs in the last hour", lambda c: _share(c.recent.down_share)),
    ("a lower p95 latency in the last hour", lambda c: "–" if c.recent.p95_ms is None else f"{c.recent.p95_ms:.0f} ms"),
    ("a higher mean quality in the last hour",
     lambda c: "–" if c.recent.quality_mean is None else f"{c.recent.quality_mean:.2f}"),
]


def ranked(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Best first; ties keep the configured order."""
    return sorted(candidates, key=Candidate.key)


def why(best: Candidate, runner_up: Candidate | None) -> str:
    """The first measure on which ``best`` beats the runner-up."""
    if runner_up is None:
        return "the only service in the group"
    for index, (measure, show) in enumerate(_DECIDERS):
        if best.key()[index] != runner_up.key()[index]:
            return f"{measure}: {show(best)} against {show(runner_up)} for {runner_up.info.id}"
    return f"level with {runner_up.info.id} on every measure; first in the configured order"


@bp.get("/api/v1/recommend")
@cached_view(seconds=RENDER_SECONDS)
def recommend() -> Response:
    """The healthiest service of a group right now, with the reasons and every candidate ranked."""
    group = _one("group")
    if not group:
        raise BadParameter("group", "required: give a group name")
    infos, snap = current()
    members = [c for c in snap.components if c.info.group and group in (c.info.group, group_id(c.info.group))]
    if not members:
        raise NotFound(f"no group {group!r}")
    recent = recent_health(db_session(), [c.info.id for c in members], snap.now - RECENT)
    order = ranked([Candidate(c.info, c.state.key, recent[c.info.id]) for c in members])
    best = order[0]
    return json_response({
        "group": best.info.group,
        "service": best.info.id,
        "status": best.status,
        "reasons": [why(best, order[1] if len(order) > 1 else None), *best.reasons()],
        "candidates": [{
            "id": c.info.id,
            "name": c.info.name,
            "status": c.status,
            "rank": rank,
            "score": {"status_rank": c.status_rank, "runs": c.recent.counted, "down_share": number(c.recent.down_share),
                      "p95_ms": number(c.recent.p95_ms), "quality_mean": number(c.recent.quality_mean)},
            "reasons": c.reasons(),
        } for rank, c in enumerate(order, start=1)],
    })
