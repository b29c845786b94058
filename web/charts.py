"""Charts drawn on the server as inline SVG: the 90 daily uptime bars and the line charts of the
service page.  No JavaScript and no inline styles (the CSP forbids them): colours come from CSS
classes in ``style.css``.

Both kinds scale to any width: the SVG has a fixed ``viewBox`` and ``preserveAspectRatio="none"``,
lines keep their width through ``vector-effect: non-scaling-stroke`` (CSS), and the axis labels
are HTML next to the drawing, at fixed fractions of its height and width, so they stay legible on a
phone.  Coordinates are rounded to one decimal to keep the markup small.  No Flask here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from web.uptime import Day, History

#: the drawing area of a line chart, in SVG user units
WIDTH = 1000.0
HEIGHT = 200.0
#: ``nice_max`` picks the y-axis top from these steps times a power of ten (halves stay round numbers)
NICE_STEPS = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
#: the share of a bar's slot its rectangle fills (the rest is the gap to the next bar), as written in the markup
BAR_FILL = ".8"

LEVEL_TEXT = {
    "none": "no data",
    "operational": "operational",
    "degraded_performance": "degraded performance",
    "partial_outage": "partial outage",
    "major_outage": "major outage",
    "under_maintenance": "maintenance",
}


def percent_text(value: float | None) -> str:
    """Uptime with enough digits that 99.95 % never shows as 100 %."""
    if value is None:
        return "no data"
    if value >= 100:
        return "100%"
    return f"{min(value, 99.99):.2f}%"


def _num(value: float) -> str:
    """A coordinate with at most one decimal and no trailing zeros (``12``, ``12.5``)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


# -- the 90 daily bars ------------------------------------------------------------------------


def day_title(day: Day) -> str:
    """The tooltip of one bar: the day, its uptime and its incidents."""
    if day.uptime is None:
        return f"{day.day.isoformat()}: no data"
    text = f"{day.day.isoformat()}: {percent_text(day.uptime)} uptime"
    if day.incidents:
        text += " — " + "; ".join(f"{i.title} ({LEVEL_TEXT.get(i.status.value, i.status.value)})" for i in day.incidents)
    elif day.level == "under_maintenance":
        text += " — maintenance"
    return text


def uptime_bars(history: History, label: str) -> Markup:
    """One SVG with a ``<rect>`` per day (oldest left), classed ``d-<level>``, each with a ``<title>``.

    ``label`` is the whole drawing's text alternative (``role="img"``): screen readers get it instead
    of ninety tooltips; the days with incidents are listed in text next to it by the template.
    """
    count = len(history.days)
    head = f'<svg class="bars" viewBox="0 0 {count} 1" preserveAspectRatio="none" role="img" aria-label="{escape(label)}">'
    return Markup(head + "".join(_bar(index, day) for index, day in enumerate(history.days)) + "</svg>")


@functools.lru_cache(maxsize=16384)
def _bar(index: int, day: Day) -> str:
    """One bar's markup.  Past days rarely change, so a page of 50 services x 90 days mostly reuses them."""
    return f'<rect x="{index}" width="{BAR_FILL}" height="1" class="d-{day.level}"><title>{escape(day_title(day))}</title></rect>'



def incident_day_items(history: History, incident_url: str) -> Markup:
    """The ``<li>`` of each day an incident touched, newest first: the bars' text alternative.

    ``incident_url`` is the address of an incident with ``{id}`` in place of its id.
    """
    return Markup("".join(_incident_day(day, incident_url) for day in history.incident_days))


@functools.lru_cache(maxsize=4096)
def _incident_day(day: Day, incident_url: str) -> str:
    links = "; ".join(f'<a href="{escape(incident_url.format(id=i.id))}">{escape(i.title)}</a> '
                      f"({LEVEL_TEXT.get(i.status.value, i.status.value)})" for i in day.incidents)
    when = day.day.isoformat()
    return f'<li><time datetime="{when}">{when}</time>: {percent_text(day.uptime)} uptime —\n{links}</li>'


# -- line charts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One line: a value per slot (None: no data in that slot); ``css`` names its colour class."""

    name: str
    css: str
    values: Sequence[float | None]


def nice_max(value: float) -> float:
    """The smallest ``NICE_STEPS`` times a power of ten that is at least ``value`` (1 for nothing)."""
    if not value or value <= 0 or math.isnan(value) or math.isinf(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in NICE_STEPS:
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10.0 * power  # pragma: no cover - NICE_STEPS ends at 10


def x_of(slot: int, slots: int) -> float:
    """The x coordinate of a slot's centre."""
    return (slot + 0.5) * WIDTH / slots


def y_of(value: float, top: float) -> float:
    """The y coordinate of a value on an axis from 0 (bottom) to ``top``; values beyond are clamped."""
    return HEIGHT - max(0.0, min(value, top)) / top * HEIGHT


def segments(values: Sequence[float | None], top: float) -> list[list[tuple[float, float]]]:
    """The runs of consecutive slots with data, as SVG points; a gap in the data is a gap in the line."""
    runs: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for slot, value in enumerate(values):
        if value is None or math.isnan(value):
            if current:
                runs.append(current)
            current = []
            continue
        current.append((x_of(slot, len(values)), y_of(value, top)))
    if current:
        runs.append(current)
    return runs


def path_data(runs: list[list[tuple[float, float]]]) -> str:
    """``M x,y L x,y ...`` per run; a run of one point is a zero-length line (drawn as a dot by its round cap)."""
    parts = []
    for run in runs:
        (x0, y0), rest = run[0], run[1:]
        parts.append(f"M{_num(x0)},{_num(y0)}" + ("".join(f"L{_num(x)},{_num(y)}" for x, y in rest) or "h0"))
    return "".join(parts)


@dataclass(frozen=True)
class LineChart:
    """A line chart ready for the template: the SVG, and the axis labels placed around it by CSS."""

    svg: Markup
    top: float
    y_labels: tuple[str, str, str]  # top, middle, bottom
    x_labels: tuple[str, ...]  # left, (middle,) right
    series: tuple[Series, ...]
    empty: bool


def line_chart(
    chart_id: str,
    title: str,
    desc: str,
    series: Sequence[Series],
    x_labels: Sequence[str],
    y_format: Callable[[float], str],
    top: float | None = None,
) -> LineChart:
    """Draw ``series`` over equally spaced slots, the y axis from 0 to ``top`` (``nice_max`` of the data
    when not given).  ``title`` and ``desc`` are the SVG's accessible name and description."""
    highest = max((v for s in series for v in s.values if v is not None and not math.isnan(v)), default=None)
    top = top or nice_max(highest or 0.0)
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    parts = [
        f'<svg id="{escape(chart_id)}" class="plot" viewBox="0 0 {_num(WIDTH)} {_num(HEIGHT)}" preserveAspectRatio="none" '
        f'role="img" aria-labelledby="{escape(title_id)} {escape(desc_id)}">'
        f'<title id="{escape(title_id)}">{escape(title)}</title><desc id="{escape(desc_id)}">{escape(desc)}</desc>',
        "".join(f'<line class="grid" x1="0" x2="{_num(WIDTH)}" y1="{_num(y)}" y2="{_num(y)}"/>'
                for y in (0.0, HEIGHT / 2, HEIGHT)),
    ]
    for line in series:
        data = path_data(segments(line.values, top))
        if data:
            parts.append(f'<path class="line {escape(line.css)}" d="{data}"/>')
    parts.append("</svg>")
    return LineChart(
        svg=Markup("".join(parts)),
        top=top,
        y_labels=(y_format(top), y_format(top / 2), y_format(0.0)),
        x_labels=tuple(x_labels),
        series=tuple(series),
        empty=highest is None,
    )


def describe(series: Series, fmt: Callable[[float], str]) -> str:
    """``p95: from 1.2 s to 3.4 s, latest 2.0 s`` (or ``p95: no data``), for a chart's description."""
    known = [v for v in series.values if v is not None and not math.isnan(v)]
    if not known:
        return f"{series.name}: no data"
    return f"{series.name}: from {fmt(min(known))} to {fmt(max(known))}, latest {fmt(known[-1])}"
