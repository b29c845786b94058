"""From an outbox row (and its incident) to the ``Message`` every channel lays out.

One place builds the facts -- headline, service and group, kind and impact, regions, since when
(site timezone and UTC), outcomes with counts, the detector's own account with its example error,
the incident link -- and one place removes every configured secret from them, so no channel can
leak a key the config holds.
"""

from __future__ import annotations

import io
import ipaddress
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.alerts.message import Message
from monitor.config import Config
from monitor.enums import IncidentKind, Outcome
from monitor.store.models import AlertOutbox, Incident, ProbeResultRow, ResultImageRow

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words


def secrets_of(config: Config) -> list[str]:
    """Every secret the config holds: provider keys and headers, channel URLs, tokens and passwords."""
    values: list[str] = []
    for service in config.services:
        values += service.secret_values()
    for channel in config.alerts.channels:
        for name in ("webhook_url", "token", "url", "secret", "routing_key"):
            value = getattr(channel, name, None)
            if value is not None and hasattr(value, "get_secret_value"):
                values.append(value.get_secret_value())
        smtp = getattr(channel, "smtp", None)
        if smtp is not None and smtp.password is not None:
            values.append(smtp.password.get_secret_value())
        values += [url.get_secret_value() for url in getattr(channel, "urls", [])]
    return sorted({v for v in values if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def redact(text: str | None, secrets: Iterable[str]) -> str | None:
    if text is None:
        return None
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def incident_link(config: Config, incident_id: int | None) -> str | None:
    if not config.site.url or incident_id is None:
        return None
    return f"{config.site.url.rstrip('/')}/#incident-{incident_id}"


def since_text(value: datetime | None, timezone: str) -> str | None:
    """``2026-11-02 11:30 CET (10:30 UTC)``: the site's time for people, UTC beside it."""
    if value is None:
        return None
    utc = value.astimezone(UTC)
    local = utc.astimezone(ZoneInfo(timezone))
    if timezone == "UTC":
        return utc.strftime("%Y-%m-%d %H:%M UTC")
    return f"{local.strftime('%Y-%m-%d %H:%M %Z')} ({utc.strftime('%H:%M')} UTC)"


def outcome_counts(session: Session, incident: Incident | None, until: datetime) -> tuple[tuple[str, int], ...]:
    """What the service's runs returned since the incident started (bad and good), most common first."""
    if incident is None or incident.service_id is None:
        return ()
    rows = session.execute(
        select(ProbeResultRow.outcome, func.count()).where(
            ProbeResultRow.service_id == incident.service_id, ProbeResultRow.started_at >= incident.started_at,
            ProbeResultRow.started_at <= until)
        .group_by(ProbeResultRow.outcome)
    )
    return tuple(Counter({outcome: count for outcome, count in rows}).most_common())


def failing_thumbnail(session: Session, incident: Incident | None) -> tuple[int, bytes] | None:
    """For a quality incident: (result id, PNG) of the newest degraded output since it started."""
    if incident is None or incident.kind != IncidentKind.QUALITY.value or incident.service_id is None:
        return None
    row = session.execute(
        select(ResultImageRow.result_id, ResultImageRow.thumbnail)
        .join(ProbeResultRow, ProbeResultRow.id == ResultImageRow.result_id)
        .where(ProbeResultRow.service_id == incident.service_id, ProbeResultRow.outcome == Outcome.DEGRADED_QUALITY.value,
               ProbeResultRow.started_at >= incident.started_at, ResultImageRow.thumbnail.is_not(None))
        .order_by(ProbeResultRow.started_at.desc()).limit(1)
    ).first()
    if row is None or not row[1]:
        return None
    try:  # thumbnails are WebP; mail clients show PNG everywhere
        with Image.open(io.BytesIO(row[1])) as image:
            out = io.BytesIO()
            image.save(out, format="PNG")
    except (OSError, ValueError):
        return None
    return row[0], out.getvalue()


def public_site_url(config: Config) -> str | None:
    """``site.url`` when the outside world can reach it (not localhost, not a private address)."""
    if not config.site.url:
        return None
    host = urlsplit(config.site.url).hostname or ""
    if host == "localhost" or host.endswith((".local", ".localhost", ".internal", ".lan")) or "." not in host:
        return None
    try:
        if not ipaddress.ip_address(host).is_global:
            return None
    except ValueError:
        pass  # a name, not an address
    return config.site.url.rstrip("/")


def render(session: Session, outbox: AlertOutbox, config: Config, *, key: str, thread: dict[str, str] | None = None,
           test: bool = False) -> Message:
    """The message for one outbox row, with every configured secret removed."""
    incident = session.get(Incident, outbox.incident_id) if outbox.incident_id else None
    service = next((s for s in config.services if s.id == outbox.service_id), None)
    secrets = secrets_of(config)
    started = incident.started_at if incident else None
    body = redact(outbox.body, secrets) or ""
    thumbnail = failing_thumbnail(session, incident)
    public = public_site_url(config)
    return Message(
        delivery_key=key,
        event=outbox.event,
        title=redact(outbox.title, secrets) or "",
        body=body,
        impact=outbox.impact,
        audience=outbox.audience,
        incident_id=outbox.incident_id,
        service=outbox.service_id,
        service_name=service.display_name if service else outbox.service_id,
        group=service.group if service else None,
        kind=incident.kind if incident else None,
        regions=tuple(incident.regions or ()) if incident else (),
        started_at=started,
        since=since_text(started, config.site.timezone),
        outcomes=outcome_counts(session, incident, outbox.created_at),
        example=_example(body),
        url=incident_link(config, outbox.incident_id),
        image=thumbnail[1] if thumbnail else None,
        image_type="image/png",
        image_public_url=f"{public}/images/results/{thumbnail[0]}.webp" if thumbnail and public else None,
        test=test,
        thread=dict(thread or {}),
    )


def _example(body: str) -> str | None:
    """The detector writes its example error as "e.g. ...;" in the update: pick it out for channels with a field for it."""
    marker = "e.g. "
    if marker not in body:
        return None
    example = body.split(marker, 1)[1]
    return example.split(". Evidence:", 1)[0].rstrip(".")[:300] or None


def sample_outbox(config: Config, event: str = "open", now: datetime | None = None) -> AlertOutbox:
    """A realistic outbox row for ``genstatus alert-test``: clearly a test, built like the real thing."""
    service = config.services[0] if config.services else None
    name = service.display_name if service else "Example service"
    resolved = event == "resolve"
    return AlertOutbox(
        id=0, created_at=now or datetime.now(UTC), incident_id=None, service_id=service.id if service else None,
        event=event, audience="public", impact="major",
        title=f"{name}: major outage (test)",
        body=("Resolved: 2+ good results in a row and no failure for 5m (this is a test)." if resolved else
              "Confirmed outage problem in the test region: server_error (3), timeout (1); e.g. HTTP 503: upstream "
              "connect error. This is a test message from genstatus alert-test; nothing is down."),
    )
