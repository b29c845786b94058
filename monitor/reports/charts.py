"""The weekly report's three charts as PNG bytes, drawn with matplotlib (Agg, no pyplot).

* ``availability``: a heatmap, one row per service and one column per local day, coloured in SLO-like
  bands and labelled with the figure (a line per service stops being readable past a handful);
* ``latency``: each service's daily p95 as a line with its p50..p99 band, log scale, in seconds;
* ``quality``: each service's daily mean quality score.

Line charts show at most ``MAX_LINES`` services (the slowest, or the lowest quality) and say so.
Sizes are fixed (the heatmap's height follows the number of services), never ``bbox_inches="tight"``,
and the PNG carries no software or date metadata, so the same figures give the same bytes.
matplotlib is imported inside the functions: the command line starts without it.  Figures are made
with ``matplotlib.figure.Figure`` rather than pyplot, whose global state is not thread-safe (the
scheduler and the web server render in threads).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitor.reports.model import DayFigures, WeeklyReportData

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100
WIDTH_IN = 7.2  # 720 px: fits the 680-720 px column mail clients show
LINE_HEIGHT_IN = 3.0
HEAT_ROW_IN = 0.3
HEAT_FRAME_IN = 1.3  # title, day labels and the colour key
MAX_HEAT_ROWS = 60  # a taller picture than this is no longer read; the rest are named in the caption
MAX_LINES = 8
#: availability bands (lower bounds, %) and their colours: red below 90 up to dark green at 99.9+
AVAILABILITY_BANDS = (0.0, 90.0, 95.0, 99.0, 99.9, 100.0001)
AVAILABILITY_COLOURS = ("#c5221f", "#f29900", "#fdd663", "#81c995", "#188038")
NO_DATA_COLOUR = "#e8eaed"
PALETTE = ("#1a73e8", "#d93025", "#188038", "#f29900", "#9334e6", "#12b5cb", "#e52592", "#5f6368")
NAMES = ("availability", "latency", "quality")
PALETTE_COLOURS = 128


@dataclass(frozen=True)
class Chart:
    """One chart: ``name`` is stable (file ``<name>.png``, ``cid`` part), ``alt`` describes it in words."""

    name: str
    title: str
    alt: str
    png: bytes
    width: int
    height: int

    @property
    def filename(self) -> str:
        return f"{self.name}.png"


def render_charts(data: WeeklyReportData) -> list[Chart]:
    """The three charts, in the order the report shows them."""
    return [availability_chart(data), latency_chart(data), quality_chart(data)]


def availability_chart(data: WeeklyReportData) -> Chart:
    from matplotlib.colors import BoundaryNorm, ListedColormap

    services = [s for s in data.services if s.id in data.daily][:MAX_HEAT_ROWS]
    rows = max(len(services), 1)
    height = HEAT_FRAME_IN + HEAT_ROW_IN * rows
    fig = _figure(height)
    ax = fig.add_axes((0.3, 0.9 / height, 0.62, 1 - 1.3 / height))
    days = _days(data)
    values = [[_nan(day.availability_pct) for day in data.daily[s.id]] for s in services] or [[math.nan] * len(days)]
    cmap = ListedColormap(list(AVAILABILITY_COLOURS)).with_extremes(bad=NO_DATA_COLOUR)
    norm = BoundaryNorm(list(AVAILABILITY_BANDS), cmap.N)
    ax.imshow(values, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(days)), days)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(services)), [_short(s.name) for s in services])
    ax.tick_params(length=0, labelsize=9)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xticks([x - 0.5 for x in range(1, len(days))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, rows)], minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="minor", length=0)
    for y, row in enumerate(values if services else []):
        for x, value in enumerate(row):
            if not math.isnan(value):
                ax.text(x, y, _pct(value), ha="center", va="center", fontsize=8,
                        color="white" if value < 90 or value >= 99.9 else "#202124")
    _key(fig, height)
    fig.suptitle("Availability per day", x=0.02, ha="left", fontsize=11, fontweight="bold")
    lows = sorted(((day.availability_pct, s.name, day.day) for s in services for day in data.daily[s.id]
                   if day.availability_pct is not None), key=lambda t: (t[0], t[1], t[2]))
    alt = "Daily availability of each service"
    if lows:
        pct, name, day = lows[0]
        alt += f"; lowest: {name} on {day:%a %d %b} at {_pct(pct)}%"
    return _chart("availability", "Availability per day", alt, fig)


def latency_chart(data: WeeklyReportData) -> Chart:
    picked, total = _pick(data, lambda s: s.latency.p95_ms, highest=True)
    fig = _figure(LINE_HEIGHT_IN)
    ax = _line_axes(fig)
    days = _days(data)
    drawn = 0
    for index, service in enumerate(picked):
        figures = data.daily[service.id]
        p95 = [_seconds(day.latency.p95_ms) for day in figures]
        if all(math.isnan(v) for v in p95):
            continue
        colour = PALETTE[index % len(PALETTE)]
        ax.fill_between(range(len(days)), [_seconds(d.latency.p50_ms) for d in figures],
                        [_seconds(d.latency.p99_ms) for d in figures], color=colour, alpha=0.12, linewidth=0)
        ax.plot(range(len(days)), p95, color=colour, marker="o", markersize=3, linewidth=1.6, label=_short(service.name))
        drawn += 1
    if drawn:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_seconds_formatter())
        ax.yaxis.set_minor_formatter(_seconds_formatter(minor=True))
    else:
        _no_data(ax)
    _finish_lines(ax, days, drawn)
    title = "Latency per day: p95 (line), p50-p99 (band)"
    note = f", the {len(picked)} slowest of {total} services" if total > len(picked) else ""
    fig.suptitle(title + note, x=0.02, ha="left", fontsize=11, fontweight="bold")
    alt = f"Daily p95 latency with the p50 to p99 range{note or ' of each service'}"
    return _chart("latency", "Latency per day", alt, fig)


def quality_chart(data: WeeklyReportData) -> Chart:
    picked, total = _pick(data, lambda s: None if s.quality_mean is None else -s.quality_mean, highest=True)
    fig = _figure(LINE_HEIGHT_IN)
    ax = _line_axes(fig)
    days = _days(data)
    drawn = 0
    for index, service in enumerate(picked):
        means = [_nan(day.quality_mean) for day in data.daily[service.id]]
        if all(math.isnan(v) for v in means):
            continue
        ax.plot(range(len(days)), means, color=PALETTE[index % len(PALETTE)], marker="o", markersize=3,
                linewidth=1.6, label=_short(service.name))
        drawn += 1
    if drawn:
        ax.set_ylim(bottom=max(0.0, min(_finite(line.get_ydata()) for line in ax.get_lines()) - 0.05),
                    top=min(1.0, max(_finite(line.get_ydata(), low=False) for line in ax.get_lines()) + 0.05))
    else:
        _no_data(ax)
    _finish_lines(ax, days, drawn)
    note = f", the {len(picked)} lowest of {total} services" if total > len(picked) else ""
    fig.suptitle("Mean quality score per day" + note, x=0.02, ha="left", fontsize=11, fontweight="bold")
    alt = f"Daily mean quality score{note or ' of each service'}"
    return _chart("quality", "Quality per day", alt, fig)


# -- helpers ---------------------------------------------------------------------------------------------


def _figure(height_in: float) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, facecolor="white")
    return fig


def _chart(name: str, title: str, alt: str, fig: Figure) -> Chart:
    from PIL import Image

    drawn = io.BytesIO()
    fig.savefig(drawn, format="png", dpi=DPI)
    # a palette of PALETTE_COLOURS (no dithering) looks the same and is ~4x smaller: the charts travel
    # in every email and in the archived page; Pillow writes no software or date metadata
    image = Image.open(drawn).convert("RGB").quantize(colors=PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT,
                                                        dither=Image.Dither.NONE)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return Chart(name, title, alt, out.getvalue(), image.width, image.height)


def _key(fig: Figure, height_in: float) -> None:
    """The heatmap's colour key along the bottom: a swatch and its band for each colour, and "no probes"."""
    from matplotlib.patches import Rectangle

    labels = ("< 90%", "90–95%", "95–99%", "99–99.9%", "≥ 99.9%", "no probes")
    y = 0.22 / height_in
    size = 0.14 / height_in
    for index, (label, colour) in enumerate(zip(labels, (*AVAILABILITY_COLOURS, NO_DATA_COLOUR), strict=True)):
        x = 0.3 + index * 0.115
        fig.add_artist(Rectangle((x, y), 0.018, size, transform=fig.transFigure, facecolor=colour, edgecolor="none"))
        fig.text(x + 0.024, y + size / 2, label, fontsize=8, va="center", color="#3c4043")


def _line_axes(fig: Figure) -> Axes:
    ax = fig.add_axes((0.08, 0.12, 0.6, 0.74))
    ax.grid(axis="y", color="#dadce0", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)
    return ax


def _finish_lines(ax: Axes, days: list[str], drawn: int) -> None:
    ax.set_xticks(range(len(days)), days)
    ax.set_xlim(-0.3, len(days) - 0.7)
    if drawn:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no data this week", transform=ax.transAxes, ha="center", va="center", color="#5f6368")
    ax.set_yticks([])


def _pick(data: WeeklyReportData, key: Any, *, highest: bool) -> tuple[list, int]:
    """At most ``MAX_LINES`` services with daily figures, ranked by ``key`` (largest first), in config order."""
    candidates = [s for s in data.services if s.id in data.daily and key(s) is not None]
    total = len(candidates)
    if total <= MAX_LINES:
        return candidates, total
    ranked = sorted(candidates, key=lambda s: -key(s) if highest else key(s))[:MAX_LINES]
    keep = {s.id for s in ranked}
    return [s for s in candidates if s.id in keep], total


def _days(data: WeeklyReportData) -> list[str]:
    any_days: list[DayFigures] = next(iter(data.daily.values()), [])
    if any_days:
        return [f"{d.day:%a %d}" for d in any_days]
    return ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _seconds(ms: float | None) -> float:
    return math.nan if ms is None else ms / 1000.0


def _finite(values: Any, *, low: bool = True) -> float:
    finite = [float(v) for v in values if not math.isnan(float(v))]
    return (min if low else max)(finite) if finite else (1.0 if low else 0.0)


def _pct(value: float) -> str:
    """99.95 -> "99.95", 100 -> "100", 87.333 -> "87.3": enough digits to tell an SLO apart."""
    if value >= 100:
        return "100"
    return f"{math.floor(value * 100) / 100:.2f}" if value >= 99 else f"{math.floor(value * 10) / 10:.1f}"


def _short(name: str, limit: int = 28) -> str:
    """A label: cut to ``limit`` characters, and "$" kept literal (matplotlib reads "$...$" as maths)."""
    cut = name if len(name) <= limit else name[: limit - 1] + "…"
    return cut.replace("$", r"\$")


def _seconds_formatter(minor: bool = False) -> Any:
    from matplotlib.ticker import FuncFormatter

    def label(value: float, _pos: int) -> str:
        if minor and str(value)[0] not in "25":
            return ""
        return f"{value:g} s" if value >= 1 else f"{value * 1000:g} ms"

    return FuncFormatter(label)
