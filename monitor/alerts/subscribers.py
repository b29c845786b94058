"""Subscriber deliveries: who hears of an outbox event, what they read, and how it reaches them.

Subscribers are visitors of the public site (``web.subscribe``).  They go through the dispatcher's
machinery like alert channels -- one ``alert_deliveries`` row each (channel ``subscriber:<id>``),
claimed, retried with backoff, sent once with its idempotency key -- with these differences:

* **Who**: a subscriber's confirmation goes to that one (unconfirmed) subscriber; events of a
  *public* incident and maintenance notices go to every *confirmed* subscriber whose services they
  concern (a subscriber without services hears of all).  Operator incidents, reminders and SLO
  alerts never do.
* **Fan-out**: the event first gets one ``subscriber:*`` delivery; sending it writes the
  subscribers' deliveries ``FAN_OUT_BATCH`` at a time, each batch its own transaction, so a
  thousand subscribers are no single long transaction.  A fan-out cut short is claimed again and
  writes only what is missing.
* **What**: public wording only -- the public title and text where an admin wrote them, else a
  plain sentence per event; never the detector's account, outcomes or error details.  Every
  message carries the subscriber's unsubscribe link (and, by email, RFC 8058 ``List-Unsubscribe``
  headers for one-click unsubscribing).
* **Failures** never page the operator: they are logged; a webhook that answers 404 or 410
  ``drop_webhook_after`` times is unsubscribed.

Mail goes through the SMTP server of the alert channel ``subscriptions.email_channel`` and
webhooks through the alert webhooks' sender (``channels.http``): no second sender.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from html import escape
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.alerts.channels.base import Receipt, Sender
from monitor.alerts.channels.email import COLOURS, EmailSender
from monitor.alerts.channels.http import encode_json, iso_utc, post_json
from monitor.alerts.message import Message
from monitor.alerts.render import incident_link, since_text
from monitor.config import Config, EmailChannel
from monitor.config.durations import format_duration
from monitor.config.subscriptions import (
    CONFIRM_EVENT,
    INCIDENT_EVENTS,
    MAINTENANCE_COMPLETED,
    MAINTENANCE_EVENTS,
    MAINTENANCE_SCHEDULED,
    MAINTENANCE_STARTED,
    MAINTENANCE_UPDATE,
    SUBSCRIBER_AUDIENCE,
    confirm_subject,
    is_admin_key,
    maintenance_key,
    maintenance_subject,
    unavailable_reason,
)
from monitor.enums import Audience, Impact, IncidentKind
from monitor.store.models import AlertDelivery, AlertOutbox, Incident, Maintenance, Subscriber

log = logging.getLogger("genstatus.alerts")

#: deliveries to subscriber ``n`` have channel ``subscriber:<n>`` (alert channel ids cannot hold a colon)
CHANNEL_PREFIX = "subscriber:"
#: the delivery that writes an event's subscriber deliveries
FAN_OUT = "subscriber:*"
FAN_OUT_BATCH = 500
#: maintenance started/completed notices are written when the time passes, never for windows longer gone
MAINTENANCE_NOTICE_WITHIN = timedelta(hours=1)
#: webhook answers that say the receiver is gone
GONE = frozenset({"HTTP 404", "HTTP 410"})
SCHEMA = "genstatus.subscription/v1"
#: headers unfolded up to SMTP's line limit: a List-Unsubscribe URL stays on one line for simple parsers
MAIL_POLICY = policy.default.clone(max_line_length=998)

WORDS = {
    CONFIRM_EVENT: "Confirm your subscription",
    "open": "Investigating",
    "reopen": "Investigating",
    "escalate": "Impact increased",
    "deescalate": "Impact reduced",
    "update": "Update",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolve": "Resolved",
    "postmortem": "Postmortem",
    MAINTENANCE_SCHEDULED: "Scheduled maintenance",
    MAINTENANCE_STARTED: "Maintenance in progress",
    MAINTENANCE_UPDATE: "Maintenance update",
    MAINTENANCE_COMPLETED: "Maintenance completed",
}
_MAINTENANCE_SENTENCES = {
    MAINTENANCE_SCHEDULED: "Maintenance is scheduled.",
    MAINTENANCE_STARTED: "The maintenance has begun.",
    MAINTENANCE_UPDATE: "The maintenance continues.",
    MAINTENANCE_COMPLETED: "The maintenance is complete.",
}
_WHAT = {
    IncidentKind.LATENCY.value: "slow image generation",
    IncidentKind.QUALITY.value: "degraded image quality",
    IncidentKind.SAFETY.value: "benign prompts blocked by the safety system",
}


def channel_of(subscriber_id: int) -> str:
    return f"{CHANNEL_PREFIX}{subscriber_id}"


def subscriber_of(channel_id: str) -> int | None:
    rest = channel_id.removeprefix(CHANNEL_PREFIX)
    return int(rest) if channel_id.startswith(CHANNEL_PREFIX) and rest.isdigit() else None


def is_subscriber_channel(channel_id: str) -> bool:
    return channel_id.startswith(CHANNEL_PREFIX)


# -- who -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipients:
    """One subscriber (a confirmation), or the confirmed ones interested in ``services`` (None: every service)."""

    subscriber_id: int | None = None
    services: frozenset[str] | None = None

    def includes(self, services: Iterable[str] | None) -> bool:
        """Does a subscriber to ``services`` (None: all) hear of this event?"""
        return services is None or self.services is None or bool(self.services & set(services))


def recipients(session: Session, row: AlertOutbox, config: Config) -> Recipients | None:
    """Who among the subscribers hears of this outbox row; None: no one."""
    if not config.subscriptions.enabled:
        return None
    if row.event == CONFIRM_EVENT and row.audience == SUBSCRIBER_AUDIENCE:
        subscriber_id = confirm_subject(row.dedupe_key)
        return Recipients(subscriber_id=subscriber_id) if subscriber_id is not None else None
    if row.event in MAINTENANCE_EVENTS and row.audience == SUBSCRIBER_AUDIENCE:
        window = _maintenance(session, row)
        if window is None:
            return None
        return Recipients(services=frozenset(window.services) if window.services else None)
    if row.event in INCIDENT_EVENTS and row.audience == Audience.PUBLIC.value and row.incident_id is not None:
        incident = session.get(Incident, row.incident_id)
        if incident is None or incident.audience != Audience.PUBLIC.value:
            return None
        return Recipients(services=frozenset({incident.service_id}) if incident.service_id else None)
    return None


def needs_fan_out(session: Session, row: AlertOutbox, config: Config) -> bool:
    """Does this outbox row go to any subscriber?  (No fan-out delivery while no one has subscribed.)"""
    who = recipients(session, row, config)
    if who is None:
        return False
    if who.subscriber_id is not None:
        return True
    return session.scalar(select(Subscriber.id).where(Subscriber.confirmed_at.is_not(None)).limit(1)) is not None


def fan_out(engine: Engine, outbox_id: int, config: Config, now: datetime) -> int:
    """Write the deliveries of an outbox row to its subscribers, ``FAN_OUT_BATCH`` per transaction.

    Subscribers are walked in id order; one that already has its delivery (a fan-out cut short
    and run again) is left as it is.  Returns how many deliveries were written.
    """
    with Session(engine) as session:
        row = session.get(AlertOutbox, outbox_id)
        who = recipients(session, row, config) if row is not None else None
        incident_id = row.incident_id if row is not None else None
    if who is None:
        return 0
    written = 0
    after = 0
    while True:
        with Session(engine) as session, session.begin():
            query = select(Subscriber.id, Subscriber.services).where(Subscriber.id > after)
            if who.subscriber_id is not None:
                query = query.where(Subscriber.id == who.subscriber_id, Subscriber.confirmed_at.is_(None))
            else:
                query = query.where(Subscriber.confirmed_at.is_not(None))
            batch = session.execute(query.order_by(Subscriber.id).limit(FAN_OUT_BATCH)).all()
            if not batch:
                return written
            after = batch[-1][0]
            wanted = [channel_of(sid) for sid, services in batch if who.includes(services)]
            if wanted:
                done = set(session.scalars(select(AlertDelivery.channel_id).where(
                    AlertDelivery.outbox_id == outbox_id, AlertDelivery.channel_id.in_(wanted))))
                rows = [{"outbox_id": outbox_id, "incident_id": incident_id, "channel_id": channel,
                         "key": f"gs-{outbox_id}-{channel}", "state": "pending", "created_at": now, "attempts": 0,
                         "next_attempt_at": now} for channel in wanted if channel not in done]
                if rows:
                    session.execute(insert(AlertDelivery), rows)
                    written += len(rows)
        if len(batch) < FAN_OUT_BATCH:
            return written


# -- what ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriberMessage(Message):
    """A message for one subscriber: its own text, HTML and webhook body, and the subscriber's links."""

    subject: str = ""
    plain: str = ""
    html: str = ""
    unsubscribe_url: str = ""
    confirm_url: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        return self.subject

    def text(self) -> str:
        return self.plain


@dataclass
class _Content:
    word: str
    title: str
    paragraphs: list[str]
    facts: list[tuple[str, str]] = field(default_factory=list)
    link: tuple[str, str] | None = None
    colour: str = COLOURS["none"]
    incident: dict[str, Any] | None = None
    maintenance: dict[str, Any] | None = None


def compose(session: Session, outbox: AlertOutbox, subscriber: Subscriber, config: Config, *, key: str,
            thread: dict[str, str] | None = None) -> SubscriberMessage | str:
    """The subscriber's message for an outbox row, or why there is none."""
    if not config.site.url:
        return "site.url is not set: subscriber messages need absolute links"
    base = config.site.url.rstrip("/")
    unsubscribe = f"{base}/unsubscribe/{subscriber.token}"
    confirm = f"{base}/subscribe/confirm/{subscriber.token}" if outbox.event == CONFIRM_EVENT else None
    if confirm is not None:
        content: _Content | str = _confirmation(subscriber, config, confirm)
    elif outbox.event in MAINTENANCE_EVENTS:
        content = _maintenance_content(session, outbox, config, base)
    else:
        content = _incident_content(session, outbox, config)
    if isinstance(content, str):
        return content
    scope = _scope(subscriber.services, config)
    if confirm is not None:
        footer = f"You receive this because this {_noun(subscriber)} was entered at {base}/subscribe."
    else:
        footer = f"You receive this because you subscribed to {config.site.title} ({scope})."
    headline = _one_line(f"{content.word}: {content.title}")
    plain = _plain(content, headline, footer, unsubscribe)
    payload = {
        "schema": SCHEMA, "delivery": key, "event": outbox.event,
        "site": {"title": config.site.title, "url": config.site.url},
        "headline": headline, "text": plain, "incident": content.incident, "maintenance": content.maintenance,
        "confirm_url": confirm, "unsubscribe_url": unsubscribe,
    }
    return SubscriberMessage(
        delivery_key=key, event=outbox.event, title=content.title, body="\n\n".join(content.paragraphs),
        impact=outbox.impact, audience=Audience.PUBLIC.value, incident_id=outbox.incident_id, thread=dict(thread or {}),
        subject=_one_line(f"[{config.site.title}] {headline}")[:250], plain=plain,
        html=_html(content, headline, footer, unsubscribe), unsubscribe_url=unsubscribe, confirm_url=confirm,
        payload=payload)


def _confirmation(subscriber: Subscriber, config: Config, confirm_url: str) -> _Content:
    within = format_duration(config.subscriptions.confirm_within)
    return _Content(
        word=WORDS[CONFIRM_EVENT], title=config.site.title,
        paragraphs=[
            f"Someone, hopefully you, asked to receive notices of incidents and maintenance of {config.site.title} "
            f"({_scope(subscriber.services, config)}) at this {_noun(subscriber)}.",
            "To confirm, open the link below and press the button. If you did not ask for this, ignore this "
            f"message: nothing else will be sent, and the {_noun(subscriber)} is forgotten within {within}.",
        ],
        link=("Confirm your subscription", confirm_url))


def _incident_content(session: Session, outbox: AlertOutbox, config: Config) -> _Content | str:
    incident = session.get(Incident, outbox.incident_id) if outbox.incident_id is not None else None
    if incident is None or incident.audience != Audience.PUBLIC.value or outbox.audience != Audience.PUBLIC.value:
        return "not a public incident"
    service = next((s for s in config.services if s.id == incident.service_id), None)
    name = service.display_name if service else (incident.service_id or "the service")
    resolved = outbox.event == "resolve"
    if is_admin_key(outbox.dedupe_key):  # written by a person for the public
        paragraphs = [outbox.body]
    else:  # the detector's account is the operator's: say what happens in plain words, and the admin's text
        paragraphs = [_sentence(outbox.event, incident.kind, outbox.impact, name)]
        if incident.public_body:
            paragraphs.append(incident.public_body)
    timezone = config.site.timezone
    facts = [("Service", name)]
    if not resolved:
        facts.append(("Impact", outbox.impact))
    facts.append(("Started", since_text(incident.started_at, timezone) or ""))
    if resolved and incident.resolved_at:
        facts.append(("Resolved", since_text(incident.resolved_at, timezone) or ""))
    url = incident_link(config, incident.id)
    title = incident.public_title or incident.title
    return _Content(
        word=WORDS.get(outbox.event, outbox.event.capitalize()), title=title, paragraphs=[p for p in paragraphs if p],
        facts=facts, link=("View the incident", url) if url else None,
        colour=COLOURS["resolved"] if resolved else COLOURS.get(outbox.impact, COLOURS["minor"]),
        incident={"id": incident.id, "title": title, "status": incident.status, "impact": outbox.impact,
                  "service": incident.service_id, "service_name": name, "started_at": iso_utc(incident.started_at),
                  "resolved_at": iso_utc(incident.resolved_at), "url": url})


def _maintenance_content(session: Session, outbox: AlertOutbox, config: Config, base: str) -> _Content | str:
    window = _maintenance(session, outbox)
    if window is None:
        return "the maintenance window no longer exists"
    timezone = config.site.timezone
    when = f"{since_text(window.starts_at, timezone)} to {since_text(window.ends_at, timezone)}"
    services = _scope(window.services, config)
    return _Content(
        word=WORDS[outbox.event], title=window.title, paragraphs=[outbox.body or _MAINTENANCE_SENTENCES[outbox.event]],
        facts=[("When", when), ("Services", services[0].upper() + services[1:])], link=("View the status page", f"{base}/"),
        colour=COLOURS["resolved"] if outbox.event == MAINTENANCE_COMPLETED else COLOURS["none"],
        maintenance={"id": window.id, "title": window.title, "status": window.status, "services": window.services,
                     "starts_at": iso_utc(window.starts_at), "ends_at": iso_utc(window.ends_at)})


def _sentence(event: str, kind: str, impact: str, name: str) -> str:
    if kind == IncidentKind.OUTAGE.value:
        what = "a major outage" if impact in (Impact.MAJOR.value, Impact.CRITICAL.value) else "a partial outage"
    else:
        what = _WHAT.get(kind, "a problem")
    return {
        "open": f"We are investigating {what} affecting {name}.",
        "reopen": f"The problem affecting {name} has returned ({what}); we are investigating.",
        "escalate": f"The impact has increased: {what} affecting {name}.",
        "deescalate": f"The impact has decreased: {what} affecting {name}.",
        "update": f"{name} is still affected; we continue to investigate.",
        "identified": "The cause has been identified and a fix is under way.",
        "monitoring": f"{name} is working again; we are watching the results before resolving.",
        "resolve": f"This incident has been resolved: {name} is working normally again.",
        "postmortem": "A postmortem of this incident has been published.",
    }.get(event, "")


def _scope(services: list | None, config: Config) -> str:
    if not services:
        return "all services"
    names = {s.id: s.display_name for s in config.services}
    return ", ".join(names.get(sid, sid) for sid in services)


def _noun(subscriber: Subscriber) -> str:
    return "address" if subscriber.kind == "email" else "webhook"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _plain(content: _Content, headline: str, footer: str, unsubscribe: str) -> str:
    lines = [headline, ""]
    for paragraph in content.paragraphs:
        lines += [paragraph, ""]
    lines += [f"{name}: {value}" for name, value in content.facts if value]
    if content.link:
        lines += ["", f"{content.link[0]}: {content.link[1]}"]
    lines += ["", "-- ", footer, f"Unsubscribe: {unsubscribe}"]
    return "\n".join(lines).rstrip() + "\n"


def _html(content: _Content, headline: str, footer: str, unsubscribe: str) -> str:
    """Inline CSS only (mail clients drop style sheets); every value escaped."""
    cell = "padding:4px 12px 4px 0;vertical-align:top;"
    rows = "".join(
        f'<tr><th style="{cell}text-align:left;color:#5f6368;font-weight:normal">{escape(name)}</th>'
        f'<td style="{cell}">{escape(value)}</td></tr>' for name, value in content.facts if value)
    parts = [f'<div style="border-left:6px solid {content.colour};padding:8px 12px;font-size:18px;font-weight:bold;'
             f'color:{content.colour}">{escape(headline)}</div>']
    parts += [f'<p style="margin:12px 0">{escape(p).replace(chr(10), "<br>")}</p>' for p in content.paragraphs]
    if rows:
        parts.append(f'<table style="border-collapse:collapse;font-size:14px">{rows}</table>')
    if content.link:
        parts.append(f'<p><a href="{escape(content.link[1])}" style="color:#1a73e8">{escape(content.link[0])}</a></p>')
    parts.append(f'<p style="margin-top:24px;font-size:12px;color:#5f6368">{escape(footer)} '
                 f'<a href="{escape(unsubscribe)}" style="color:#5f6368">Unsubscribe</a></p>')
    return ('<!DOCTYPE html><html><head><meta charset="utf-8">'
            f"<title>{escape(headline)}</title></head>"
            '<body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#202124;margin:0;padding:16px">'
            + "".join(parts) + "</body></html>\n")


def _maintenance(session: Session, row: AlertOutbox) -> Maintenance | None:
    window_id = maintenance_subject(row.dedupe_key)
    return session.get(Maintenance, window_id) if window_id is not None else None


# -- how -----------------------------------------------------------------------------


class SubscriberEmailSender(EmailSender):
    """The email channel's sender, to one subscriber, with the subscriber's text and unsubscribe headers."""

    def compose(self, message: Message) -> EmailMessage:
        if not isinstance(message, SubscriberMessage):
            return super().compose(message)
        mail = EmailMessage(policy=MAIL_POLICY)
        self.headers(mail, message, subject=message.subject, to=self.config.to[0])
        mail["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
        mail.set_content(message.plain)
        mail.add_alternative(message.html, subtype="html")
        return mail


class SubscriberWebhookSender:
    """One JSON POST (schema ``genstatus.subscription/v1``) through the alert webhooks' sender."""

    def __init__(self, subscriber_id: int, url: str, *, timeout: float, allow_private_network: bool) -> None:
        self.channel_id = channel_of(subscriber_id)
        self.timeout = timeout
        self._url = url
        self._allow_private_network = allow_private_network

    def send(self, message: Message) -> Receipt:
        if not isinstance(message, SubscriberMessage):
            raise TypeError("a subscriber webhook sends subscriber messages only")
        now = time.time()
        body = encode_json({**message.payload, "sent_at": iso_utc(datetime.fromtimestamp(int(now), UTC))})
        headers = {"Content-Type": "application/json", "X-Genstatus-Delivery": message.delivery_key,
                   "X-Genstatus-Event": message.event, "X-Genstatus-Timestamp": str(int(now))}
        answer = post_json(self._url, body, what="subscriber webhook", channel_id=self.channel_id, timeout=self.timeout,
                           headers=headers, allow_private_network=self._allow_private_network)
        return Receipt(status=answer.status)


@dataclass(frozen=True)
class Prepared:
    sender: Sender
    message: SubscriberMessage
    address: str

    def scrub(self, text: str) -> str:
        """Errors are stored with the delivery: keep the address out of them (it is deleted on unsubscribing)."""
        return text.replace(self.address, "[subscriber]") if self.address else text


class SubscriberPost:
    """What the dispatcher asks about subscriber deliveries: the message and sender of one, what to do on failure."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.subscriptions = config.subscriptions
        self.email: EmailChannel | None = next(
            (c for c in config.alerts.channels if c.id == self.subscriptions.email_channel and isinstance(c, EmailChannel)),
            None)
        self.timeout = max(self.subscriptions.webhook_timeout.total_seconds(),
                           self.email.smtp.timeout.total_seconds() if self.email else 0.0)
        self._tls: ssl.SSLContext | None = None

    def tls_context(self) -> ssl.SSLContext:
        """One TLS context for every subscriber email: loading the system's CAs costs ~40 ms of CPU each time."""
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def prepare(self, session: Session, delivery: AlertDelivery, outbox: AlertOutbox,
                thread: dict[str, str] | None = None) -> Prepared | str:
        """The sender and message of one subscriber delivery, or why it is not to be sent."""
        subscriber_id = subscriber_of(delivery.channel_id)
        subscriber = session.get(Subscriber, subscriber_id) if subscriber_id is not None else None
        if subscriber is None:
            return "the subscriber unsubscribed"
        if subscriber.confirmed_at is None and outbox.event != CONFIRM_EVENT:
            return "the subscriber has not confirmed"  # never sent before confirming, whatever wrote the delivery
        unavailable = unavailable_reason(self.config.site.url, self.subscriptions)
        if unavailable:
            return unavailable
        message = compose(session, outbox, subscriber, self.config, key=delivery.key, thread=thread)
        if isinstance(message, str):
            return message
        sender: Sender
        if subscriber.kind == "email":
            if self.email is None:
                return "no subscriptions.email_channel is configured"
            sender = SubscriberEmailSender(self.email.model_copy(update={"to": [subscriber.address]}), self.config.site,
                                           tls_context=self.tls_context())
        elif subscriber.kind == "webhook":
            if not self.subscriptions.webhooks:
                return "webhook subscriptions are turned off (subscriptions.webhooks)"
            sender = SubscriberWebhookSender(subscriber.id, subscriber.address, timeout=self.subscriptions.webhook_timeout
                                             .total_seconds(), allow_private_network=self.subscriptions.allow_private_webhooks)
        else:
            return f"unknown subscriber kind {subscriber.kind!r}"
        return Prepared(sender, message, subscriber.address)

    def failed(self, engine: Engine, channel_id: str, status: str | None, reason: str) -> bool:
        """After a permanent failure: log it and drop a webhook that keeps answering gone.  True when dropped."""
        log.warning("message to %s not delivered: %s", channel_id, reason)
        subscriber_id = subscriber_of(channel_id)
        if subscriber_id is None or status not in GONE:
            return False
        with Session(engine) as session, session.begin():
            subscriber = session.get(Subscriber, subscriber_id)
            if subscriber is None or subscriber.kind != "webhook":
                return False
            gone = session.scalar(select(func.count()).select_from(AlertDelivery).where(
                AlertDelivery.channel_id == channel_id, AlertDelivery.state == "failed",
                AlertDelivery.receiver_status.in_(sorted(GONE)))) or 0
            if gone < self.subscriptions.drop_webhook_after:
                return False
            session.delete(subscriber)
        log.info("subscriber %d unsubscribed: its webhook answered gone (404/410) %d times", subscriber_id, gone)
        return True


# -- housekeeping ----------------------------------------------------------------------


def forget_unconfirmed(engine: Engine, config: Config, now: datetime) -> int:
    """Delete subscribers that did not confirm within ``subscriptions.confirm_within``: their address is not kept."""
    cutoff = now - config.subscriptions.confirm_within
    stale = Subscriber.confirmed_at.is_(None), Subscriber.created_at < cutoff
    with Session(engine) as session:
        if session.scalar(select(Subscriber.id).where(*stale).limit(1)) is None:
            return 0  # the usual case: no write at all
    with Session(engine) as session, session.begin():
        return int(session.execute(delete(Subscriber).where(*stale)).rowcount or 0)  # type: ignore[attr-defined]


def maintenance_notices(engine: Engine, config: Config, now: datetime) -> int:
    """Write "started" and "completed" notices for admin maintenance windows as their times pass (once each).

    "completed" follows a "started" only; windows that began or ended more than
    ``MAINTENANCE_NOTICE_WITHIN`` ago get none (a dispatcher that was down does not send stale news).
    """
    if not config.subscriptions.enabled:
        return 0
    recent = now - MAINTENANCE_NOTICE_WITHIN
    with Session(engine) as session:
        starting = session.scalars(select(Maintenance).where(
            Maintenance.starts_at <= now, Maintenance.starts_at > recent, Maintenance.ends_at > now,
            Maintenance.status != "completed")).all()
        ending = session.scalars(select(Maintenance).where(
            Maintenance.starts_at <= now,
            ((Maintenance.ends_at <= now) & (Maintenance.ends_at > recent))
            | ((Maintenance.status == "completed") & (Maintenance.updated_at > recent)))).all()
        keys = {maintenance_key(w.id, MAINTENANCE_STARTED) for w in [*starting, *ending]}
        keys |= {maintenance_key(w.id, MAINTENANCE_COMPLETED) for w in ending}
        have = set(session.scalars(select(AlertOutbox.dedupe_key).where(AlertOutbox.dedupe_key.in_(sorted(keys))))) \
            if keys else set()
        todo = [(w, MAINTENANCE_STARTED) for w in starting if maintenance_key(w.id, MAINTENANCE_STARTED) not in have]
        todo += [(w, MAINTENANCE_COMPLETED) for w in ending if maintenance_key(w.id, MAINTENANCE_STARTED) in have
                 and maintenance_key(w.id, MAINTENANCE_COMPLETED) not in have]
        notes = [(w.id, w.title, list(w.services or []), event) for w, event in todo]
    written = 0
    for window_id, title, services, event in notes:
        try:
            with Session(engine) as session, session.begin():
                session.add(AlertOutbox(
                    created_at=now, incident_id=None, service_id=services[0] if len(services) == 1 else None,
                    event=event, audience=SUBSCRIBER_AUDIENCE, impact=Impact.NONE.value, title=title[:300], body="",
                    attempts=0, dedupe_key=maintenance_key(window_id, event)))
            written += 1
        except IntegrityError:
            pass  # written by another dispatcher, or by hand on the admin side
    return written
