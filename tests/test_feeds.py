"""Atom and RSS feeds of public incidents: structure per the specs, overrides, order, escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser

from monitor.config import Config, ServiceConfig, SiteConfig
from monitor.store.models import Incident, IncidentUpdate
from tests.webdb import add_service, client, engine, session  # noqa: F401 - fixtures
from web import create_app
from web.feeds import FEED_LIMIT

ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
XSS = "<script>alert('x')</script> & <img src=x onerror=alert(1)>"


def add_incident(session, service_id="svc", title="Outage", *, audience="public", started=T0, updates=(), **fields):
    incident = Incident(service_id=service_id, kind=fields.pop("kind", "outage"), audience=audience, title=title,
                        started_at=started, detected_at=started, **fields)
    session.add(incident)
    session.flush()
    for minutes, status, body in updates:
        at = started + timedelta(minutes=minutes)
        session.add(IncidentUpdate(incident_id=incident.id, status=status, body=body, created_at=at, display_at=at))
    session.commit()
    return incident


class TagCollector(HTMLParser):
    """The elements and attributes of an HTML fragment, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes.extend(name for name, _ in attrs)


def html_tags(fragment: str) -> TagCollector:
    parser = TagCollector()
    parser.feed(fragment)
    return parser


def atom(client) -> ET.Element:
    response = client.get("/feed.atom")
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    return ET.fromstring(response.data)


def rss(client) -> ET.Element:
    response = client.get("/feed.rss")
    assert response.status_code == 200
    assert response.mimetype == "application/rss+xml"
    return ET.fromstring(response.data)


def test_atom_feed_structure_order_and_content(session, client):
    add_service(session, "svc", "Image API")
    old = add_incident(session, title="Old outage", started=T0 - timedelta(days=2), resolved_at=T0 - timedelta(days=1),
                       status="resolved", updates=[(0, "investigating", "Looking"), (60, "resolved", "Fixed")])
    new = add_incident(session, title="Detector title", public_title="Slow images", public_body="We are on it.",
                       kind="latency", updates=[(0, "investigating", "First"), (30, "identified", "Second")])
    add_incident(session, title="Operator-only problem", audience="operator", kind="operator", started=T0 + timedelta(hours=1))

    feed = atom(client)
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}id") == "http://localhost/feed.atom"
    assert feed.find(f"{ATOM}author/{ATOM}name").text  # required by RFC 4287 when entries have no author
    links = {link.get("rel"): link.get("href") for link in feed.findall(f"{ATOM}link")}
    assert links == {"self": "http://localhost/feed.atom", "alternate": "http://localhost/"}
    entries = feed.findall(f"{ATOM}entry")
    # newest first; the operator incident is not there at all
    assert [e.findtext(f"{ATOM}id") for e in entries] == [f"http://localhost/incidents/{i.id}" for i in (new, old)]
    assert b"Operator-only" not in ET.tostring(feed)
    first = entries[0]
    assert first.findtext(f"{ATOM}title") == "Slow images"  # the public override, not the detector's title
    assert first.find(f"{ATOM}link").get("href") == f"http://localhost/incidents/{new.id}"
    assert datetime.fromisoformat(first.findtext(f"{ATOM}published")) == T0
    # updated: the newest update; the feed's updated: its newest entry
    assert datetime.fromisoformat(first.findtext(f"{ATOM}updated")) >= T0 + timedelta(minutes=30)
    assert feed.findtext(f"{ATOM}updated") == max(e.findtext(f"{ATOM}updated") for e in entries)
    assert first.findtext(f"{ATOM}summary") == "We are on it."
    content = first.find(f"{ATOM}content")
    assert content.get("type") == "html"
    html = content.text
    assert html.index("We are on it.") < html.index("Second") < html.index("First")  # body, then updates newest first
    assert "Identified" in html and "Image API" in html
    assert set(html_tags(html).tags) <= {"p", "strong", "br"}


def test_rss_feed_structure(session, client):
    add_service(session, "svc", "Image API")
    incident = add_incident(session, updates=[(5, "investigating", "Errors from the API")])

    channel = rss(client).find("channel")
    assert channel.findtext("title") and channel.findtext("description")
    assert channel.findtext("link") == "http://localhost/"
    self_link = channel.find(f"{ATOM}link")
    assert (self_link.get("rel"), self_link.get("href")) == ("self", "http://localhost/feed.rss")
    (item,) = channel.findall("item")
    url = f"http://localhost/incidents/{incident.id}"
    assert item.findtext("link") == url
    guid = item.find("guid")
    assert (guid.text, guid.get("isPermaLink")) == (url, "true")
    assert parsedate_to_datetime(item.findtext("pubDate")) == T0
    assert item.findtext("description") == "Errors from the API"
    assert "Errors from the API" in item.findtext(f"{CONTENT}encoded")


def test_every_text_is_escaped_and_round_trips_as_text(session, client):
    add_service(session, "svc", XSS)
    add_incident(session, title=XSS, public_body=XSS, updates=[(1, "investigating", XSS)])

    feed = atom(client)
    entry = feed.find(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}title") == XSS  # text in, the same text out: never markup
    assert entry.findtext(f"{ATOM}summary") == XSS
    html = entry.findtext(f"{ATOM}content")
    parsed = html_tags(html)
    assert "script" not in parsed.tags and "img" not in parsed.tags and "onerror" not in parsed.attributes
    assert html.count("&lt;script&gt;") == 3  # service name, public body, update: each escaped once

    item = rss(client).find("channel/item")
    assert item.findtext("title") == XSS
    encoded = html_tags(item.findtext(f"{CONTENT}encoded"))
    assert "script" not in encoded.tags and "img" not in encoded.tags


def test_characters_xml_cannot_hold_are_dropped_not_fatal(session, client):
    add_service(session, "svc")
    add_incident(session, title="Bad\x0bbyte\x00", updates=[(1, "investigating", "nul \x01 here")])
    entry = atom(client).find(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}title") == "Badbyte"
    assert rss(client).find("channel/item/title").text == "Badbyte"


def test_feed_holds_the_newest_incidents_only(session, client):
    add_service(session, "svc")
    for n in range(FEED_LIMIT + 3):
        add_incident(session, title=f"Incident {n}", started=T0 + timedelta(hours=n),
                     resolved_at=T0 + timedelta(hours=n, minutes=30))
    titles = [e.findtext(f"{ATOM}title") for e in atom(client).findall(f"{ATOM}entry")]
    assert len(titles) == FEED_LIMIT
    assert titles[0] == f"Incident {FEED_LIMIT + 2}" and "Incident 2" not in titles


def test_site_url_and_timezone_from_the_config(engine, session):
    add_service(session, "svc")
    add_incident(session, updates=[(0, "investigating", "Hello")])
    config = Config(site=SiteConfig(url="https://status.example.com/", timezone="Europe/Berlin"),
                    services=[ServiceConfig(id="svc", name="Svc", provider="openai", canaries=["c"])])
    app_client = create_app(config, engine=engine, testing=True).test_client()
    feed = atom(app_client)
    assert feed.findtext(f"{ATOM}id") == "https://status.example.com/feed.atom"
    entry = feed.find(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}id").startswith("https://status.example.com/incidents/")
    assert "2026-11-02 11:00 CET" in entry.findtext(f"{ATOM}content")  # 10:00 UTC shown in the site's zone


def test_conditional_get_with_last_modified_and_etag(session, client):
    add_service(session, "svc")
    add_incident(session, updates=[(20, "investigating", "Hello")])
    first = client.get("/feed.atom")
    assert parsedate_to_datetime(first.headers["Last-Modified"]) >= T0 + timedelta(minutes=20)
    again = client.get("/feed.atom", headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert again.status_code == 304 and again.data == b""
    by_etag = client.get("/feed.atom", headers={"If-None-Match": first.headers["ETag"]})
    assert by_etag.status_code == 304


def test_a_new_update_shows_at_once_despite_the_render_cache(session, client):
    add_service(session, "svc")
    incident = add_incident(session, updates=[(0, "investigating", "First words")])
    assert "First words" in client.get("/feed.atom").get_data(as_text=True)
    session.add(IncidentUpdate(incident_id=incident.id, status="monitoring", body="A fix is out",
                               created_at=T0 + timedelta(hours=1), display_at=T0 + timedelta(hours=1)))
    session.commit()
    assert "A fix is out" in client.get("/feed.atom").get_data(as_text=True)
