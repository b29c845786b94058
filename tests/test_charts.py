"""Server-drawn SVG: the points of a line map back to the values, gaps stay gaps, bars carry their day."""

from __future__ import annotations

import math
import re
from datetime import date

import pytest

from monitor.enums import ComponentStatus
from web.charts import (
    HEIGHT,
    WIDTH,
    Series,
    day_title,
    describe,
    line_chart,
    nice_max,
    path_data,
    percent_text,
    segments,
    uptime_bars,
)
from web.uptime import Day, DayIncident, History


def parse_path(d: str) -> list[list[tuple[float, float]]]:
    """The runs of a path drawn by ``path_data`` (``M`` starts a run, ``L`` continues it, ``h0`` is a dot)."""
    runs: list[list[tuple[float, float]]] = []
    for command, x, y in re.findall(r"([ML])(-?[\d.]+),(-?[\d.]+)", d):
        point = (float(x), float(y))
        if command == "M":
            runs.append([point])
        else:
            runs[-1].append(point)
    return runs


def values_of(runs, slots: int, top: float) -> dict[int, float]:
    """Invert the chart's mapping: slot from x, value from y."""
    found = {}
    for run in runs:
        for x, y in run:
            slot = x / (WIDTH / slots) - 0.5
            assert slot == pytest.approx(round(slot), abs=0.01)
            found[round(slot)] = (HEIGHT - y) / HEIGHT * top
    return found


@pytest.mark.parametrize("value, expected", [
    (0, 1.0), (-3, 1.0), (math.nan, 1.0), (math.inf, 1.0),
    (0.7, 0.8), (1, 1), (1.01, 1.5), (2.2, 3), (7, 8), (9, 10), (37_900, 40_000), (1000, 1000), (1001, 1500),
    (0.00042, 0.0005),
])
def test_nice_max(value, expected):
    assert nice_max(value) == pytest.approx(expected)


def test_points_map_back_to_the_values():
    values = [None, 120.0, 240.0, 95.5, None, None, 400.0, 10.0]
    chart = line_chart("c", "Latency", "desc", [Series("p50", "s-p50", values)], ["a", "b", "c"], str)
    assert chart.top == 400.0  # nice_max(400)
    d = re.search(r'<path class="line s-p50" d="([^"]+)"/>', str(chart.svg)).group(1)
    runs = parse_path(d)
    assert [len(run) for run in runs] == [3, 2]  # the gap in the data is a gap in the line
    got = values_of(runs, len(values), chart.top)
    assert set(got) == {1, 2, 3, 6, 7}
    for slot, value in got.items():
        assert value == pytest.approx(values[slot], abs=chart.top / HEIGHT * 0.05 + 1e-9)  # one-decimal rounding
    # the highest value touches the top of the drawing, zero would sit on its bottom edge
    assert runs[1][0] == (pytest.approx(WIDTH * 6.5 / 8), 0.0)


def test_lone_points_are_dots_and_values_beyond_the_top_are_clamped():
    runs = segments([None, 5.0, None, 50.0], top=10.0)
    assert runs == [[(375.0, 100.0)], [(875.0, 0.0)]]  # 50 drawn at the top (10)
    assert path_data(runs) == "M375,100h0M875,0h0"
    assert segments([None, math.nan], top=1.0) == []


def test_chart_markup_is_accessible_escaped_and_styled_by_class():
    series = [Series("p50", "s-p50", [1000.0, 2000.0]), Series("p95", "s-p95", [None, None])]
    chart = line_chart("latency-chart", 'Latency <script>"x"</script>', "from 1 s & up", series,
                       ["00:00", "12:00", "23:00"], lambda v: f"{v / 1000:g} s")
    svg = str(chart.svg)
    assert svg.startswith('<svg id="latency-chart" class="plot" viewBox="0 0 1000 200" preserveAspectRatio="none" '
                          'role="img" aria-labelledby="latency-chart-title latency-chart-desc">')
    assert '<title id="latency-chart-title">Latency &lt;script&gt;&#34;x&#34;&lt;/script&gt;</title>' in svg
    assert '<desc id="latency-chart-desc">from 1 s &amp; up</desc>' in svg
    assert "<script" not in svg and "style" not in svg
    assert svg.count("<path ") == 1  # a series without data draws nothing
    assert svg.count('<line class="grid"') == 3
    assert chart.y_labels == ("2 s", "1 s", "0 s") and chart.x_labels == ("00:00", "12:00", "23:00")
    assert not chart.empty
    assert line_chart("q", "t", "d", [Series("q", "s-q", [None])], [], str, top=1.0).empty


def test_describe_names_the_range_and_the_latest_value():
    assert describe(Series("p95", "x", [None, 3.0, 1.0, 2.0, None]), lambda v: f"{v:g} s") == \
        "p95: from 1 s to 3 s, latest 2 s"
    assert describe(Series("p95", "x", [None]), str) == "p95: no data"


def test_percent_text_never_rounds_up_to_100():
    assert percent_text(None) == "no data"
    assert percent_text(100.0) == "100%"
    assert percent_text(99.999) == "99.99%"
    assert percent_text(97.5) == "97.50%"


def test_uptime_bars_one_rect_per_day_with_its_title():
    outage = DayIncident(7, 'API <b>down</b> & "slow"', ComponentStatus.PARTIAL_OUTAGE)
    days = [
        Day(date(2026, 11, 1), None, None),
        Day(date(2026, 11, 2), 100.0, ComponentStatus.OPERATIONAL),
        Day(date(2026, 11, 3), 99.375, ComponentStatus.PARTIAL_OUTAGE, 540.0, (outage,)),
        Day(date(2026, 11, 4), 100.0, ComponentStatus.UNDER_MAINTENANCE),
    ]
    svg = str(uptime_bars(History(days, 99.8), 'Uptime "90 days" <x>'))
    assert svg.startswith('<svg class="bars" viewBox="0 0 4 1" preserveAspectRatio="none" role="img" '
                          'aria-label="Uptime &#34;90 days&#34; &lt;x&gt;">')
    rects = re.findall(r'<rect x="(\d+)" width="([\d.]+)" height="1" class="d-([a-z_]+)"><title>([^<]*)</title></rect>', svg)
    assert [(x, level) for x, _, level, _ in rects] == [
        ("0", "none"), ("1", "operational"), ("2", "partial_outage"), ("3", "under_maintenance")]
    assert all(float(width) < 1 for _, width, _, _ in rects)  # a gap between neighbours
    assert [title for *_, title in rects] == [
        "2026-11-01: no data",
        "2026-11-02: 100% uptime",
        "2026-11-03: 99.38% uptime — API &lt;b&gt;down&lt;/b&gt; &amp; &#34;slow&#34; (partial outage)",
        "2026-11-04: 100% uptime — maintenance",
    ]
    assert day_title(days[2]) == '2026-11-03: 99.38% uptime — API <b>down</b> & "slow" (partial outage)'
