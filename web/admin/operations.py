"""The admin side's writes, shared by the forms and the write API.  Inputs arrive validated
(``web.admin.validate``); each function changes rows in the caller's session, ``commit`` ends it.

Incidents written by hand have ``source = "manual"``: the detector never touches them (and while one
is open it holds its service and kind, so the detector does not open a duplicate).  An automatic
incident's status and impact stay the detector's unless an admin takes it over; its public title
and text can be overridden at any time, and updates can be posted to it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.config.subscriptions import MAINTENANCE_SCHEDULED
from monitor.enums import Audience, IncidentStatus
from monitor.store.models import ApiToken, IncidentUpdate, Maintenance, Subscriber, User
from monitor.store.models import Incident as IncidentRow
from web import outbox
from web.admin import tokens

MANUAL = "manual"
RESOLVED_TEXT = "This incident has been resolved."


class Conflict(Exception):
    """The request is well-formed but clashes with the current state (409)."""


class NotFound(Exception):
    """No such row (404)."""


#: the outbox event of an update that sets this status (others are plain updates)
UPDATE_EVENTS = {IncidentStatus.IDENTIFIED.value: "identified", IncidentStatus.MONITORING.value: "monitoring",
                 IncidentStatus.RESOLVED.value: "resolve"}


def commit(db: Session) -> None:
    """Commit; a clash with the unique index on open incidents becomes a ``Conflict``."""
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Conflict("Another open incident of that service and kind was written at the same moment; "
                       "reload and post an update to it instead.") from None


def get(db: Session, model: type, row_id: int) -> object:
    row = db.get(model, row_id) if 0 < row_id < 2**63 else None
    if row is None:
        raise NotFound(f"There is no {model.__name__.lower()} #{row_id}.")
    return row


def incident(db: Session, incident_id: int) -> IncidentRow:
    row = get(db, IncidentRow, incident_id)
    assert isinstance(row, IncidentRow)
    return row


# -- incidents --------------------------------------------------------------------------


def open_incident(db: Session, service_id: str, kind: str) -> IncidentRow | None:
    return db.scalar(select(IncidentRow).where(
        IncidentRow.service_id == service_id, IncidentRow.kind == kind, IncidentRow.audience == Audience.PUBLIC.value,
        IncidentRow.resolved_at.is_(None)))


def create_incidents(db: Session, *, services: list[str], title: str, impact: str, status: str, kind: str, body: str,
                     author: str, now: datetime) -> list[IncidentRow]:
    """One public incident per service (an incident belongs to one service), each with its first update."""
    for service_id in services:
        existing = open_incident(db, service_id, kind)
        if existing is not None:
            how = "post an update to it" if existing.source == MANUAL else "take it over or post an update to it"
            raise Conflict(f"Incident #{existing.id} ({existing.title}) is already open for {service_id} as a {kind} "
                           f"incident: {how} instead.")
    rows = []
    for service_id in services:
        row = IncidentRow(service_id=service_id, kind=kind, audience=Audience.PUBLIC.value, impact=impact, status=status,
                          title=title, regions=[], started_at=now, detected_at=now, source=MANUAL)
        row.updates.append(IncidentUpdate(status=status, body=body, author=author, created_at=now, display_at=now))
        db.add(row)
        rows.append(row)
    db.flush()
    for row in rows:  # alert routes and subscribers hear of it like of the detector's incidents
        outbox.queue_incident_event(db, row, "open", body, now=now)
    return rows


def _require_manual(row: IncidentRow, what: str) -> None:
    if row.source != MANUAL:
        raise Conflict(f"The detector manages incident #{row.id}: take it over before you {what}.")


def post_update(db: Session, row: IncidentRow, *, body: str, status: str | None, impact: str | None, author: str,
                now: datetime) -> IncidentUpdate:
    """An update; a new status or impact too (for incidents written by hand or taken over)."""
    status = status or row.status
    if status != row.status:
        _require_manual(row, "change its status")
    if impact is not None and impact != row.impact:
        _require_manual(row, "change its impact")
        row.impact = impact
    if status == IncidentStatus.RESOLVED.value:
        row.resolved_at = row.resolved_at or now
    elif status != IncidentStatus.POSTMORTEM.value and row.resolved_at is not None and status != row.status:
        row.resolved_at = None  # reopened by hand
    row.status = status
    update = IncidentUpdate(status=status, body=body, author=author, created_at=now, display_at=now)
    row.updates.append(update)
    db.flush()
    outbox.queue_incident_event(db, row, UPDATE_EVENTS.get(status, "update"), body, now=now)
    return update


def resolve(db: Session, row: IncidentRow, *, body: str, author: str, now: datetime) -> None:
    _require_manual(row, "resolve it")
    if row.resolved_at is not None:
        raise Conflict(f"Incident #{row.id} is already resolved.")
    post_update(db, row, body=body or RESOLVED_TEXT, status=IncidentStatus.RESOLVED.value, impact=None, author=author, now=now)


def write_postmortem(db: Session, row: IncidentRow, text: str, now: datetime) -> None:
    if row.resolved_at is None:
        raise Conflict(f"Incident #{row.id} is still open: resolve it before writing its postmortem.")
    first = row.postmortem_at is None
    row.postmortem = text
    row.postmortem_at = row.postmortem_at or now
    row.status = IncidentStatus.POSTMORTEM.value
    if first:  # announced once; later edits of the text are not news
        outbox.queue_incident_event(db, row, "postmortem", "The postmortem of this incident is published.", now=now)


def override_public(row: IncidentRow, *, title: str | None, body: str | None) -> None:
    """What the public sees instead of the detector's title and text ("" or None: the detector's again)."""
    row.public_title = title or None
    row.public_body = body or None


def take_over(row: IncidentRow) -> None:
    """From now on the operator decides this incident's status and impact; the detector leaves it alone."""
    if row.source == MANUAL:
        raise Conflict(f"Incident #{row.id} is already managed by hand.")
    if row.resolved_at is not None:
        raise Conflict(f"Incident #{row.id} is resolved: there is nothing to take over.")
    row.source = MANUAL


# -- maintenance ------------------------------------------------------------------------


def schedule_maintenance(db: Session, *, title: str, body: str, services: list[str] | None, starts: datetime,
                         ends: datetime, author: str, now: datetime) -> Maintenance:
    row = Maintenance(title=title, body=body, services=services, starts_at=starts, ends_at=ends,
                      status="in_progress" if starts <= now else "scheduled", author=author, created_at=now)
    db.add(row)
    db.flush()
    outbox.queue_maintenance_event(db, row, MAINTENANCE_SCHEDULED, body, now=now)
    return row


def set_maintenance_status(row: Maintenance, status: str, now: datetime) -> None:
    """``completed`` during the window ends it now (the end time records when the work really ended)."""
    if row.status == "completed":
        raise Conflict(f"Maintenance #{row.id} is already completed.")
    if status == "completed" and row.starts_at <= now < row.ends_at:
        row.ends_at = now
    row.status = status


# -- subscribers and tokens -------------------------------------------------------------


def delete_subscriber(db: Session, row: Subscriber) -> None:
    db.delete(row)


def create_token(db: Session, user: User, name: str, now: datetime) -> tuple[ApiToken, str]:
    return tokens.create(db, user, name, now)


def revoke_token(row: ApiToken, now: datetime) -> None:
    if row.revoked_at is not None:
        raise Conflict(f"API token #{row.id} is already revoked.")
    row.revoked_at = now
