"""PagerDuty channel: Events API v2.

Every message of an incident carries the dedup key ``genstatus-incident-<id>``: opens, escalations
and updates are ``trigger`` events that PagerDuty folds into one alert, and ``resolve`` closes it.
A message without an incident (a test) uses its delivery key, so retries still deduplicate.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from monitor.alerts.channels.base import Receipt
from monitor.alerts.channels.http import iso_utc, post_json
from monitor.alerts.message import Message
from monitor.config import SiteConfig
from monitor.config.alerts import PagerDutyChannel

SEVERITY = {"critical": "critical", "major": "error", "minor": "warning", "none": "info"}
SUMMARY_CHARS = 1024


class PagerDutySender:
    """``allow_private_network`` lets ``url`` reach a private address (a proxy, tests)."""

    def __init__(self, config: PagerDutyChannel, site: SiteConfig, *, allow_private_network: bool = False) -> None:
        self.channel_id = config.id
        self.timeout = config.timeout.total_seconds()
        self._config = config
        self._site = site
        self._allow_private = allow_private_network or config.allow_private_network

    def send(self, message: Message) -> Receipt:
        key = self._config.routing_key.get_secret_value()
        answer = post_json(self._config.url, event(message, key, self._site), what="PagerDuty Events API", channel_id=self.channel_id,
                           timeout=self.timeout, allow_private_network=self._allow_private, secrets=[key])
        try:
            data = answer.json()
        except ValueError:
            data = None
        data = data if isinstance(data, dict) else {}
        status = str(data.get("status") or "").strip()
        return Receipt(status=f"{answer.status_code} {status}".strip(), detail=str(data.get("dedup_key") or ""))


def dedup_key(message: Message) -> str:
    return f"genstatus-incident-{message.incident_id}" if message.incident_id is not None else message.delivery_key


def event(message: Message, routing_key: str, site: SiteConfig) -> dict[str, Any]:
    """The Events API v2 body for ``message``."""
    base = {"routing_key": routing_key, "dedup_key": dedup_key(message)}
    if message.resolved:
        return {**base, "event_action": "resolve"}
    summary = message.headline
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 1] + "…"
    details: dict[str, Any] = {
        "event": message.event,
        "outcomes": dict(message.outcomes),
        "regions": list(message.regions),
        "since": message.since,
        "example": message.example,
        "details": message.body,
        "audience": message.audience,
    }
    payload = {
        "summary": summary,
        "source": message.service or "genstatus",
        "severity": SEVERITY.get(message.impact, "warning"),
        "timestamp": iso_utc(message.started_at or datetime.fromtimestamp(int(time.time()), UTC)),
        "component": message.service,
        "group": message.group,
        "class": message.kind,
        "custom_details": {k: v for k, v in details.items() if v not in (None, "", [], {})},
    }
    body: dict[str, Any] = {
        **base,
        "event_action": "trigger",
        "client": "genstatus",
        "payload": {k: v for k, v in payload.items() if v is not None},
    }
    if message.url:
        body["links"] = [{"href": message.url, "text": "Incident"}]
    if message.url or site.url:
        body["client_url"] = message.url or site.url
    if message.image_public_url:
        body["images"] = [{"src": message.image_public_url, "alt": "A failing output"}]
    return body
