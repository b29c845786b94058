"""Status badges for other sites' READMEs and dashboards: ``/badge/<service>.svg``.

A shields.io-style flat badge: the service's name on the left, its current status and 30-day
uptime on the right, coloured by status.  The status comes from ``web.snapshot`` and the uptime
from ``web.uptime`` (incident intervals, counted over the days the service had data, as on the
pages), so a badge never disagrees with the status page.

Other sites embed badges with ``<img>``: the answer carries ``Cross-Origin-Resource-Policy:
cross-origin`` so browsers that isolate cross-origin resources still load it (an ``<img>`` is not a
frame, so ``frame-ancestors`` and ``X-Frame-Options`` do not get in its way).  Every text is
escaped; the SVG has no script and no inline style, so the page's strict CSP holds when it is
opened on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Blueprint, Response
from markupsafe import Markup

from monitor.enums import ComponentStatus
from web import timefmt
from web.caching import cached_view
from web.context import db_session, state
from web.queries import NO_DATA, ServiceInfo
from web.snapshot import snapshot
from web.uptime import calendar, histories

bp = Blueprint("badges", __name__)

UPTIME_DAYS = 30
MAX_AGE = 60
LABEL_MAX_CHARS = 40
LABEL_COLOUR = "#555"
#: (words, background) by status; dark enough for white text (WCAG AA)
STATUS_STYLE: dict[str, tuple[str, str]] = {
    ComponentStatus.OPERATIONAL.value: ("operational", "#116329"),
    ComponentStatus.DEGRADED_PERFORMANCE.value: ("degraded", "#7d4e00"),
    ComponentStatus.PARTIAL_OUTAGE.value: ("partial outage", "#953800"),
    ComponentStatus.MAJOR_OUTAGE.value: ("major outage", "#a40e26"),
    ComponentStatus.UNDER_MAINTENANCE.value: ("maintenance", "#0a58ca"),
    NO_DATA: ("no data", "#57606a"),
}

# Approximate advance widths of Verdana at 11 px, enough to size the two halves of a badge.
_NARROW = set("fijlrtI!|.,:;'`()[]{} ")
_WIDE = set("mwMW%@")
_CAPITAL_OR_DIGIT_WIDTH, _NARROW_WIDTH, _WIDE_WIDTH, _OTHER_WIDTH = 7.6, 4.0, 10.6, 6.6
PADDING = 10  # px either side of a text, together


def text_width(text: str) -> float:
    width = 0.0
    for char in text:
        if char in _NARROW:
            width += _NARROW_WIDTH
        elif char in _WIDE:
            width += _WIDE_WIDTH
        elif char.isupper() or char.isdigit():
            width += _CAPITAL_OR_DIGIT_WIDTH
        else:
            width += _OTHER_WIDTH
    return width


def _shortened(text: str, limit: int = LABEL_MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def uptime_text(value: float | None) -> str:
    """As on the pages: enough digits that 99.95 % never reads as 100 %."""
    if value is None:
        return ""
    return "100%" if value >= 100 else f"{min(value, 99.99):.2f}%"


@dataclass(frozen=True)
class Badge:
    label: str
    value: str
    colour: str

    def svg(self) -> str:
        label, value = _shortened(self.label), self.value
        left = round(text_width(label) + PADDING)
        right = round(text_width(value) + PADDING)
        total = left + right
        title = f"{label}: {value}"
        return str(Markup(
            '<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{title}">'
            "<title>{title}</title>"
            '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
            '<stop offset="1" stop-opacity=".1"/></linearGradient>'
            '<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
            '<g clip-path="url(#r)"><rect width="{left}" height="20" fill="{label_colour}"/>'
            '<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
            '<rect width="{total}" height="20" fill="url(#s)"/></g>'
            '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
            '<text x="{label_x}" y="15" fill="#010101" fill-opacity=".3">{label}</text>'
            '<text x="{label_x}" y="14">{label}</text>'
            '<text x="{value_x}" y="15" fill="#010101" fill-opacity=".3">{value}</text>'
            '<text x="{value_x}" y="14">{value}</text></g></svg>'
        ).format(total=total, title=title, left=left, right=right, label_colour=LABEL_COLOUR, colour=self.colour,
                 label=label, value=value, label_x=left / 2, value_x=left + right / 2))


def service_badge(info: ServiceInfo, now: datetime) -> Badge:
    session = db_session()
    web = state()
    (component,) = snapshot(session, [info], web.config, now).components
    words, colour = STATUS_STYLE.get(component.state.key, STATUS_STYLE[NO_DATA])
    tz = timefmt.zone(web.site.timezone)
    days = calendar(UPTIME_DAYS, now, tz)
    uptime = histories(session, [info.id], days, now, tz, web.config.maintenance if web.config else ())[info.id].uptime
    value = f"{words} · {uptime_text(uptime)}" if uptime is not None else words
    return Badge(info.name, value, colour)


NOT_FOUND = Badge("status", "unknown service", STATUS_STYLE[NO_DATA][1])


def _svg_response(badge: Badge, status: int = 200) -> Response:
    response = Response(badge.svg(), status=status, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE}"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@bp.get("/badge/<service_id>.svg")
@cached_view(seconds=5, on_results=False)
def badge(service_id: str) -> Response:
    """The service's badge; an unknown service gets a grey "unknown service" badge with status 404
    (the requested name is not echoed)."""
    info = next((s for s in state().services(db_session()) if s.id == service_id), None)
    if info is None:
        return _svg_response(NOT_FOUND, 404)
    return _svg_response(service_badge(info, datetime.now(UTC)))

