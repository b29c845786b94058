"""Queue messages for the alert dispatcher from the web side: one ``alert_outbox`` row each, nothing sent here.

The dispatcher (``monitor.alerts``, which the web side never imports) builds and sends the
messages: a subscriber's confirmation, an incident update written by hand (to the alert routes
and, for a public incident, to its subscribers), a maintenance notice (to subscribers).  These
functions only add rows to the caller's session; the caller commits.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.config.subscriptions import (
    CONFIRM_EVENT,
    INCIDENT_EVENTS,
    MAINTENANCE_EVENTS,
    MAINTENANCE_UPDATE,
    SUBSCRIBER_AUDIENCE,
    admin_incident_key,
    confirm_key,
    confirm_key_prefix,
    maintenance_key,
)
from monitor.enums import Impact
from monitor.store.models import AlertOutbox, Incident, Maintenance, Subscriber

DEFAULT_RESEND_AFTER = timedelta(minutes=10)


def queue_subscriber_confirmation(session: Session, subscriber: Subscriber, *, now: datetime | None = None,
                                  resend_after: timedelta = DEFAULT_RESEND_AFTER) -> bool:
    """Ask for the subscriber's confirmation message, unless one was asked for within ``resend_after``.

    The row names only the subscriber: the dispatcher reads the address and token from its row and
    builds the link from ``site.url``.  True when a row was added.
    """
    now = now or datetime.now(UTC)
    if subscriber.id is None:
        session.flush()
    last = session.scalar(select(func.max(AlertOutbox.created_at))
                          .where(AlertOutbox.dedupe_key.like(confirm_key_prefix(subscriber.id) + "%")))
    if last is not None and now - last < resend_after:
        return False
    return _add(session, AlertOutbox(
        created_at=now, incident_id=None, service_id=None, event=CONFIRM_EVENT, audience=SUBSCRIBER_AUDIENCE,
        impact=Impact.NONE.value, title="Confirm your subscription", body=f"Confirmation for subscriber {subscriber.id}.",
        attempts=0, dedupe_key=confirm_key(subscriber.id, now)))


def queue_incident_event(session: Session, incident: Incident, event: str, body: str, *,
                         now: datetime | None = None) -> bool:
    """An incident update written by a person (``event``: open, update, identified, monitoring, resolve, ...).

    It goes to the alert routes like the detector's events and, when the incident is public, to
    its confirmed subscribers, who get ``body`` as it is: it must be public wording.
    """
    if event not in INCIDENT_EVENTS:
        raise ValueError(f"unknown incident event {event!r} (one of {', '.join(sorted(INCIDENT_EVENTS))})")
    now = now or datetime.now(UTC)
    if incident.id is None:
        session.flush()
    return _add(session, AlertOutbox(
        created_at=now, incident_id=incident.id, service_id=incident.service_id, event=event,
        audience=incident.audience, impact=incident.impact, title=incident.title[:300], body=body, attempts=0,
        dedupe_key=admin_incident_key(incident.id, secrets.token_hex(8))))


def queue_maintenance_event(session: Session, maintenance: Maintenance, event: str, body: str = "", *,
                            now: datetime | None = None) -> bool:
    """A maintenance notice for subscribers (``event``: maintenance_scheduled|started|update|completed).

    Scheduled, started and completed are sent once per window (a second call returns False); the
    dispatcher writes started and completed itself when the window's times pass.
    """
    if event not in MAINTENANCE_EVENTS:
        raise ValueError(f"unknown maintenance event {event!r} (one of {', '.join(sorted(MAINTENANCE_EVENTS))})")
    now = now or datetime.now(UTC)
    if maintenance.id is None:
        session.flush()
    services = list(maintenance.services or [])
    unique = secrets.token_hex(8) if event == MAINTENANCE_UPDATE else None
    return _add(session, AlertOutbox(
        created_at=now, incident_id=None, service_id=services[0] if len(services) == 1 else None, event=event,
        audience=SUBSCRIBER_AUDIENCE, impact=Impact.NONE.value, title=maintenance.title[:300], body=body, attempts=0,
        dedupe_key=maintenance_key(maintenance.id, event, unique)))


def _add(session: Session, row: AlertOutbox) -> bool:
    """Add the row in a savepoint: a duplicate (its ``dedupe_key`` taken) leaves the caller's transaction intact."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True
