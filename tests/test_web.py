"""The status page: queries, state rules, uptime bars, escaping, health check and headers."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from markupsafe import Markup
from sqlalchemy import create_engine

from monitor.config import Config, ServiceConfig, SiteConfig
from monitor.enums import ComponentStatus
from monitor.store.histogram import bucket_index
from monitor.store.models import Incident, rollup_daily, rollup_hourly
from tests.webdb import add_result, add_rollup, add_service, client, engine, session  # noqa: F401 - fixtures
from web import SECURITY_HEADERS, create_app
from web.caching import render_cache
from web.queries import daily_uptime, latency_summary, latest_results, service_states
from web.timefmt import local_text, time_element, zone

NOW = datetime.now(UTC).replace(microsecond=0)  # the page uses the real clock


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def service_order(html: str) -> list[str]:
    return re.findall(r'<li class="service" data-service="([^"]+)"', html)


def service_status(html: str, service_id: str) -> str:
    return re.search(rf'data-service="{re.escape(service_id)}" data-status="([^"]+)"', html).group(1)


def banner(html: str) -> tuple[str, str]:
    match = re.search(r'id="overall-status"[^>]*data-status="([^"]+)"[^>]*>\s*<h1>([^<]+)</h1>', html)
    return match.group(1), match.group(2)


# ---------------------------------------------------------------------------------------
# service list


def test_services_grouped_and_ordered_by_position(session, client):
    add_service(session, "flux", "FLUX", group="Black Forest", position=2)
    add_service(session, "dalle3", "DALL·E 3", group="OpenAI", position=0)
    add_service(session, "gone", "Removed", group="OpenAI", position=1, active=False)
    add_service(session, "gpt-image", "GPT Image", group="OpenAI", position=3)

    html = client.get("/").get_data(as_text=True)

    # groups in order of their first service; services by position within a group
    assert re.findall(r'<h2 class="group-name"[^>]*>([^<]+)</h2>', html) == ["OpenAI", "Black Forest"]
    assert service_order(html) == ["dalle3", "gpt-image", "flux"]
    assert "Removed" not in html


def test_services_come_from_the_config_when_given(engine, session):
    add_service(session, "b")
    add_service(session, "a")
    config = Config(
        site={"title": "Imaging Status"},
        services=[
            ServiceConfig(id="b", name="Bee", group="G2", provider="openai", canaries=["c"]),
            ServiceConfig(id="a", group="G1", provider="openai", canaries=["c"]),
        ],
    )
    html = create_app(config, engine=engine, testing=True).test_client().get("/").get_data(as_text=True)

    assert service_order(html) == ["b", "a"]
    assert "<title>Imaging Status</title>" in html
    assert ">Bee</a>" in html and ">a</a>" in html  # display name falls back to the id


# ---------------------------------------------------------------------------------------
# current state rules

T = NOW - timedelta(minutes=30)


def add_incident(session, service_id: str, kind: str = "outage", impact: str = "major", audience: str = "public",
                 resolved: bool = False, title: str = "svc: major outage"):
    session.add(Incident(service_id=service_id, kind=kind, audience=audience, impact=impact, status="investigating",
                         title=title, regions=["eu"], started_at=T, detected_at=T, resolved_at=NOW if resolved else None))
    session.commit()


@pytest.mark.parametrize(
    ("incidents", "expected"),
    [
        ([], ComponentStatus.OPERATIONAL),
        ([("outage", "major", "public", False)], ComponentStatus.MAJOR_OUTAGE),
        ([("outage", "critical", "public", False)], ComponentStatus.MAJOR_OUTAGE),
        ([("outage", "minor", "public", False)], ComponentStatus.PARTIAL_OUTAGE),
        ([("latency", "minor", "public", False)], ComponentStatus.DEGRADED_PERFORMANCE),
        ([("quality", "minor", "public", False)], ComponentStatus.DEGRADED_PERFORMANCE),
        ([("safety", "minor", "public", False)], ComponentStatus.DEGRADED_PERFORMANCE),
        # the worst open incident decides
        ([("latency", "minor", "public", False), ("outage", "minor", "public", False)], ComponentStatus.PARTIAL_OUTAGE),
        # resolved and operator-only incidents never show
        ([("outage", "major", "public", True)], ComponentStatus.OPERATIONAL),
        ([("operator", "minor", "operator", False)], ComponentStatus.OPERATIONAL),
    ],
)
def test_state_follows_the_worst_open_public_incident(session, client, incidents, expected):
    add_service(session, "svc")
    add_result(session, "svc", "eu", "timeout", T)  # a failed result alone never turns a service red
    for kind, impact, audience, resolved in incidents:
        add_incident(session, "svc", kind, impact, audience, resolved)
    state = service_states(session, ["svc"], NOW)["svc"]
    assert state.status == expected
    assert service_status(client.get("/").get_data(as_text=True), "svc") == expected.value


def test_no_recent_results_is_no_data_and_maintenance_wins(session):
    add_service(session, "svc")
    assert service_states(session, ["svc"], NOW)["svc"].status is None
    add_result(session, "svc", "eu", "ok", T)
    add_incident(session, "svc")
    assert service_states(session, ["svc"], NOW, maintenance={"svc"})["svc"].status is ComponentStatus.UNDER_MAINTENANCE


def test_latest_result_per_region_is_shown_operator_outcomes_skipped(session):
    add_service(session, "svc")
    add_result(session, "svc", "eu", "timeout", T)
    add_result(session, "svc", "eu", "ok", T + timedelta(minutes=10))
    add_result(session, "svc", "us", "ok", T)
    add_result(session, "svc", "us", "auth_error", T + timedelta(minutes=10))
    assert service_states(session, ["svc"], NOW)["svc"].regions == {"eu": "ok", "us": "ok"}


def test_active_incidents_are_listed_and_escaped(session, client):
    add_service(session, "svc")
    add_result(session, "svc", "eu", "timeout", T)
    add_incident(session, "svc", title="svc <script>: major outage")
    html = client.get("/").get_data(as_text=True)
    assert 'data-impact="major"' in html and "svc &lt;script&gt;: major outage" in html and "<script>" not in html


def test_state_ignores_health_checks_and_stale_results(session):
    add_service(session, "svc")
    add_service(session, "old")
    add_result(session, "svc", "eu", "ok", T)
    add_result(session, "svc", "eu", "timeout", T + timedelta(minutes=5), kind="health")
    add_result(session, "svc", "us", "ok", T, kind="confirmation")
    add_result(session, "old", "eu", "ok", NOW - timedelta(days=2))

    states = service_states(session, ["svc", "old"], NOW)

    assert states["svc"].status is ComponentStatus.OPERATIONAL
    assert set(states["svc"].regions) == {"eu", "us"}
    assert states["svc"].checked_at == T
    assert states["old"].status is None and states["old"].key == "unknown"


def test_banner_follows_the_statuspage_indicator(session, client):
    add_service(session, "a", position=0)
    add_service(session, "b", position=1)
    assert banner(client.get("/").get_data(as_text=True)) == ("none", "No Data Yet")

    now = datetime.now(UTC) - timedelta(minutes=1)
    add_result(session, "a", "eu", "ok", now)
    add_result(session, "b", "eu", "timeout", now)
    render_cache(client.application).clear()  # a new result alone shows on / once its few cached seconds pass
    assert banner(client.get("/").get_data(as_text=True)) == ("none", "All Systems Operational")
    add_incident(session, "b", "latency", "minor")
    assert banner(client.get("/").get_data(as_text=True)) == ("minor", "Partially Degraded Service")
    add_incident(session, "b", "outage", "minor")
    assert banner(client.get("/").get_data(as_text=True)) == ("major", "Partial System Outage")
    add_incident(session, "a", "outage", "major")  # one of two services in a major outage: critical
    assert banner(client.get("/").get_data(as_text=True)) == ("critical", "Major System Outage")


# ---------------------------------------------------------------------------------------
# 90-day uptime from rollup_daily


def test_daily_uptime_maths(session):
    add_service(session, "svc")
    today = NOW.date()
    busy, operator_only, first = today - timedelta(days=3), today - timedelta(days=5), today - timedelta(days=89)
    add_rollup(session, rollup_daily, "svc", "eu", day_start(busy), ok=8, timeout=1, auth_error=1)
    add_rollup(session, rollup_daily, "svc", "us", day_start(busy), ok=9, slow=1)
    add_rollup(session, rollup_daily, "svc", "eu", day_start(operator_only), probe_error=4)
    add_rollup(session, rollup_daily, "svc", "eu", day_start(first), ok=20)
    add_rollup(session, rollup_daily, "svc", "eu", day_start(today - timedelta(days=90)), server_error=50)  # too old

    history = daily_uptime(session, ["svc"], days=90, today=today)["svc"]

    assert len(history.days) == 90
    assert history.days[0].day == first and history.days[-1].day == today
    by_day = {d.day: d for d in history.days}
    day = by_day[busy]
    assert (day.counted, day.down, day.degraded) == (19, 1, 1)
    assert day.uptime == pytest.approx(100 * 18 / 19)
    assert day.level == "partial"
    assert by_day[operator_only].uptime is None and by_day[operator_only].level == "none"
    assert by_day[first].level == "up"
    assert sum(d.uptime is None for d in history.days) == 88
    assert history.uptime == pytest.approx(100 * 38 / 39)  # weighted by counted results


def test_day_levels(session):
    add_service(session, "svc")
    today = NOW.date()
    add_rollup(session, rollup_daily, "svc", "eu", day_start(today), ok=5, degraded_quality=1)
    add_rollup(session, rollup_daily, "svc", "eu", day_start(today - timedelta(days=1)), ok=1, client_error=1)
    days = daily_uptime(session, ["svc"], days=2, today=today)["svc"].days
    assert [d.level for d in days] == ["major", "degraded"]
    assert daily_uptime(session, ["nothing"], days=3, today=today)["nothing"].uptime is None


def test_index_draws_90_bars_with_titles(session, client):
    add_service(session, "svc")
    today = datetime.now(UTC).date()
    yesterday = day_start(today - timedelta(days=1))
    add_rollup(session, rollup_daily, "svc", "eu", yesterday, ok=3, timeout=1)
    session.add(Incident(service_id="svc", kind="outage", audience="public", impact="major", status="resolved",
                         title="svc down", regions=["eu"], started_at=yesterday + timedelta(hours=3),
                         detected_at=yesterday + timedelta(hours=3), resolved_at=yesterday + timedelta(hours=5, minutes=24)))
    session.commit()
    html = client.get("/").get_data(as_text=True)

    bars = re.findall(r'<rect x="(\d+)" width="[\d.]+" height="1" class="d-(\w+)"><title>([^<]*)</title></rect>', html)
    assert len(bars) == 90
    assert [b[1] for b in bars].count("none") == 89  # only yesterday has results or incidents
    x, level, title = bars[-2]
    assert (x, level) == ("88", "major_outage")
    assert title == f"{today - timedelta(days=1)}: 90.00% uptime — svc down (major outage)"  # 2.4 h of 24
    assert bars[-1][2] == f"{today.isoformat()}: no data"
    assert "90.00% uptime</span>" in html  # the 90-day figure: over the one day with data


# ---------------------------------------------------------------------------------------
# service page


def test_service_page(session, client):
    add_service(session, "svc", "Stable Diffusion", group="Self-hosted")
    now = datetime.now(UTC)
    add_result(session, "svc", "eu", "ok", now - timedelta(minutes=20), total_ms=12_400, http_status=200, quality_score=0.91)
    add_result(
        session, "svc", "us", "server_error", now - timedelta(minutes=10),
        total_ms=800, http_status=502, error_detail="upstream returned 502",
    )
    add_result(session, "svc", "us", "ok", now - timedelta(minutes=5), kind="health")
    hour = now.replace(minute=0, second=0, microsecond=0)
    add_rollup(session, rollup_hourly, "svc", "eu", hour, ok=10, **{f"h{bucket_index(10_000):02d}": 10})
    add_rollup(session, rollup_hourly, "svc", "eu", hour - timedelta(days=3), ok=5, h51=5)  # outside 24 h

    add_incident(session, "svc", "outage", "minor")
    response = client.get("/services/svc")
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert 'data-service="svc" data-status="partial_outage"' in html
    assert "Stable Diffusion" in html and "Self-hosted" in html
    rows = re.findall(r'<tr data-outcome="(\w+)">', html)
    assert rows == ["server_error", "ok"]  # newest first, health checks left out
    # the public page says what happened in its own words; the raw detail (provider text) is the operator's
    assert "the provider answered with a server error" in html and "upstream returned 502" not in html
    assert "502" in html and "12.4 s" in html and "0.91" in html
    p50 = re.search(r'data-latency="p50">([^<]+)<', html).group(1)
    assert p50.endswith(" s") and 8 < float(p50[:-2]) < 13
    assert len(re.findall(r'<rect x="\d+" width=', html)) == 90


def test_unknown_service_is_404(session, client):
    response = client.get("/services/nope")
    assert response.status_code == 404
    assert "nope" in response.get_data(as_text=True)


def test_latest_results_and_latency_queries(session):
    add_service(session, "svc")
    for minute in range(5):
        add_result(session, "svc", "eu", "ok", T + timedelta(minutes=minute))
    assert [r.started_at for r in latest_results(session, "svc", limit=2)] == [T + timedelta(minutes=4), T + timedelta(minutes=3)]
    empty = latency_summary(session, "svc", NOW - timedelta(hours=24))
    assert (empty.count, empty.p50_ms, empty.p95_ms) == (0, None, None)
    add_rollup(session, rollup_hourly, "svc", "eu", NOW.replace(minute=0, second=0) - timedelta(hours=1), ok=19, slow=1, h10=19, h30=1)
    summary = latency_summary(session, "svc", NOW - timedelta(hours=24))
    assert summary.count == 20 and summary.p50_ms < summary.p95_ms


# ---------------------------------------------------------------------------------------
# escaping, errors, health, headers


def test_provider_text_is_escaped(session, client):
    add_service(session, "svc", name='<script>alert("name")</script>', group="<b>group</b>")
    add_result(session, "svc", "eu", "bad_output", datetime.now(UTC), error_detail='<script>alert("detail")</script>')

    for path in ("/", "/services/svc"):
        html = client.get(path).get_data(as_text=True)
        assert "<script" not in html and "<b>group" not in html
        assert "&lt;script&gt;" in html and "&lt;b&gt;group&lt;/b&gt;" in html
        assert 'alert("detail")' not in html and "alert(&#34;detail&#34;)" not in html  # raw details are not shown at all


def test_error_pages_escape_and_hide_details(engine, session):
    response = create_app(engine=engine, testing=True).test_client().get("/services/%3Cscript%3Ex")
    assert response.status_code == 404
    assert "<script" not in response.get_data(as_text=True) and "&lt;script&gt;x" in response.get_data(as_text=True)

    app = create_app(engine=engine)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret <internals>")

    response = app.test_client().get("/boom")
    html = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "500 Internal Server Error" in html and "secret" not in html
    assert response.headers["X-Frame-Options"] == "DENY"


def test_healthz(engine, client, tmp_path):
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})

    broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'db.sqlite'}")
    response = create_app(engine=broken, testing=True).test_client().get("/healthz")
    # the status only: where the database lives (a host, a port, a path) is nobody's business outside
    assert (response.status_code, response.get_json()) == (503, {"status": "error"})
    assert "missing" not in response.get_data(as_text=True)


def test_security_headers(client):
    for path in ("/", "/healthz", "/services/nope"):
        response = client.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "script-src" not in csp  # default-src 'none' forbids scripts
    assert client.get("/").headers["Content-Type"].startswith("text/html")


def test_pages_have_no_inline_scripts_or_styles(session, client):
    add_service(session, "svc")
    add_incident(session, "svc")
    for path in ("/", "/services/svc", "/services/nope", "/incidents/1", "/history", "/services/svc?window=90d"):
        html = client.get(path).get_data(as_text=True)
        assert "<script" not in html and "style=" not in html and "<style" not in html


# ---------------------------------------------------------------------------------------
# times in the site's timezone (site.timezone), UTC on hover

WINTER = datetime(2026, 11, 2, 10, 5, tzinfo=UTC)  # CET, UTC+1
SUMMER = datetime(2026, 7, 1, 10, 5, 30, tzinfo=UTC)  # CEST, UTC+2


def timezone_app(engine, session, timezone: str | None):
    add_service(session, "svc")
    session.add(Incident(service_id="svc", kind="outage", audience="public", impact="major", status="investigating",
                         title="svc down", regions=["eu"], started_at=WINTER, detected_at=WINTER))
    session.commit()
    add_result(session, "svc", "eu", "timeout", SUMMER)
    site = {"title": "Status"} | ({"timezone": timezone} if timezone else {})
    config = Config(site=site, services=[ServiceConfig(id="svc", provider="openai", canaries=["c"])])
    return create_app(config, engine=engine, testing=True).test_client()


def test_times_show_in_the_site_timezone_with_utc_on_hover(engine, session):
    client = timezone_app(engine, session, "Europe/Berlin")

    html = client.get("/").get_data(as_text=True)
    assert ('· <time datetime="2026-11-02T10:05:00Z" title="2026-11-02 10:05 UTC">2026-11-02 11:05 CET</time>'
            in html)
    assert "Times are shown in Europe/Berlin time; hover over one for UTC." in html
    assert "Each bar is one day (Europe/Berlin)" in html  # the bars are days of the site's timezone
    updated = re.search(r'Updated <time datetime="([^"]+)" title="([^"]+)">([^<]+)</time>', html)
    assert updated.group(2).endswith(" UTC") and updated.group(3).endswith((" CET", " CEST"))

    html = client.get("/services/svc").get_data(as_text=True)
    assert ('<td><time datetime="2026-07-01T10:05:30Z" title="2026-07-01 10:05:30 UTC">2026-07-01 12:05:30 CEST</time></td>'
            in html)
    assert '<th scope="col">Time (Europe/Berlin)</th>' in html


def test_times_are_utc_without_a_timezone(engine, session, client):
    for page in (timezone_app(engine, session, None), client):  # the config's default, and no config at all
        html = page.get("/").get_data(as_text=True)
        assert ('· <time datetime="2026-11-02T10:05:00Z" title="2026-11-02 10:05 UTC">2026-11-02 10:05 UTC</time>'
                in html)
        assert "All times are UTC." in html
        html = page.get("/services/svc").get_data(as_text=True)
        assert '<time datetime="2026-07-01T10:05:30Z" title="2026-07-01 10:05:30 UTC">2026-07-01 10:05:30 UTC</time>' in html
        assert '<th scope="col">Time (UTC)</th>' in html


def test_time_formatting_styles_and_escaping(engine, session):
    berlin = ZoneInfo("Europe/Berlin")
    late = datetime(2026, 11, 2, 23, 30, tzinfo=UTC)
    assert local_text(late, berlin, "date") == "2026-11-03"  # the local date
    assert local_text(late, berlin, "time") == "00:30 CET"
    assert local_text(late.replace(tzinfo=None), berlin) == "2026-11-03 00:30 CET"  # naive means UTC
    assert local_text(None, berlin) == "–" and time_element(None, berlin) == "–"
    assert str(time_element(late, berlin, "date")) == (
        '<time datetime="2026-11-02T23:30:00Z" title="2026-11-02 23:30 UTC">2026-11-03</time>')

    class Odd(tzinfo):  # a zone whose abbreviation is markup
        def utcoffset(self, dt):
            return timedelta(hours=1)

        def tzname(self, dt):
            return '<b onmouseover="x">&'

        def dst(self, dt):
            return timedelta(0)

    tag = time_element(late, Odd())
    assert isinstance(tag, Markup) and "<b" not in tag
    assert str(tag).endswith('>2026-11-03 00:30 &lt;b onmouseover=&#34;x&#34;&gt;&amp;</time>')

    # a timezone that skipped validation never reaches the page: times fall back to UTC, nothing unescaped
    add_service(session, "svc")
    add_result(session, "svc", "eu", "ok", SUMMER)
    config = Config(services=[ServiceConfig(id="svc", provider="openai", canaries=["c"])])
    config.site = SiteConfig.model_construct(title="Status", url=None, timezone='<script>alert(1)</script>')
    assert zone(config.site.timezone) is UTC
    html = create_app(config, engine=engine, testing=True).test_client().get("/services/svc").get_data(as_text=True)
    assert "<script" not in html and "10:05:30 UTC</time>" in html
