"""Times on the page: shown in the site's timezone (``site.timezone``), with the UTC time on hover.

Everything inside the app stays UTC; only the rendering converts.  ``time_tag`` gives a ``<time>``
element::

    <time datetime="2026-11-02T10:05:00Z" title="2026-11-02 10:05 UTC">2026-11-02 11:05 CET</time>

``local_time`` gives the same local text without markup, for attributes such as ``alt``.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from markupsafe import Markup

#: style -> (local format, UTC format for the title, whether the zone abbreviation follows)
STYLES: dict[str, tuple[str, str, bool]] = {
    "minute": ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M", True),
    "second": ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", True),
    "time": ("%H:%M", "%Y-%m-%d %H:%M", True),
    "date": ("%Y-%m-%d", "%Y-%m-%d %H:%M", False),
}
MISSING = "–"


def zone(name: str | None) -> tzinfo:
    """The zone named in the config (validated there); UTC for none or, defensively, an unknown name."""
    if not name or name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def zone_name(tz: tzinfo) -> str:
    """``Europe/Berlin``, or ``UTC``."""
    return getattr(tz, "key", None) or "UTC"


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)  # naive means UTC


def local_text(value: datetime | None, tz: tzinfo, style: str = "minute") -> str:
    """``2026-11-02 11:05 CET``: ``value`` in ``tz``; "–" for no time."""
    if value is None:
        return MISSING
    local_format, _, with_zone = STYLES[style]
    local = _as_utc(value).astimezone(tz)
    text = local.strftime(local_format)
    return f"{text} {local.tzname() or zone_name(tz)}" if with_zone else text


def time_element(value: datetime | None, tz: tzinfo, style: str = "minute") -> Markup:
    """A ``<time>`` element: local text, UTC in ``title`` and ISO 8601 UTC in ``datetime``; escaped."""
    if value is None:
        return Markup(MISSING)
    utc = _as_utc(value)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        utc.strftime("%Y-%m-%dT%H:%M:%SZ"), f"{utc.strftime(STYLES[style][1])} UTC", local_text(utc, tz, style)
    )
