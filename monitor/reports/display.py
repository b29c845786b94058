"""The report's figures as people read them, shared by the HTML, Markdown and Slack renderings.

Missing figures (``None``) show as an em dash, never as 0.  Availability is rounded *down*, so
99.996 % reads "99.99%" and a service that missed its target never shows one that looks met.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.reports.model import WeeklyReportData

NONE = "—"


def availability(value: float | None) -> str:
    if value is None:
        return NONE
    if value >= 100:
        return "100%"
    return f"{math.floor(value * 100) / 100:.2f}%"


def percent(value: float | None, digits: int = 0) -> str:
    return NONE if value is None else f"{value:.{digits}f}%"


def change(value: float | None) -> str:
    """A relative change: "+12%", "−4%" (a real minus sign), "±0%"."""
    if value is None:
        return NONE
    rounded = round(value)
    if rounded == 0:
        return "±0%"
    return f"+{rounded}%" if rounded > 0 else f"−{-rounded}%"


def points(value: float | None) -> str:
    """A change of availability in percentage points: "+0.12 pp", "−1.50 pp"."""
    if value is None:
        return NONE
    if abs(value) < 0.005:
        return "±0 pp"
    return f"+{value:.2f} pp" if value > 0 else f"−{-value:.2f} pp"


def latency(ms: float | None) -> str:
    if ms is None:
        return NONE
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s" if ms < 100_000 else f"{ms / 1000:.0f} s"


def duration(seconds: float | None) -> str:
    """``95`` -> "1 min 35 s", ``5400`` -> "1 h 30 min", ``200000`` -> "2 d 7 h"."""
    if seconds is None:
        return NONE
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs and minutes < 10 else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def money(usd: float | None) -> str:
    if usd is None:
        return NONE
    if 0 < abs(usd) < 1:
        return f"${usd:.4f}".rstrip("0").rstrip(".") if abs(usd) < 0.1 else f"${usd:.3f}"
    return f"${usd:,.2f}"


def score(value: float | None) -> str:
    return NONE if value is None else f"{value:.2f}"


def count(value: int | None) -> str:
    return NONE if value is None else f"{value:,}"


def local_time(moment: datetime | None, timezone: str) -> str:
    """"Wed 18 Nov 10:00 CET" in the site timezone (UTC: "... 10:00 UTC")."""
    if moment is None:
        return NONE
    return moment.astimezone(ZoneInfo(timezone)).strftime("%a %d %b %H:%M %Z")


def week_range(data: WeeklyReportData) -> str:
    """"16–22 Nov 2026" (the local Monday to Sunday), or across months/years as needed."""
    zone = ZoneInfo(data.timezone)
    first = data.start.astimezone(zone).date()
    last = (data.end.astimezone(zone) - timedelta(days=1)).date()
    if first.year != last.year:
        return f"{first:%d %b %Y} – {last:%d %b %Y}"
    if first.month != last.month:
        return f"{first:%d %b} – {last:%d %b %Y}"
    return f"{first:%d}–{last:%d %b %Y}"


def slo_word(met: bool | None) -> str:
    return {True: "met", False: "missed", None: "no data"}[met]


def report_url(data: WeeklyReportData) -> str | None:
    """``<site.url>/reports/<week>`` when the site has an http(s) address."""
    url = (data.site_url or "").rstrip("/")
    if not url.lower().startswith(("http://", "https://")):
        return None
    return f"{url}/reports/{data.week}"


def one_line(text: str | None) -> str:
    """Free text (titles, names) on one line: newlines and other control characters become spaces."""
    if text is None:
        return ""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def overview(data: WeeklyReportData, *, name: Callable[[str], str] = one_line) -> list[str]:
    """The report in three sentences: SLOs, incidents, cost (the top of every rendering).

    ``name`` renders a service name (Markdown and Slack escape it; the HTML template escapes everything).
    """
    judged = [s for s in data.services if s.slo_met is not None]
    missed = [s for s in judged if s.slo_met is False]
    slo = f"{len(judged) - len(missed)} of {len(judged)} services met their availability SLO"
    if missed:
        slo += " (missed: " + ", ".join(name(s.name) for s in missed) + ")"
    if len(judged) < len(data.services):
        slo += f"; {len(data.services) - len(judged)} had no probes"
    incidents = len(data.incidents)
    downtime = sum(s.downtime_s for s in data.services)
    longest = max((s.longest_incident_s for s in data.services if s.longest_incident_s is not None), default=None)
    text = "No public incidents" if not incidents else f"{incidents} public incident{'s' if incidents != 1 else ''}"
    if incidents:
        text += f", {duration(downtime)} of outage in total" + (f", the longest {duration(longest)}" if longest else "")
    cost = sum(s.cost for s in data.services)
    budgeted = [s for s in data.services if s.cost_budget]
    budget = sum(s.cost_budget or 0.0 for s in budgeted)
    spend = f"{count(sum(s.probes for s in data.services))} probe runs cost {money(cost)}"
    if budgeted and len(budgeted) == len(data.services):
        spend += f", {percent(100 * cost / budget)} of the week's budget ({money(budget)})"
    elif budgeted:
        used = sum(s.cost for s in budgeted)
        spend += f"; the services with a budget used {money(used)} of {money(budget)} ({percent(100 * used / budget)})"
    return [slo + ".", text + ".", spend + "."]
