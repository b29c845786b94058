"""The status page in headless Chromium, served by ``web.server.start_server``."""

from __future__ import annotations

import os
from datetime import UTC, datetime, time, timedelta

import pytest
from PIL import Image
from sqlalchemy import insert

from monitor.scoring.profile import thumbnail
from monitor.store.db import make_engine, session_factory
from monitor.store.models import Base, Incident, ProbeResultRow, ResultImageRow, Service, rollup_daily
from web import create_app
from web.server import start_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)


def _seed(engine) -> None:
    now = datetime.now(UTC)
    today = datetime.combine(now.date(), time(), tzinfo=UTC)
    with session_factory(engine)() as session:
        session.add_all(
            [
                Service(id="dalle3", name="DALL·E 3", group_name="OpenAI", provider="openai", position=0),
                Service(id="flux", name="FLUX.1 <pro>", group_name="Black Forest Labs", provider="bfl", position=1),
            ]
        )
        session.flush()
        for region in ("eu-west", "us-east"):
            session.add(ProbeResultRow(service_id="dalle3", region=region, kind="canary", outcome="ok",
                                       started_at=now - timedelta(minutes=3), total_ms=14_000, http_status=200))
            session.add(ProbeResultRow(service_id="flux", region=region, kind="canary", outcome="timeout",
                                       started_at=now - timedelta(minutes=2), total_ms=180_000,
                                       error_detail="no terminal job state after 180s"))
        thumb_colours = {"eu-west": (200, 40, 40), "us-east": (40, 40, 200)}
        for row in session.query(ProbeResultRow).filter_by(service_id="dalle3").all():
            session.add(ResultImageRow(result_id=row.id, service_id="dalle3", created_at=row.started_at,
                                       thumbnail=thumbnail(Image.new("RGB", (640, 480), thumb_colours[row.region]))))
        session.add(Incident(service_id="flux", kind="outage", audience="public", impact="major", status="investigating",
                             title="FLUX.1 <pro>: major outage", regions=["eu-west", "us-east"],
                             started_at=now - timedelta(minutes=3), detected_at=now - timedelta(minutes=2)))
        for days_ago in range(40):
            down = 30 if days_ago == 0 else (2 if days_ago == 12 else 0)
            for service_id in ("dalle3", "flux"):
                session.execute(insert(rollup_daily).values(
                    service_id=service_id, region="eu-west", bucket_start=today - timedelta(days=days_ago),
                    n_total=144, n_ok=144 - down - (3 if days_ago == 7 else 0),
                    n_slow=3 if days_ago == 7 else 0, n_timeout=down if service_id == "flux" else 0,
                ))
        session.commit()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('browser') / 'web.db'}")
    Base.metadata.create_all(engine)
    _seed(engine)
    server = start_server(create_app(engine=engine))
    yield server.url
    server.shutdown()
    engine.dispose()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_status_page_without_javascript(site, browser, tmp_path):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(site + "/")

    banner = page.locator("#overall-status")
    assert banner.get_attribute("data-status") == "major_outage"
    assert banner.inner_text().strip() == "Major outage"
    services = page.locator("li.service")
    assert services.count() == 2
    flux = page.locator('[data-service="flux"]')
    assert flux.get_attribute("data-status") == "major_outage"
    assert flux.locator(".badge").is_visible() and flux.locator(".badge").inner_text().strip() == "Major outage"
    assert page.locator('[data-service="dalle3"] .badge').inner_text().strip() == "Operational"
    assert flux.locator(".bar").count() == 90
    assert "FLUX.1 <pro>" in flux.locator(".service-name").inner_text()

    screenshot = tmp_path / "status.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 1000

    flux.locator("a.service-name").click()
    page.wait_for_url(site + "/services/flux")
    assert page.locator("h1.service-name").inner_text() == "FLUX.1 <pro>"
    assert page.locator("article[data-status]").get_attribute("data-status") == "major_outage"
    assert page.locator("table.results tbody tr").count() == 2
    assert page.get_by_text("no image within the deadline").first.is_visible()
    assert page.get_by_text("no terminal job state after 180s").count() == 0  # raw details stay off the public page
    page.screenshot(path=str(tmp_path / "service.png"), full_page=True)
    context.close()


def test_stylesheet_loads_under_the_csp(site, browser):
    """With JavaScript on (for the check itself): the CSS applies and nothing is blocked."""
    context = browser.new_context()
    page = context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.goto(site + "/")
    background = page.locator("#overall-status").evaluate("element => getComputedStyle(element).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")
    assert console_errors == []
    context.close()


def test_thumbnails_load_under_the_csp(site, browser):
    page = browser.new_page()
    blocked = []
    page.on("console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None)
    page.goto(f"{site}/services/dalle3")
    page.wait_for_load_state("load")
    # the thumbnails are loading="lazy": they may still be on their way after the load event on a busy machine
    page.wait_for_function("() => [...document.querySelectorAll('.thumbs img')].every(i => i.complete)", timeout=15_000)
    widths = page.eval_on_selector_all(".thumbs img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : -1)")
    page.close()
    assert widths == [160, 160] and not blocked
