"""Atom and RSS feeds of public incidents (``/feed.atom``, ``/feed.rss``), built with ``feedgen``.

One entry per incident, the way Statuspage's history feeds do it: the entry's id and link are the
incident page (``/incidents/<id>``), its ``updated`` moves with every new update, and its content
lists the updates newest first.  Readers then show one item per incident that refreshes as the
incident goes on, rather than a dozen items for one outage; subscribers who want every update as
its own message have email and webhooks.

Only public incidents appear, with the admin's ``public_title``/``public_body`` where set.  Every
text is escaped: titles are plain text (lxml escapes them), the HTML content is built from escaped
parts only, and characters XML cannot carry are dropped rather than failing the feed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from feedgen.feed import FeedGenerator
from flask import Blueprint, Response, request
from markupsafe import Markup, escape
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from monitor.enums import Audience
from monitor.store.models import Incident
from web import timefmt
from web.caching import cached_view
from web.context import db_session, state

bp = Blueprint("feeds", __name__)

#: incidents in a feed, the most recently started first
FEED_LIMIT = 50
ATOM_TYPE = "application/atom+xml"
RSS_TYPE = "application/rss+xml"

#: characters XML 1.0 cannot hold (lxml refuses them): control characters, lone surrogates, U+FFFE/F
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

STATUS_WORDS = {
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolved": "Resolved",
    "postmortem": "Postmortem",
}


def xml_text(value: str | None) -> str:
    """``value`` without the characters an XML document cannot contain."""
    return _NOT_XML.sub("", value or "")


def _paragraph(text: str) -> Markup:
    """Escaped text as HTML, line breaks kept."""
    return Markup("<br>").join(escape(line) for line in xml_text(text).splitlines())


@dataclass(frozen=True)
class FeedEntry:
    id: int
    title: str
    service: str  # the display name, or "All services"
    published: datetime
    updated: datetime
    summary: str  # plain text
    content: Markup  # escaped HTML


def public_incidents(session: Session, service_ids: Sequence[str], limit: int = FEED_LIMIT) -> list[Incident]:
    """The newest public incidents of these services (and site-wide ones, without a service), updates loaded."""
    return list(session.scalars(
        select(Incident).options(selectinload(Incident.updates))
        .where(Incident.audience == Audience.PUBLIC.value,
               or_(Incident.service_id.in_(list(service_ids)), Incident.service_id.is_(None)))
        .order_by(Incident.started_at.desc(), Incident.id.desc()).limit(limit)))


def entry_for(incident: Incident, service_names: dict[str, str], tz: tzinfo) -> FeedEntry:
    updates = sorted(incident.updates, key=lambda u: (u.display_at, u.id), reverse=True)
    service = service_names.get(incident.service_id, incident.service_id) if incident.service_id else "All services"
    parts: list[Markup] = [Markup("<p><strong>Affected:</strong> {}</p>").format(xml_text(service))]
    if incident.public_body:
        parts.append(Markup("<p>{}</p>").format(_paragraph(incident.public_body)))
    if incident.postmortem and incident.postmortem_at:
        parts.append(Markup("<p><strong>Postmortem</strong> ({})<br>{}</p>").format(
            timefmt.local_text(incident.postmortem_at, tz), _paragraph(incident.postmortem)))
    for update in updates:
        parts.append(Markup("<p><strong>{}</strong> ({})<br>{}</p>").format(
            STATUS_WORDS.get(update.status, xml_text(update.status)), timefmt.local_text(update.display_at, tz),
            _paragraph(update.body)))
    moments = [incident.started_at, incident.updated_at, incident.resolved_at, incident.postmortem_at,
               *(u.display_at for u in updates)]
    summary = incident.public_body or (updates[0].body if updates else "")
    return FeedEntry(
        id=incident.id,
        title=xml_text(incident.public_title or incident.title),
        service=service,
        published=incident.started_at.replace(microsecond=0),
        updated=max(m for m in moments if m is not None).replace(microsecond=0),
        summary=xml_text(summary),
        content=Markup("\n").join(parts),
    )


def base_url() -> str:
    """The site's public address (``site.url``), else the one this request came in on; no trailing slash."""
    return (state().site.url or request.url_root).rstrip("/")


def build_feed(entries: Sequence[FeedEntry], kind: str, base: str, title: str, now: datetime) -> bytes:
    """The feed document: ``kind`` is ``atom`` or ``rss``."""
    own = f"{base}/feed.{kind}"
    feed = FeedGenerator()
    feed.id(own)
    feed.title(xml_text(f"{title} – incident history"))
    feed.author(name=xml_text(title))
    feed.link(href=own, rel="self", type=ATOM_TYPE if kind == "atom" else RSS_TYPE)
    feed.link(href=f"{base}/", rel="alternate", type="text/html")
    feed.description(xml_text(f"Incidents and their updates from {title}"))
    feed.language("en")
    feed.generator("genstatus")
    feed.updated(max((e.updated for e in entries), default=now.replace(microsecond=0)))
    for item in entries:
        url = f"{base}/incidents/{item.id}"
        entry = feed.add_entry(order="append")
        entry.id(url)
        entry.guid(url, permalink=True)
        entry.title(item.title)
        entry.link(href=url, rel="alternate", type="text/html")
        entry.published(item.published)
        entry.updated(item.updated)
        entry.summary(item.summary or item.title)
        entry.content(str(item.content), type="html")
    return feed.atom_str(pretty=True) if kind == "atom" else feed.rss_str(pretty=True)


def _feed(kind: str) -> Response:
    session = db_session()
    web = state()
    services = web.services(session)
    names = {s.id: s.name for s in services}
    tz = timefmt.zone(web.site.timezone)
    entries = [entry_for(i, names, tz) for i in public_incidents(session, [s.id for s in services])]
    now = datetime.now(UTC)
    body = build_feed(entries, kind, base_url(), web.site.title, now)
    response = Response(body, mimetype=ATOM_TYPE if kind == "atom" else RSS_TYPE)
    response.last_modified = max((e.updated for e in entries), default=None)
    return response


@bp.get("/feed.atom")
@cached_view(seconds=5, on_results=False)
def atom() -> Response:
    return _feed("atom")


@bp.get("/feed.rss")
@cached_view(seconds=5, on_results=False)
def rss() -> Response:
    return _feed("rss")
