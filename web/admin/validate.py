"""Strict checks of what the admin forms and the write API send: lengths, enums, times, services.

Each check raises ``Invalid`` with a message naming the field; the caller answers 400 with it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from monitor.enums import Impact, IncidentKind, IncidentStatus

MAX_TITLE = 300
MAX_BODY = 20_000
MAX_POSTMORTEM = 100_000
MAX_TOKEN_NAME = 100
MAX_SERVICES = 200
#: a maintenance window lasts at most this long and starts at most this far ahead
MAX_WINDOW = timedelta(days=31)
MAX_AHEAD = timedelta(days=366)

#: kinds an operator may give an incident written by hand (the public ones the detector also uses)
MANUAL_KINDS = (IncidentKind.OUTAGE, IncidentKind.LATENCY, IncidentKind.QUALITY, IncidentKind.SAFETY)
OPEN_STATUSES = (IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING)
UPDATE_STATUSES = (*OPEN_STATUSES, IncidentStatus.RESOLVED)
MAINTENANCE_STATUSES = ("scheduled", "in_progress", "verifying", "completed")

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LOCAL_MINUTE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?")


class Invalid(ValueError):
    """Input the admin side refuses (400)."""


def text(value: Any, field: str, *, max_length: int, required: bool = True, single_line: bool = False) -> str:
    """Stripped text within ``max_length``; "" when not required and not given."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise Invalid(f"{field} must be text")
    value = value.replace("\r\n", "\n").strip()
    if required and not value:
        raise Invalid(f"{field} is required")
    if len(value) > max_length:
        raise Invalid(f"{field} is longer than {max_length} characters ({len(value)})")
    if _CONTROL.search(value) or (single_line and "\n" in value):
        raise Invalid(f"{field} contains control characters" + (" or line breaks" if single_line else ""))
    return value


def choice(value: Any, field: str, allowed: Iterable[str], default: str | None = None) -> str:
    options = [str(a) for a in allowed]
    if value in (None, "") and default is not None:
        return default
    if not isinstance(value, str) or value not in options:
        raise Invalid(f"{field} must be one of {', '.join(options)} (got {value!r})"[:400])
    return value


def services(value: Any, field: str, known: Collection[str], *, allow_all: bool = False) -> list[str] | None:
    """Known service ids, each once, in the order given.  With ``allow_all``, None (or "all") means every service."""
    if allow_all and (value is None or value == "all"):
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid(f"{field} must be a list of service ids" + (' or null for every service' if allow_all else ""))
    if not value:
        raise Invalid(f"{field}: choose at least one service" + (" (or every service)" if allow_all else ""))
    if len(value) > MAX_SERVICES:
        raise Invalid(f"{field}: at most {MAX_SERVICES} services")
    unknown = [v for v in value if v not in known]
    if unknown:
        raise Invalid(f"{field}: no such service: {', '.join(repr(u[:64]) for u in unknown[:5])}")
    return list(dict.fromkeys(value))


def iso_time(value: Any, field: str) -> datetime:
    """An ISO 8601 time with its offset (``2026-11-02T10:00:00Z``, ``...+01:00``), as UTC."""
    if not isinstance(value, str) or len(value) > 40:
        raise Invalid(f"{field} must be an ISO 8601 time with an offset, e.g. 2026-11-02T10:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Invalid(f"{field}: {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise Invalid(f"{field}: {value!r} has no UTC offset (add Z or +01:00)")
    return parsed.astimezone(UTC)


def local_time(value: Any, field: str, tz: tzinfo) -> datetime:
    """A wall-clock time in the site's timezone (what a ``datetime-local`` field sends), as UTC.

    A time that does not exist there (skipped when the clocks go forward) is refused.
    """
    if not isinstance(value, str) or not _LOCAL_MINUTE.fullmatch(value.strip()):
        raise Invalid(f"{field} must be a date and time like 2026-11-02T10:00")
    try:
        naive = datetime.fromisoformat(value.strip().replace(" ", "T"))
    except ValueError:
        raise Invalid(f"{field}: {value!r} is not a valid date and time") from None
    local = naive.replace(tzinfo=tz)
    utc = local.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) != naive:
        raise Invalid(f"{field}: {value} does not exist in the site's timezone (the clocks skip it)")
    return utc


def window(starts: datetime, ends: datetime, now: datetime) -> None:
    if ends <= starts:
        raise Invalid("the window must end after it starts")
    if ends - starts > MAX_WINDOW:
        raise Invalid(f"a window lasts at most {MAX_WINDOW.days} days")
    if ends <= now:
        raise Invalid("the window has already ended")
    if starts - now > MAX_AHEAD:
        raise Invalid(f"a window starts at most {MAX_AHEAD.days} days ahead")


def impact(value: Any, default: str | None = None) -> str:
    return choice(value, "impact", [i.value for i in Impact], default)


def kind(value: Any) -> str:
    return choice(value, "kind", [k.value for k in MANUAL_KINDS], IncidentKind.OUTAGE.value)
