"""The public HTML pages through the Flask client: the banner, the 90 bars, maintenance, the service
page's charts and outcome counts, the incident page and the history, 404s, escaping everywhere, meta
tags, and a page cost that does not grow with the history."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import event

from monitor.config import Config, ServiceConfig
from monitor.store.histogram import bucket_index, percentile
from monitor.store.models import Incident, IncidentUpdate, Maintenance, rollup_daily, rollup_hourly
from tests.test_charts import parse_path, values_of
from tests.webdb import add_result, add_rollup, add_service, client, engine, session  # noqa: F401 - fixtures
from web import create_app
from web.charts import HEIGHT
from web.uptime import FORMULA

NOW = datetime.now(UTC)
TODAY = datetime.combine(NOW.date(), time(), tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clock_at_test_start():
    """The pages read the real clock: each test builds its rows from the time it starts, not from
    when the module was imported (the whole suite takes minutes)."""
    global NOW, TODAY
    NOW = datetime.now(UTC)
    TODAY = datetime.combine(NOW.date(), time(), tzinfo=UTC)
XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def app_client(engine, **config):
    """A client of an app with a config (services ``a`` and ``b`` unless given)."""
    config.setdefault("services", [ServiceConfig(id="a", name="Alpha", group="G", provider="openai", canaries=["c"]),
                                   ServiceConfig(id="b", name="Beta", group="G", provider="openai", canaries=["c"])])
    return create_app(Config(**config), engine=engine, testing=True).test_client()


def add_incident(session, service_id="a", *, start, end=None, impact="major", kind="outage", audience="public",
                 title="Outage", updates=(), **fields) -> int:
    row = Incident(service_id=service_id, kind=kind, audience=audience, impact=impact,
                   status="resolved" if end else "investigating", title=title, regions=["eu"],
                   started_at=start, detected_at=start, resolved_at=end, **fields)
    row.updates = [IncidentUpdate(status=status, body=body, created_at=at, display_at=at) for status, body, at in updates]
    session.add(row)
    session.commit()
    return row.id


def html_of(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    return response.get_data(as_text=True)


def bars_of(html: str, service_id: str) -> list[tuple[str, str]]:
    """(class, title) of each bar of one service on the overview."""
    item = re.search(rf'<li class="service" data-service="{service_id}".*?</li>', html, re.S).group(0)
    return re.findall(r'<rect x="\d+" width="[\d.]+" height="1" class="d-([a-z_]+)"><title>([^<]*)</title>', item)


def banner_of(html: str) -> tuple[str, str, str]:
    match = re.search(r'<section id="overall-status" class="banner banner-(\w+)" data-status="(\w+)"[^>]*>\s*<h1>([^<]+)</h1>', html)
    return match.group(1), match.group(2), match.group(3)


# -- the overview ---------------------------------------------------------------------------------


def test_banner_for_no_data_operation_and_maintenance(engine, session):
    add_service(session, "a")
    add_service(session, "b")
    assert banner_of(html_of(app_client(engine), "/")) == ("nodata", "none", "No Data Yet")

    add_result(session, "a", "eu", "ok", NOW - timedelta(minutes=5))
    assert banner_of(html_of(app_client(engine), "/")) == ("none", "none", "All Systems Operational")

    window = {"title": "Upgrade", "start": NOW - timedelta(hours=1), "end": NOW + timedelta(hours=1)}
    html = html_of(app_client(engine, maintenance=[window]), "/")
    assert banner_of(html) == ("maintenance", "none", "Service Under Maintenance")
    assert re.findall(r'data-service="(\w)" data-status="(\w+)"', html) == [("a", "under_maintenance"),
                                                                           ("b", "under_maintenance")]


def test_ninety_bars_from_incidents_rollups_and_maintenance(engine, session):
    add_service(session, "a")
    add_service(session, "b")
    for days_ago in range(10):  # "a" has had results for ten days, "b" for two
        add_rollup(session, rollup_daily, "a", "eu", TODAY - timedelta(days=days_ago), ok=10)
    for days_ago in range(2):
        add_rollup(session, rollup_daily, "b", "eu", TODAY - timedelta(days=days_ago), ok=10)
    three_days_ago = TODAY - timedelta(days=3)
    partial = add_incident(session, "a", impact="minor", title="Slow <and> failing", start=three_days_ago + timedelta(hours=6),
                           end=three_days_ago + timedelta(hours=18))  # 12 h of a partial outage
    add_incident(session, "a", audience="operator", kind="operator", title="Our key", start=TODAY - timedelta(days=5),
                 end=TODAY - timedelta(days=4))  # operator-only: no trace on the public page
    session.add(Maintenance(title="Planned", services=["a"], starts_at=TODAY - timedelta(days=6, hours=-2),
                            ends_at=TODAY - timedelta(days=6, hours=-4)))
    session.commit()

    html = html_of(app_client(engine), "/")
    a, b = bars_of(html, "a"), bars_of(html, "b")
    assert len(a) == len(b) == 90
    # days before a service had results are "no data"
    assert [level for level, _ in a].count("none") == 80 and [level for level, _ in b].count("none") == 88
    assert a[-4] == ("partial_outage", f"{three_days_ago.date()}: 85.00% uptime — Slow &lt;and&gt; failing (partial outage)")
    assert a[-7][0] == "under_maintenance" and a[-7][1].endswith("100% uptime — maintenance")
    assert a[-5] == ("operational", f"{(TODAY - timedelta(days=4)).date()}: 100% uptime")
    assert "Our key" not in html
    # the 90-day figure: 12 h at 30% over the ten days with data (today counts until now)
    total_s = 9 * 86400 + (NOW - TODAY).total_seconds()
    expected = 100 * (1 - 0.3 * 12 * 3600 / total_s)
    item = re.search(r'data-service="a".*?</li>', html, re.S).group(0)
    assert f'aria-label="Daily uptime over the last 90 days: {expected:.2f}%"' in item
    assert f'<span class="bars-uptime">{expected:.2f}% uptime</span>' in item
    # the days with incidents in text, linking to the incident
    assert "1 day with incidents</summary>" in item
    assert f'<a href="/incidents/{partial}">Slow &lt;and&gt; failing</a> (partial outage)' in item
    assert "days with incidents" not in re.search(r'data-service="b".*?</li>', html, re.S).group(0)
    assert FORMULA in html


def test_bars_follow_the_site_timezone(engine, session):
    add_service(session, "a")
    # 23:30-00:30 UTC on the night before yesterday: all of it on one day in Tokyo (UTC+9), in the afternoon
    start = TODAY - timedelta(days=1, minutes=30)
    add_incident(session, "a", start=start, end=start + timedelta(hours=1), title="Night")
    html = html_of(app_client(engine, site={"title": "S", "timezone": "Asia/Tokyo"}), "/")
    bars = bars_of(html, "a")
    local_day = (start + timedelta(hours=9)).date()
    marked = [title for level, title in bars if level == "major_outage"]
    assert len(marked) == 1 and marked[0].startswith(f"{local_day}: 95.83% uptime — Night")  # 1 h of 24
    assert "Each bar is one day (Asia/Tokyo)" in html


def test_active_incidents_show_the_public_title_and_the_newest_update(engine, session):
    add_service(session, "a")
    add_result(session, "a", "eu", "timeout", NOW - timedelta(minutes=1))
    incident_id = add_incident(session, "a", start=NOW - timedelta(hours=1), title="a: major outage",
                               public_title="Generation is failing", public_body="We are on it.",
                               updates=[("investigating", "First look.", NOW - timedelta(minutes=50)),
                                        ("identified", "Found it.\nFixing.", NOW - timedelta(minutes=10))])
    html = html_of(app_client(engine), "/")
    card = re.search(rf'<li id="incident-{incident_id}".*?</li>', html, re.S).group(0)
    assert f'<a href="/incidents/{incident_id}">Generation is failing</a>' in card
    assert "a: major outage" not in card and "<p>We are on it.</p>" in card
    assert re.search(r"<p>Found it.<br>\s*Fixing.</p>", card) and "First look." not in card
    assert "<strong>Identified</strong>" in card


def test_maintenance_in_progress_and_upcoming(engine, session):
    add_service(session, "a")
    add_service(session, "b")
    session.add_all([
        Maintenance(title="Database move", body="Short pauses.", services=["b"], starts_at=NOW + timedelta(days=1),
                    ends_at=NOW + timedelta(days=1, hours=2)),
        Maintenance(title="Finished early", services=None, starts_at=NOW - timedelta(hours=1),
                    ends_at=NOW + timedelta(hours=1), status="completed"),
        Maintenance(title="Long over", services=None, starts_at=NOW - timedelta(days=3), ends_at=NOW - timedelta(days=2)),
    ])
    session.commit()
    window = {"title": "Network work", "start": NOW - timedelta(minutes=5), "end": NOW + timedelta(hours=1)}
    html = html_of(app_client(engine, maintenance=[window]), "/")
    windows = re.findall(r'data-maintenance="(\w+)">\s*<h3 class="incident-title">([^<]+)</h3>(.*?)</li>', html, re.S)
    assert [(state, title) for state, title, _ in windows] == [("in_progress", "Network work"), ("scheduled", "Database move")]
    assert "All services" in windows[0][2] and "Beta" in windows[1][2] and "<p>Short pauses.</p>" in windows[1][2]
    assert "Finished early" not in html and "Long over" not in html


# -- a service ------------------------------------------------------------------------------------


def test_service_charts_map_to_the_rollups(engine, session):
    add_service(session, "a")
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    fast, slow = bucket_index(2_000), bucket_index(8_000)
    add_rollup(session, rollup_hourly, "a", "eu", hour - timedelta(hours=2), ok=10, **{f"h{fast:02d}": 10})
    add_rollup(session, rollup_hourly, "a", "us", hour - timedelta(hours=2), ok=10, **{f"h{slow:02d}": 10})
    add_rollup(session, rollup_hourly, "a", "eu", hour, ok=4, **{f"h{slow:02d}": 4})
    add_rollup(session, rollup_hourly, "a", "eu", hour - timedelta(hours=30), ok=50, h51=50)  # only in the 7-day window
    session.execute(rollup_hourly.update().where(rollup_hourly.c.bucket_start == hour - timedelta(hours=2))
                    .values(quality_count=10, quality_sum=7.5))
    session.commit()
    client = app_client(engine)
    html = html_of(client, "/services/a")

    top = float(re.search(r"<ul class=\"chart-y\" aria-hidden=\"true\"><li>(\d+) s</li>", html).group(1)) * 1000
    d = dict(re.findall(r'<path class="line (s-p50|s-p95)" d="([^"]+)"/>', html))
    p50 = values_of(parse_path(d["s-p50"]), 24, top)
    merged = [0] * 52
    merged[fast], merged[slow] = 10, 10
    assert set(p50) == {21, 23}  # two of the 24 hourly slots have data, the older one two hours back
    tolerance = top / HEIGHT * 0.06
    assert p50[21] == pytest.approx(percentile(merged, 0.5), abs=tolerance)
    assert values_of(parse_path(d["s-p95"]), 24, top)[21] == pytest.approx(percentile(merged, 0.95), abs=tolerance)
    quality = re.search(r'<path class="line s-quality" d="([^"]+)"/>', html).group(1)
    assert values_of(parse_path(quality), 24, 1.0) == {21: pytest.approx(0.75, abs=0.01)}
    assert 'aria-current="page">24h</a>' in html and re.search(r'data-runs>24<', html)

    week = html_of(client, "/services/a?window=7d")
    assert 'aria-current="page">7d</a>' in week and re.search(r"data-runs>74<", week)
    assert len(parse_path(re.search(r'class="line s-p50" d="([^"]+)"', week).group(1))) == 3  # three separate runs
    assert client.get("/services/a?window=1y").status_code == 404


def test_outcome_counts_leave_out_operator_outcomes(engine, session):
    add_service(session, "a")
    add_rollup(session, rollup_daily, "a", "eu", TODAY, ok=6, timeout=2, auth_error=5, probe_error=1)
    html = html_of(app_client(engine), "/services/a?window=30d")
    rows = re.findall(r'<tr data-outcome-share="(\w+)">.*?<td class="num">(\d+)</td><td class="num">([\d.]+)%</td>', html, re.S)
    assert rows == [("ok", "6", "75.0"), ("timeout", "2", "25.0")]
    assert "auth_error" not in html and "probe_error" not in html
    assert '<rect width="75.0" height="1"/>' in html


def test_service_page_lists_its_public_incidents(engine, session):
    add_service(session, "a")
    add_service(session, "b")
    mine = add_incident(session, "a", start=NOW - timedelta(days=2), end=NOW - timedelta(days=2, hours=-1), title="Mine")
    add_incident(session, "b", start=NOW - timedelta(days=1), end=NOW - timedelta(hours=20), title="Other service")
    add_incident(session, "a", kind="operator", audience="operator", start=NOW - timedelta(days=1), title="Operator only")
    html = html_of(app_client(engine), "/services/a")
    section = re.search(r'<h2 id="incidents-heading">.*?</section>', html, re.S).group(0)
    assert f'<a href="/incidents/{mine}">Mine</a>' in section
    assert "Other service" not in section and "Operator only" not in html


# -- an incident ----------------------------------------------------------------------------------


def test_incident_page_timeline_postmortem_and_duration(engine, session):
    add_service(session, "a")
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    incident_id = add_incident(
        session, "a", impact="minor", start=start, end=start + timedelta(hours=2, minutes=15), title="a: partial outage",
        public_title="Some images fail", postmortem="Cause: a bad deploy.\n\nFix: rolled back.",
        postmortem_at=start + timedelta(days=1),
        updates=[("investigating", "Looking.", start + timedelta(minutes=5)),
                 ("resolved", "All good.", start + timedelta(hours=2, minutes=15)),
                 ("identified", "Deploy found.", start + timedelta(hours=1))])
    html = html_of(app_client(engine, site={"title": "S", "timezone": "Europe/Berlin"}), f"/incidents/{incident_id}")
    assert "<h1>Some images fail</h1>" in html and "a: partial outage" not in html
    assert "<title>Some images fail · S</title>" in html
    assert re.findall(r'data-update-status="(\w+)"', html) == ["resolved", "identified", "investigating"]  # newest first
    assert '<a href="/services/a">Alpha</a>' in html
    assert '<dd data-duration>2 h 15 min</dd>' in html
    assert '<time datetime="2026-03-02T09:00:00Z" title="2026-03-02 09:00 UTC">2026-03-02 10:00 CET</time>' in html
    assert re.search(r"<p>Cause: a bad deploy.</p>\s*<p>Fix: rolled back.</p>", html)
    assert '<span class="impact impact-minor">Minor</span>' in html


def test_unknown_and_operator_incidents_are_404(engine, session):
    add_service(session, "a")
    hidden = add_incident(session, "a", kind="operator", audience="operator", start=NOW, title="Our key was rejected")
    client = app_client(engine)
    for path in (f"/incidents/{hidden}", "/incidents/999", "/incidents/99999999999999999999999", "/incidents/x"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Our key" not in response.get_data(as_text=True)


def test_ongoing_incident_says_for_how_long(engine, session):
    add_service(session, "a")
    incident_id = add_incident(session, "a", start=NOW - timedelta(hours=3, minutes=5))
    html = html_of(app_client(engine), f"/incidents/{incident_id}")
    assert "<dt>Ongoing for</dt><dd>3 h 5 min</dd>" in html or "<dt>Ongoing for</dt><dd>3 h 6 min</dd>" in html
    assert "No updates have been posted." in html


# -- history --------------------------------------------------------------------------------------


def test_history_pages_by_month_newest_first(engine, session):
    add_service(session, "a")
    first = datetime(2026, 1, 5, 12, tzinfo=UTC)
    ids = [add_incident(session, "a", start=first + timedelta(days=4 * i), end=first + timedelta(days=4 * i, hours=1),
                        title=f"Incident {i}") for i in range(30)]
    add_incident(session, "a", kind="operator", audience="operator", start=first, title="Hidden")
    client = app_client(engine)

    page1 = html_of(client, "/history")
    listed = [int(i) for i in re.findall(r'<li class="incident incident-major" data-incident="(\d+)">', page1)]
    assert listed == ids[::-1][:25]  # newest first, 25 to a page
    months = re.findall(r'<h2 id="month-([\d-]+)">([^<]+)</h2>', page1)
    assert months[0] == ("2026-05", "May 2026") and months[-1][0] == "2026-01"  # January goes on over the page
    assert 'rel="next" href="/history?page=2"' in page1 and 'rel="prev"' not in page1
    assert "Page 1 of 2" in page1 and "Hidden" not in page1

    page2 = html_of(client, "/history?page=2")
    assert [int(i) for i in re.findall(r'data-incident="(\d+)"', page2)] == ids[::-1][25:]
    assert 'rel="prev" href="/history"' in page2 and 'rel="next"' not in page2
    for bad in ("3", "0", "-1", "x", "1e3", "99999999999"):
        assert client.get(f"/history?page={bad}").status_code == 404, bad


def test_history_months_are_those_of_the_site_timezone(engine, session):
    add_service(session, "a")
    add_incident(session, "a", start=datetime(2026, 10, 31, 23, 30, tzinfo=UTC), title="Halloween night")
    berlin = html_of(app_client(engine, site={"title": "S", "timezone": "Europe/Berlin"}), "/history")
    assert re.findall(r'<h2 id="month-[\d-]+">([^<]+)</h2>', berlin) == ["November 2026"]
    utc = html_of(app_client(engine), "/history")
    assert re.findall(r'<h2 id="month-[\d-]+">([^<]+)</h2>', utc) == ["October 2026"]


def test_empty_history(client):
    html = html_of(client, "/history")
    assert "No incidents have been reported." in html and 'class="pager"' not in html


# -- escaping, meta tags, robots --------------------------------------------------------------------


def test_everything_written_by_others_is_escaped_on_every_page(engine, session):
    add_service(session, "x", name=XSS, group=XSS)
    add_result(session, "x", "eu", "timeout", NOW - timedelta(minutes=1))
    add_rollup(session, rollup_daily, "x", "eu", TODAY, ok=1)
    incident_id = add_incident(session, "x", start=NOW - timedelta(days=1), title=XSS, public_body=XSS,
                               postmortem=XSS, updates=[("investigating", XSS, NOW - timedelta(hours=2))])
    session.add(Maintenance(title=XSS, body=XSS, services=["x"], starts_at=NOW + timedelta(hours=1),
                            ends_at=NOW + timedelta(hours=2)))
    session.commit()
    client = create_app(engine=engine, testing=True).test_client()  # names from the services table
    for path in ("/", "/services/x", f"/incidents/{incident_id}", "/history"):
        html = html_of(client, path)
        assert "<script" not in html and "<img src=x" not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in html, path
    assert client.get(f"/services/{XSS}").status_code == 404


def test_meta_tags_and_canonical_address(engine, session):
    add_service(session, "a")
    incident_id = add_incident(session, "a", start=NOW - timedelta(hours=1), title="Down")
    plain = html_of(app_client(engine), "/")
    assert "<title>Image Generation Status</title>" in plain
    assert 'rel="canonical"' not in plain and 'og:url' not in plain  # no public address configured

    client = app_client(engine, site={"title": "Pics & Status", "url": "https://status.example.com/"})
    pages = {"/": "Pics &amp; Status", "/services/a?window=7d": "Alpha status · Pics &amp; Status",
             f"/incidents/{incident_id}": "Down · Pics &amp; Status", "/history?page=1": "Incident history · Pics &amp; Status"}
    canonical = {"/": "https://status.example.com/", "/services/a?window=7d": "https://status.example.com/services/a?window=7d",
                 f"/incidents/{incident_id}": f"https://status.example.com/incidents/{incident_id}",
                 "/history?page=1": "https://status.example.com/history"}
    for path, title in pages.items():
        html = html_of(client, path)
        assert f"<title>{title}</title>" in html and f'<meta property="og:title" content="{title}">' in html
        description = re.search(r'<meta name="description" content="([^"]+)">', html).group(1)
        assert len(description) > 30 and f'<meta property="og:description" content="{description}">' in html
        assert f'<link rel="canonical" href="{canonical[path]}">' in html
        assert f'<meta property="og:url" content="{canonical[path]}">' in html
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html and '<html lang="en">' in html
    assert "Major System Outage" in re.search(r'<meta name="description" content="([^"]+)">', html_of(client, "/")).group(1)
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and 'rel="canonical"' not in missing.get_data(as_text=True)
    assert '<meta name="robots" content="noindex">' in missing.get_data(as_text=True)


def test_robots_txt_and_favicon(client):
    robots = client.get("/robots.txt")
    assert robots.status_code == 200 and robots.mimetype == "text/plain"
    lines = robots.get_data(as_text=True).splitlines()
    assert "User-agent: *" in lines and "Allow: /" in lines and "Disallow: /admin" in lines
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml" and b"<svg" in icon.data


# -- cost -------------------------------------------------------------------------------------------


def statements(engine, client, path: str) -> int:
    """SQL statements one request of ``path`` runs."""
    count = 0

    def counted(*_args):
        nonlocal count
        count += 1

    event.listen(engine, "before_cursor_execute", counted)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", counted)
    return count


def test_page_cost_does_not_grow_with_history_or_services(engine, session):
    add_service(session, "a")
    add_incident(session, "a", start=NOW - timedelta(hours=1), title="Open")  # one open incident in both cases
    small = {path: statements(engine, create_app(engine=engine, testing=True).test_client(), path)
             for path in ("/", "/services/a", "/history")}

    for i in range(2, 30):
        add_service(session, f"s{i}")
    for days_ago in range(1, 89):
        add_rollup(session, rollup_daily, "a", "eu", TODAY - timedelta(days=days_ago), ok=10, timeout=1)
        add_incident(session, "a", start=TODAY - timedelta(days=days_ago), end=TODAY - timedelta(days=days_ago, hours=-1),
                     title=f"Old {days_ago}", updates=[("resolved", "ok", TODAY - timedelta(days=days_ago))])
    big = {path: statements(engine, create_app(engine=engine, testing=True).test_client(), path) for path in small}
    assert big == small
