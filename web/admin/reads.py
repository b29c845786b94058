"""What the admin pages show (read-only queries; the public pages' are in ``web.queries``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.store.models import AlertDelivery, ApiToken, Subscriber, User
from monitor.store.models import Incident as IncidentRow

RECENT_INCIDENTS = 100


def open_incidents(db: Session) -> list[IncidentRow]:
    """Every open incident, public and operator-only, newest first."""
    return list(db.scalars(select(IncidentRow).where(IncidentRow.resolved_at.is_(None))
                           .order_by(IncidentRow.started_at.desc(), IncidentRow.id.desc())))


def recent_incidents(db: Session, limit: int = RECENT_INCIDENTS) -> list[IncidentRow]:
    return list(db.scalars(select(IncidentRow).order_by(IncidentRow.started_at.desc(), IncidentRow.id.desc()).limit(limit)))


@dataclass(frozen=True)
class ChannelHealth:
    channel_id: str
    latest: AlertDelivery | None  # None: nothing sent through it yet


def channel_health(db: Session, configured: list[str]) -> list[ChannelHealth]:
    """The newest delivery of each channel (configured ones first, in config order, then any others seen)."""
    newest = select(func.max(AlertDelivery.id)).group_by(AlertDelivery.channel_id)
    latest = {row.channel_id: row for row in db.scalars(select(AlertDelivery).where(AlertDelivery.id.in_(newest)))}
    ids = list(dict.fromkeys([*configured, *sorted(latest)]))
    return [ChannelHealth(channel_id, latest.get(channel_id)) for channel_id in ids]


def subscribers(db: Session) -> list[Subscriber]:
    return list(db.scalars(select(Subscriber).order_by(Subscriber.created_at.desc(), Subscriber.id.desc())))


def api_tokens(db: Session) -> list[tuple[ApiToken, str]]:
    """Every token with its user's name, newest first (revoked ones too: they show when they were revoked)."""
    rows = db.execute(select(ApiToken, User.name).join(User, User.id == ApiToken.user_id)
                      .order_by(ApiToken.created_at.desc(), ApiToken.id.desc()))
    return [(token, name) for token, name in rows]
