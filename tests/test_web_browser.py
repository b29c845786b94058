"""The public pages in headless Chromium (Debian's), served by ``web.server.start_server`` (waitress):
no JavaScript needed, the CSP blocks nothing, light and dark themes, no sideways scrolling at 360 px,
and no serious or critical accessibility violation (axe-core) on any page.

Screenshots of every page at 1100 px (light) and 360 px (dark) go to the test's ``tmp_path``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import pytest
from PIL import Image
from sqlalchemy import insert

from monitor.scoring.profile import thumbnail
from monitor.store.db import make_engine, session_factory
from monitor.store.histogram import bucket_index
from monitor.store.models import (
    Base,
    Canary,
    Incident,
    IncidentUpdate,
    Maintenance,
    ProbeResultRow,
    ResultImageRow,
    Service,
    rollup_daily,
    rollup_hourly,
)
from web import create_app
from web.server import start_server

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: axe-core impacts that fail the test
BLOCKING_IMPACTS = {"serious", "critical"}

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if CHROMIUM is None:
    pytest.skip("chromium is not installed", allow_module_level=True)


@dataclass(frozen=True)
class Seeded:
    open_incident: int  # flux, major outage, two updates
    past_incident: int  # dalle3, twelve days ago, resolved, with a postmortem
    operator_incident: int  # never public


def seed(engine, now: datetime | None = None) -> Seeded:
    """Three services with 40 days of daily rollups, 7 days of hourly ones, raw results with thumbnails,
    an open and a past public incident, an operator-only one, and maintenance scheduled for tomorrow."""
    now = now or datetime.now(UTC)
    today = datetime.combine(now.date(), time(), tzinfo=UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    with session_factory(engine)() as session:
        session.add_all([
            Service(id="dalle3", name="DALL·E 3", group_name="OpenAI", provider="openai", position=0),
            Service(id="flux", name="FLUX.1 <pro>", group_name="Black Forest Labs", provider="bfl", position=1),
            Service(id="sd", name="Stable Diffusion XL", group_name="Self-hosted", provider="automatic1111", position=2),
            Canary(id="apple", prompt="an apple", size="512x512"),
        ])
        session.flush()
        for region in ("eu-west", "us-east"):
            session.add(ProbeResultRow(service_id="dalle3", region=region, kind="canary", outcome="ok", canary_id="apple",
                                       started_at=now - timedelta(minutes=3), total_ms=14_000, http_status=200,
                                       quality_score=0.93, quality_verdict="pass"))
            session.add(ProbeResultRow(service_id="flux", region=region, kind="canary", outcome="timeout",
                                       started_at=now - timedelta(minutes=2), total_ms=180_000,
                                       error_detail="no terminal job state after 180s"))
        thumb_colours = {"eu-west": (200, 40, 40), "us-east": (40, 40, 200)}
        for row in session.query(ProbeResultRow).filter_by(service_id="dalle3").all():
            session.add(ResultImageRow(result_id=row.id, service_id="dalle3", created_at=row.started_at,
                                       thumbnail=thumbnail(Image.new("RGB", (640, 480), thumb_colours[row.region]))))
        flux_down = Incident(service_id="flux", kind="outage", audience="public", impact="major", status="identified",
                             title="FLUX.1 <pro>: major outage", regions=["eu-west", "us-east"],
                             started_at=now - timedelta(minutes=50), detected_at=now - timedelta(minutes=48))
        flux_down.updates = [
            IncidentUpdate(status="investigating", body="Image generation fails in every region.",
                           created_at=now - timedelta(minutes=48), display_at=now - timedelta(minutes=48)),
            IncidentUpdate(status="identified", body="The provider confirmed an outage.\nWe keep watching.",
                           created_at=now - timedelta(minutes=20), display_at=now - timedelta(minutes=20)),
        ]
        past = Incident(service_id="dalle3", kind="outage", audience="public", impact="minor", status="resolved",
                        title="dalle3: partial outage", public_title="Slow and failing generations", regions=["eu-west"],
                        started_at=today - timedelta(days=12) + timedelta(hours=9),
                        detected_at=today - timedelta(days=12) + timedelta(hours=9),
                        resolved_at=today - timedelta(days=12) + timedelta(hours=11),
                        postmortem="A bad deploy at the provider.\n\nRolled back after two hours.",
                        postmortem_at=today - timedelta(days=11))
        past.updates = [IncidentUpdate(status="resolved", body="Generations are back to normal.",
                                       created_at=past.resolved_at, display_at=past.resolved_at)]
        operator = Incident(service_id="sd", kind="operator", audience="operator", impact="minor", status="investigating",
                            title="sd: our API key was rejected", started_at=now - timedelta(hours=1),
                            detected_at=now - timedelta(hours=1))
        session.add_all([flux_down, past, operator])
        session.add(Maintenance(title="Driver upgrade", body="The GPU hosts get new drivers.", services=["sd"],
                                starts_at=today + timedelta(days=1, hours=6), ends_at=today + timedelta(days=1, hours=7)))
        for days_ago in range(40):
            for service_id in ("dalle3", "flux", "sd"):
                down = 30 if (service_id == "flux" and days_ago == 0) else 0
                slow = 3 if days_ago == 7 else 0
                session.execute(insert(rollup_daily).values(
                    service_id=service_id, region="eu-west", bucket_start=today - timedelta(days=days_ago),
                    n_total=144, n_ok=144 - down - slow, n_slow=slow, n_timeout=down,
                    quality_count=144 - down, quality_sum=0.9 * (144 - down), h40=144 - down - slow, h45=slow,
                ))
        for hours_ago in range(24 * 7):
            for service_id, cell in (("dalle3", bucket_index(14_000)), ("flux", bucket_index(9_000))):
                session.execute(insert(rollup_hourly).values(
                    service_id=service_id, region="eu-west", bucket_start=hour - timedelta(hours=hours_ago),
                    n_total=6, n_ok=5, n_slow=1, quality_count=6, quality_sum=6 * (0.85 + 0.1 * (hours_ago % 5) / 4),
                    **{f"h{cell:02d}": 5, f"h{cell + 6:02d}": 1},
                ))
        session.commit()
        return Seeded(flux_down.id, past.id, operator.id)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('browser') / 'web.db'}")
    Base.metadata.create_all(engine)
    seeded = seed(engine)
    server = start_server(create_app(engine=engine))
    yield server.url, seeded
    server.shutdown()
    engine.dispose()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def pages(seeded: Seeded) -> dict[str, str]:
    return {"index": "/", "service": "/services/flux?window=7d", "incident": f"/incidents/{seeded.open_incident}",
            "postmortem": f"/incidents/{seeded.past_incident}", "history": "/history"}


def test_status_page_without_javascript(site, browser, tmp_path):
    url, seeded = site
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(url + "/")

    banner = page.locator("#overall-status")
    # flux in a major outage, dalle3 operational, sd without recent results: one of three, so "major"
    assert banner.get_attribute("data-status") == "major"
    assert banner.inner_text().strip() == "Partial System Outage"
    assert page.locator("li.service").count() == 3
    flux = page.locator('[data-service="flux"]')
    assert flux.get_attribute("data-status") == "major_outage"
    assert flux.locator(".badge").is_visible() and flux.locator(".badge").inner_text().strip() == "Major outage"
    assert page.locator('[data-service="dalle3"] .badge').inner_text().strip() == "Operational"
    assert "FLUX.1 <pro>" in flux.locator(".service-name").inner_text()

    # 90 bars per service: the oldest 50 days before the first rollup are "no data", today's flux bar is red
    for service_id in ("dalle3", "flux", "sd"):
        classes = page.locator(f'[data-service="{service_id}"] svg.bars rect').evaluate_all(
            "rects => rects.map(r => r.getAttribute('class'))")
        assert len(classes) == 90 and classes[:50] == ["d-none"] * 50
    flux_bars = flux.locator("svg.bars rect")
    assert flux_bars.nth(89).get_attribute("class") == "d-major_outage"
    assert flux_bars.nth(89).locator("title").text_content().endswith("FLUX.1 <pro>: major outage (major outage)")
    dalle3_bars = page.locator('[data-service="dalle3"] svg.bars rect')
    assert dalle3_bars.nth(89 - 12).get_attribute("class") == "d-partial_outage"
    assert page.locator('[data-service="dalle3"] svg.bars').get_attribute("aria-label").startswith(
        "Daily uptime over the last 90 days: 99.")
    bar_colour = flux_bars.nth(89).evaluate("r => getComputedStyle(r).fill")
    assert bar_colour != flux_bars.nth(60).evaluate("r => getComputedStyle(r).fill")  # red is not green

    # the open incident with its latest update; the operator-only one is nowhere
    card = page.locator(f'#incident-{seeded.open_incident}')
    assert "The provider confirmed an outage." in card.inner_text()
    assert "Image generation fails" not in card.inner_text()  # only the newest update on the overview
    assert "API key" not in page.content()
    assert page.locator('[data-maintenance="scheduled"]').inner_text().count("Stable Diffusion XL") == 1

    page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
    card.locator("a").first.click()
    page.wait_for_url(f"{url}/incidents/{seeded.open_incident}")
    assert page.locator("h1").inner_text() == "FLUX.1 <pro>: major outage"
    assert page.locator(".timeline li").evaluate_all("items => items.map(i => i.dataset.updateStatus)") == [
        "identified", "investigating"]  # newest first

    page.goto(url + "/services/flux")
    assert page.locator("h1.service-name").inner_text() == "FLUX.1 <pro>"
    assert page.locator("table.results tbody tr").count() == 2
    assert page.get_by_text("no image within the deadline").first.is_visible()
    assert page.get_by_text("no terminal job state after 180s").count() == 0  # raw details stay off the public page
    assert page.locator("#latency-chart path.line").count() == 2 and page.locator("#quality-chart path.line").count() == 1
    page.get_by_role("link", name="90d").click()  # the window links work without JavaScript
    page.wait_for_url(url + "/services/flux?window=90d")
    assert page.locator(".windows [aria-current=page]").inner_text() == "90d"
    context.close()


def test_dark_theme_narrow_screens_and_screenshots(site, browser, tmp_path):
    url, seeded = site
    backgrounds = {}
    for scheme, width in (("light", 1100), ("dark", 360)):
        context = browser.new_context(color_scheme=scheme, viewport={"width": width, "height": 800})
        page = context.new_page()
        for name, path in pages(seeded).items():
            page.goto(url + path)
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width, f"{path} scrolls sideways at {width} px ({overflow} px wide)"
            shot = tmp_path / f"{name}-{scheme}-{width}.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        page.goto(url + "/")
        backgrounds[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
        context.close()
    assert backgrounds["light"] == "rgb(246, 247, 249)"
    assert backgrounds["dark"] == "rgb(13, 17, 23)"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violations(site, browser, scheme):
    from axe_playwright_python.sync_playwright import Axe

    url, seeded = site
    context = browser.new_context(color_scheme=scheme)
    page = context.new_page()
    axe = Axe()
    found = {}
    for path in pages(seeded).values():
        page.goto(url + path)
        violations = axe.run(page).response["violations"]
        blocking = [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
                    for v in violations if v["impact"] in BLOCKING_IMPACTS]
        if blocking:
            found[path] = blocking
    context.close()
    assert found == {}


def test_stylesheet_loads_under_the_csp(site, browser):
    """With JavaScript on (for the check itself): the CSS applies and nothing is blocked."""
    url, seeded = site
    context = browser.new_context()
    page = context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    for path in pages(seeded).values():
        page.goto(url + path)
        background = page.locator("header.site-header").evaluate("element => getComputedStyle(element).backgroundColor")
        assert background not in ("rgba(0, 0, 0, 0)", "transparent")
    assert console_errors == []
    context.close()


def test_thumbnails_load_under_the_csp(site, browser):
    url, _ = site
    page = browser.new_page()
    blocked = []
    page.on("console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None)
    page.goto(f"{url}/services/dalle3")
    page.wait_for_load_state("load")
    # the thumbnails are loading="lazy": they may still be on their way after the load event on a busy machine
    page.locator(".thumbs").scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.querySelectorAll('.thumbs img')].every(i => i.complete)", timeout=15_000)
    widths = page.eval_on_selector_all(".thumbs img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : -1)")
    page.close()
    assert widths == [160, 160] and not blocked
