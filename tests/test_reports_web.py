"""``/reports`` and ``/reports/<week>``: the archived reports on the status site, public or admin-only,
and the archived page in headless Chromium under its own Content-Security-Policy."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.reports import archive
from monitor.reports.schema import to_json
from monitor.store.models import User, WeeklyReport
from tests.reports_data import END, sample
from tests.webdb import engine, session  # noqa: F401
from web import create_app
from web.admin import auth
from web.admin.passwords import hash_password
from web.reports import REPORT_CSP

PASSWORD = "correct horse battery"
CHEAP = {"n": 2**4, "r": 1, "p": 1}
CHROMIUM = shutil.which("chromium")


def config(public: bool | None) -> Config:
    reports = {} if public is None else {"weekly": {"public": public}}
    return Config.model_validate({"site": {"title": "Image Generation Status", "url": "https://status.example.com"},
                                  "reports": reports})


def archive_weeks(engine, *weeks: str, **fields: Any) -> None:  # noqa: F811
    with Session(engine) as db, db.begin():
        for week in weeks:
            data = sample(week=week)
            html, markdown = archive.render_for_archive(data)
            db.add(WeeklyReport(week=week, generated_at=END + timedelta(hours=9), data=to_json(data), html=html,
                                markdown=markdown, **fields))


@pytest.fixture
def public_client(engine):  # noqa: F811
    archive_weeks(engine, "2026-W46", "2026-W47")
    return create_app(config(None), engine=engine, testing=True).test_client()


def test_the_list_shows_every_archived_week_newest_first(public_client) -> None:
    answer = public_client.get("/reports")
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert re.findall(r'href="/reports/(\d{4}-W\d\d)"', page) == ["2026-W47", "2026-W46"]
    assert "16 Nov – 22 Nov 2026" in page
    assert "not sent" not in page  # whether a week went out is for the admin view only
    assert answer.headers["Cache-Control"].startswith("public")


def test_a_week_is_its_archived_document(public_client, engine) -> None:  # noqa: F811
    answer = public_client.get("/reports/2026-W47")
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    with Session(engine) as db:
        stored = db.get(WeeklyReport, "2026-W47")
        assert stored is not None
        assert answer.get_data(as_text=True) == stored.html
    assert answer.headers["Content-Security-Policy"] == REPORT_CSP  # not the site's: inline styles and data: images
    body = answer.get_data(as_text=True)
    sources = re.findall(r'<img src="([^"]+)"', body)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "our API key was rejected" not in body  # operator incidents never reach the site
    assert 'href="../reports"' in body


@pytest.mark.parametrize("path", ["/reports/2026-W45", "/reports/2026-W99", "/reports/latest", "/reports/2026-W47x"])
def test_unknown_weeks_are_404(public_client, path) -> None:
    assert public_client.get(path).status_code == 404


def test_no_reports_yet(engine) -> None:  # noqa: F811
    page = create_app(config(True), engine=engine, testing=True).test_client().get("/reports").get_data(as_text=True)
    assert "No reports yet" in page


def test_admin_only_reports_need_the_admin_sign_in(engine, session, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setattr(auth, "DUMMY_HASH", hash_password("x" * 12, **CHEAP))
    archive_weeks(engine, "2026-W47", sent_at=END + timedelta(hours=9, minutes=1))
    client = create_app(config(False), engine=engine, testing=True).test_client()
    for path in ("/reports", "/reports/2026-W47"):
        answer = client.get(path)
        assert answer.status_code == 302
        assert answer.headers["Location"] == f"/admin/login?next={path}"

    session.add(User(name="ada", password_hash=hash_password(PASSWORD, **CHEAP)))
    session.commit()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/login").get_data(as_text=True)).group(1)
    assert client.post("/admin/login", data={"name": "ada", "password": PASSWORD, "csrf_token": token}).status_code == 302
    listed = client.get("/reports")
    assert listed.status_code == 200 and "sent" in listed.get_data(as_text=True)
    assert listed.headers["Cache-Control"] == "no-store"
    week = client.get("/reports/2026-W47")
    assert week.status_code == 200 and week.headers["Cache-Control"] == "no-store"


@pytest.mark.browser
def test_the_archived_page_renders_in_chromium_under_its_csp(engine, tmp_path) -> None:  # noqa: F811
    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from web.server import start_server

    archive_weeks(engine, "2026-W47")
    server = start_server(create_app(config(True), engine=engine))
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox",
                                                                                  "--disable-gpu", "--no-first-run"])
            try:
                page = browser.new_page(viewport={"width": 900, "height": 900})
                blocked: list[str] = []
                page.on("console", lambda m: blocked.append(m.text) if m.type == "error" else None)
                page.goto(f"{server.url}/reports/2026-W47", wait_until="load")
                widths = page.evaluate("Array.from(document.images, img => img.complete ? img.naturalWidth : 0)")
                padding = page.evaluate("getComputedStyle(document.querySelector('td td')).paddingTop")
                page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
                page.click("text=← All reports")
                assert page.url == f"{server.url}/reports"
            finally:
                browser.close()
    finally:
        server.shutdown()
    assert widths == [720, 720, 720]
    assert padding != "0px"  # the inline styles apply: the page's CSP allows them
    assert blocked == []
