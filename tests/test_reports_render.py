"""The weekly report's renderings (HTML, Markdown, charts) from hand-built figures (``tests.reports_data``)."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
from html.parser import HTMLParser

import markdown
import pytest
from PIL import Image

from monitor.reports import display
from monitor.reports.charts import AVAILABILITY_COLOURS, DPI, HEAT_FRAME_IN, HEAT_ROW_IN, WIDTH_IN, render_charts
from monitor.reports.render_html import chart_cid, render_html
from monitor.reports.render_md import render_md
from monitor.reports.schema import from_json, to_json
from tests.reports_data import HOSTILE_NAME, HOSTILE_TITLE, WEEK, sample


class Tags(HTMLParser):
    """Every start tag with its attributes, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def charts():
    return render_charts(sample())


@pytest.fixture(scope="module")
def hostile_charts():
    return render_charts(sample(hostile=True))


# -- HTML --------------------------------------------------------------------------------------------------


def test_html_is_mail_safe_and_references_the_charts_by_cid(charts) -> None:
    data = sample()
    html = render_html(data, charts, images="cid")
    tags = parse(html)
    names = {tag for tag, _ in tags.tags}
    assert not names & {"style", "script", "link", "iframe", "object", "form"}  # mail clients drop or block these
    assert names >= {"table", "tr", "td", "th", "img"}
    images = [attrs for tag, attrs in tags.tags if tag == "img"]
    assert [img["src"] for img in images] == [f"cid:{chart_cid(c, WEEK)}" for c in charts]
    assert all(img["alt"] and img["width"] == "720" for img in images)
    assert not re.search(r"""(src|href)=["'](?!cid:|https://status\.example\.com/reports/2026-W47)""", html)
    text = " ".join(" ".join(tags.text).split())
    assert "2 of 3 services met their availability SLO (missed: FLUX.1 pro)." in text
    assert "98.76%" in text and "✗ missed" in text and "✓ met" in text
    assert "FLUX.1 pro: major outage" in text and "1 h 30 min" in text and "1 min 35 s" in text  # duration, time to detect
    links = [attrs["href"] for tag, attrs in tags.tags if tag == "a"]
    assert links == ["https://status.example.com/reports/2026-W47"]


def test_a_big_fleet_stays_under_gmails_clipping_size() -> None:
    """Gmail shows "[Message clipped]" for an HTML part over ~102 KB: 50 services must fit."""
    data = sample(services=50)
    html = render_html(data, render_charts(data), images="cid")
    assert html.count("<tr") > 150 and len(html.encode("utf-8")) < 100_000


def test_html_image_modes(charts) -> None:
    data = sample()
    files = [a["src"] for t, a in parse(render_html(data, charts, images="files", prefix="r-")).tags if t == "img"]
    assert files == ["r-availability.png", "r-latency.png", "r-quality.png"]
    inline = [a["src"] for t, a in parse(render_html(data, charts, images="inline")).tags if t == "img"]
    assert [base64.b64decode(src.removeprefix("data:image/png;base64,")) for src in inline if src] == [c.png for c in charts]


def test_html_escapes_hostile_names_and_titles(hostile_charts) -> None:
    html = render_html(sample(hostile=True), hostile_charts, images="cid")
    tags = parse(html)
    assert {tag for tag, _ in tags.tags}.isdisjoint({"script", "b"})
    assert [t for t, a in tags.tags if t == "img"] == ["img"] * 3  # only the charts: no injected <img>
    assert not any(name.startswith("on") for _, attrs in tags.tags for name in attrs)
    assert not any("javascript:" in (value or "") for _, attrs in tags.tags for value in attrs.values())
    text = "".join(tags.text)
    assert HOSTILE_NAME in text and HOSTILE_TITLE in text  # shown as text, whole
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html or "&lt;script&gt;alert(&quot;x&quot;)" in html


def test_operator_incidents_only_in_the_internal_rendering(charts) -> None:
    data = sample()
    title = data.operator_incidents[0].title
    assert title in render_html(data, charts, images="cid", internal=True)
    assert title not in render_html(data, charts, images="inline", internal=False)
    assert title in render_md(data, internal=True)
    assert title not in render_md(data, internal=False)


def test_partial_week_is_marked(charts) -> None:
    assert "This week is not over" in render_html(sample(complete=False), charts, images="cid")
    assert "This week is not over" not in render_html(sample(), charts, images="cid")
    assert "This week is not over" in render_md(sample(complete=False))


# -- Markdown --------------------------------------------------------------------------------------------


def test_markdown_has_every_section_and_figure() -> None:
    text = render_md(sample())
    for heading in ("## Availability and incidents", "## Latency", "## Quality, safety and cost", "## Incidents",
                    "## Providers side by side", "## Notable", "## Operator incidents"):
        assert heading in text
    row = next(line for line in text.splitlines() if line.startswith("| FLUX.1 pro |"))
    assert row.split(" | ")[1:4] == ["**98.76%**", "−0.02 pp", "missed (99.5%)"]
    assert "Full report with charts: <https://status.example.com/reports/2026-W47>" in text


def test_markdown_escapes_hostile_text() -> None:
    text = render_md(sample(hostile=True))
    html = markdown.markdown(text, extensions=["tables"])
    tags = parse(html)
    assert {tag for tag, _ in tags.tags}.isdisjoint({"script", "img", "b"})
    assert [a["href"] for t, a in tags.tags if t == "a"] == ["https://status.example.com/reports/2026-W47"]
    shown = "".join(tags.text)
    assert "*bold*" in shown and "[link](javascript:alert(1))" in shown  # literal text, not emphasis or a link
    # every table row keeps its columns: a "|" in a name is escaped
    for block in re.findall(r"(?:^\|.*\|$\n?)+", text, re.M):
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in block.splitlines()}
        assert len(widths) == 1, block


# -- charts ----------------------------------------------------------------------------------------------


def _pixels(png: bytes, *, bottom: int = 0) -> set[tuple[int, int, int]]:
    """The colours of a chart, leaving out ``bottom`` pixel rows (the heatmap's colour key)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.crop((0, 0, image.width, image.height - bottom))
    return {colour for _, colour in image.getcolors(image.width * image.height)}


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_charts_are_deterministic_pngs_of_a_fixed_size(charts) -> None:
    again = render_charts(sample())
    assert [c.png for c in charts] == [c.png for c in again]
    assert [c.name for c in charts] == ["availability", "latency", "quality"]
    for chart in charts:
        image = Image.open(io.BytesIO(chart.png))
        assert image.format == "PNG" and image.size == (chart.width, chart.height)
        assert chart.width == WIDTH_IN * DPI
    assert charts[0].height == round((HEAT_FRAME_IN + HEAT_ROW_IN * 3) * DPI)
    assert render_charts(sample(services=20))[0].height == round((HEAT_FRAME_IN + HEAT_ROW_IN * 20) * DPI)


def test_availability_heatmap_colours_follow_the_figures() -> None:
    red = _rgb(AVAILABILITY_COLOURS[0])  # below 90 %: flux on Sunday (85 %)
    key = int(0.5 * DPI)
    assert red in _pixels(render_charts(sample())[0].png, bottom=key)
    healthy = sample()
    daily = {sid: [dataclasses.replace(d, availability_pct=max(d.availability_pct or 100.0, 99.95)) for d in days]
             for sid, days in healthy.daily.items()}
    chart = render_charts(dataclasses.replace(healthy, daily=daily))[0].png
    assert red not in _pixels(chart, bottom=key)
    assert red in _pixels(chart)  # the key still shows it


def test_charts_survive_hostile_names_and_missing_data() -> None:
    data = sample(hostile=True)
    names = [dataclasses.replace(s, name=r"cost $\frac{$ and $x^$ " + s.name) for s in data.services]
    empty = {sid: [dataclasses.replace(d, availability_pct=None, quality_mean=None,
                                       latency=dataclasses.replace(d.latency, p50_ms=None, p95_ms=None, p99_ms=None))
                   for d in days] for sid, days in data.daily.items()}
    for variant in (dataclasses.replace(data, services=names), dataclasses.replace(data, daily=empty),
                    dataclasses.replace(data, daily={}, services=[])):
        for chart in render_charts(variant):
            assert Image.open(io.BytesIO(chart.png)).size == (chart.width, chart.height)


def test_the_archived_json_renders_the_same() -> None:
    data = sample(hostile=True)
    again = from_json(to_json(data))
    assert render_md(again) == render_md(data)


# -- display ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [(99.996, "99.99%"), (100.0, "100%"), (99.5, "99.50%"), (None, "—"),
                                             (87.333, "87.33%")])
def test_availability_is_rounded_down(value, text) -> None:
    assert display.availability(value) == text


@pytest.mark.parametrize(("seconds", "text"), [(0, "0 s"), (95, "1 min 35 s"), (600, "10 min"), (5400, "1 h 30 min"),
                                               (7200, "2 h"), (200_000, "2 d 7 h"), (None, "—")])
def test_durations(seconds, text) -> None:
    assert display.duration(seconds) == text


def test_overview_sentences() -> None:
    data = sample()
    assert display.overview(data) == [
        "2 of 3 services met their availability SLO (missed: FLUX.1 pro).",
        "1 public incident, 1 h 30 min of outage in total, the longest 1 h 30 min.",
        "30,276 probe runs cost $907.20, 81% of the week's budget ($1,119.99).",
    ]
