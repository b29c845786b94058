"""ISO weeks in the site timezone: ``"2026-W47"`` <-> ``[start, end)`` in UTC.

A week runs from Monday 00:00 to the next Monday 00:00 *local* time, so across a DST change it is
167 or 169 hours long in UTC.  Local days are cut the same way (23 or 25 hours).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True)
class Week:
    year: int
    number: int

    def __str__(self) -> str:
        return f"{self.year:04d}-W{self.number:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    def days(self) -> list[date]:
        """The seven local dates, Monday first."""
        return [self.monday + timedelta(days=i) for i in range(7)]

    def bounds(self, timezone: str) -> tuple[datetime, datetime]:
        """``[start, end)`` in UTC: local Monday 00:00 to the next local Monday 00:00."""
        return local_midnight(self.monday, timezone), local_midnight(self.monday + timedelta(days=7), timezone)

    def previous(self) -> Week:
        return week_of_date(self.monday - timedelta(days=7))

    def next(self) -> Week:
        return week_of_date(self.monday + timedelta(days=7))


def parse_week(text: str) -> Week:
    """``"2026-W47"`` -> ``Week``; ValueError for anything else (a week 53 only in years that have one)."""
    match = _WEEK.match(text.strip())
    if not match:
        raise ValueError(f"not an ISO week: {text!r} (use e.g. 2026-W47)")
    year, number = int(match.group(1)), int(match.group(2))
    try:
        date.fromisocalendar(year, number, 1)
    except ValueError:
        raise ValueError(f"{text!r}: {year} has no week {number}") from None
    return Week(year, number)


def week_of_date(day: date) -> Week:
    iso = day.isocalendar()
    return Week(iso.year, iso.week)


def week_of(moment: datetime, timezone: str) -> Week:
    """The ISO week that ``moment`` (aware) falls in, in the site timezone."""
    if moment.tzinfo is None:
        raise ValueError("week_of needs a timezone-aware datetime")
    return week_of_date(moment.astimezone(ZoneInfo(timezone)).date())


def last_completed_week(now: datetime, timezone: str) -> Week:
    """The newest week that has ended at ``now``: on Monday 09:00 local, the week that ended at 00:00."""
    return week_of(now, timezone).previous()


def local_midnight(day: date, timezone: str) -> datetime:
    """00:00 of ``day`` in ``timezone``, as UTC (zoneinfo resolves a nonexistent or repeated midnight
    with ``fold=0``: the offset in force before the change)."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """``[start, end)`` of a local day, in UTC."""
    return local_midnight(day, timezone), local_midnight(day + timedelta(days=1), timezone)
