"""Status badges: status and 30-day uptime as on the page, colours, headers for embedding, escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, time, timedelta

import pytest

from monitor.store.models import Incident, Maintenance, rollup_daily
from tests.webdb import add_result, add_rollup, add_service, client, engine, session  # noqa: F401 - fixtures
from web.badges import LABEL_MAX_CHARS, STATUS_STYLE, Badge, text_width

SVG = "{http://www.w3.org/2000/svg}"
NOW = datetime.now(UTC).replace(microsecond=0)


def badge_of(client, service_id: str) -> tuple[ET.Element, object]:
    response = client.get(f"/badge/{service_id}.svg")
    return ET.fromstring(response.data), response


def texts(svg: ET.Element) -> list[str]:
    return [t.text for t in svg.iter(f"{SVG}text")]


def fills(svg: ET.Element) -> list[str]:
    return [r.get("fill") for r in svg.iter(f"{SVG}rect")]


def open_incident(session, kind: str, impact: str, **fields) -> None:
    session.add(Incident(service_id="svc", kind=kind, impact=impact, title="t", started_at=NOW - timedelta(minutes=10),
                         detected_at=NOW - timedelta(minutes=10), **fields))
    session.commit()


def test_operational_badge_headers_and_uptime_from_incident_intervals(session, client):
    add_service(session, "svc", "Image API")
    add_result(session, "svc", "eu", "ok", NOW - timedelta(hours=1))
    yesterday = datetime.combine(NOW.date() - timedelta(days=1), time(), tzinfo=UTC)
    add_rollup(session, rollup_daily, "svc", "eu", yesterday, ok=10)  # yesterday is the one day with rollups
    # 2.4 hours of major outage yesterday, resolved: 90 % of that day
    session.add(Incident(service_id="svc", kind="outage", impact="major", title="t", started_at=yesterday,
                         detected_at=yesterday, resolved_at=yesterday + timedelta(hours=2.4)))
    session.commit()

    svg, response = badge_of(client, "svc")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert response.headers["Cache-Control"] == "public, max-age=60"
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert svg.tag == f"{SVG}svg" and svg.get("role") == "img"
    assert svg.findtext(f"{SVG}title") == "Image API: operational · 90.00%"
    assert texts(svg) == ["Image API", "Image API", "operational · 90.00%", "operational · 90.00%"]
    assert STATUS_STYLE["operational"][1] in fills(svg)


@pytest.mark.parametrize("kind, impact, words", [
    ("outage", "major", "major outage"),
    ("outage", "minor", "partial outage"),
    ("latency", "minor", "degraded"),
])
def test_colour_and_words_follow_the_open_public_incident(session, client, kind, impact, words):
    add_service(session, "svc")
    add_result(session, "svc", "eu", "ok", NOW - timedelta(hours=1))
    open_incident(session, kind, impact)
    svg, _ = badge_of(client, "svc")
    assert svg.findtext(f"{SVG}title").startswith(f"svc: {words}")
    status = {"major outage": "major_outage", "partial outage": "partial_outage", "degraded": "degraded_performance"}[words]
    assert STATUS_STYLE[status][1] in fills(svg)


def test_operator_incidents_and_maintenance(session, client):
    add_service(session, "svc")
    add_result(session, "svc", "eu", "ok", NOW - timedelta(hours=1))
    open_incident(session, "operator", "major", audience="operator")
    svg, _ = badge_of(client, "svc")
    assert "operational" in svg.findtext(f"{SVG}title")  # the operator's incident is not the public's
    session.add(Maintenance(title="Upgrade", starts_at=NOW - timedelta(hours=1), ends_at=NOW + timedelta(hours=1)))
    session.commit()
    svg, _ = badge_of(client, "svc")
    assert "maintenance" in svg.findtext(f"{SVG}title")
    assert STATUS_STYLE["under_maintenance"][1] in fills(svg)


def test_a_service_without_data_says_so(session, client):
    add_service(session, "svc")
    svg, response = badge_of(client, "svc")
    assert response.status_code == 200
    assert svg.findtext(f"{SVG}title") == "svc: no data"
    assert STATUS_STYLE["unknown"][1] in fills(svg)


def test_unknown_service_is_a_404_badge_that_echoes_nothing(session, client):
    response = client.get("/badge/%3Cscript%3Ealert(1)%3Cb%3E.svg")
    assert response.status_code == 404
    assert response.mimetype == "image/svg+xml"
    assert b"script" not in response.data and b"alert" not in response.data
    assert ET.fromstring(response.data).findtext(f"{SVG}title") == "status: unknown service"


def test_names_are_escaped_and_round_trip_as_text(session, client):
    name = "<script>alert('x')</script> & \"Co\""
    add_service(session, "svc", name)
    svg, response = badge_of(client, "svc")
    assert b"<script" not in response.data
    assert texts(svg)[0] == name  # the parser gives back the very text: it was escaped, never markup
    assert svg.get("aria-label").startswith(name)
    assert [el.tag for el in svg.iter()].count(f"{SVG}script") == 0


def test_long_names_are_shortened_and_widths_follow_the_text():
    long = Badge("x" * 100, "operational", "#000")
    svg = ET.fromstring(long.svg())
    assert len(texts(svg)[0]) == LABEL_MAX_CHARS and texts(svg)[0].endswith("…")
    assert text_width("Major outage") > text_width("ok") > 0
    short = ET.fromstring(Badge("a", "ok", "#000").svg())
    assert int(svg.get("width")) > int(short.get("width"))
