"""Generic webhook channel: one signed JSON POST per alert.

Body (``Content-Type: application/json``, UTF-8), schema ``genstatus.alert/v1``.  New fields may be
added within v1; a field is never removed or changes meaning without a new schema version::

    {
      "schema": "genstatus.alert/v1",
      "delivery": "<idempotency key: the same on every retry of this alert; drop repeats>",
      "event": "open | reopen | escalate | deescalate | update | monitoring | resolve | reminder | slo_burn | test",
      "test": false,                       // true for "genstatus alert-test" messages
      "site": {"title": "Image Generation Status", "url": "https://status.example.com" | null},
      "incident": {
        "id": 42 | null,                   // null for messages not about one incident (test, some SLO alerts)
        "service": "dalle3" | null,        // service id
        "service_name": "DALL·E 3" | null,
        "group": "openai" | null,
        "kind": "outage | latency | quality | safety | agent | operator" | null,
        "impact": "none | minor | major | critical",
        "audience": "public | operator",
        "regions": ["eu-west", "us-east"],
        "started_at": "2024-05-01T12:00:00Z" | null,   // ISO 8601, UTC
        "since": "<started_at for people, site timezone and UTC>" | null,
        "url": "https://status.example.com/#incident-42" | null
      },
      "title": "DALL·E 3: major outage",
      "headline": "DALL·E 3: major outage — opened",  // "[TEST] " first for a test
      "text": "<the whole message as plain text>",
      "outcomes": {"server_error": 12, "timeout": 3},  // probe outcome -> count
      "example": "<one sanitised error detail>" | null,
      "image_url": "<public URL of a failing output's thumbnail>" | null,
      "sent_at": "2024-05-01T12:00:05Z"               // this attempt, UTC
    }

Headers:

* ``X-Genstatus-Delivery``: the ``delivery`` key; ``X-Genstatus-Event``: the event;
* ``X-Genstatus-Timestamp``: this attempt's time in Unix seconds;
* ``X-Genstatus-Signature: sha256=<hex>`` when the channel has a ``secret``: HMAC-SHA256 with the
  secret as key over ``"<timestamp>.<raw body bytes>"``.  To verify, recompute it over the raw body as
  received (before any JSON parsing), compare in constant time, and reject old timestamps (replays);
* the channel's ``headers`` (e.g. ``Authorization``); they cannot replace the ones above.

Any 2xx answer is success; 408, 429 (``Retry-After`` is honoured) and 5xx are retried; other answers
stop the channel.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any

from monitor.alerts.channels.base import Receipt
from monitor.alerts.channels.http import encode_json, iso_utc, post_json
from monitor.alerts.message import Message
from monitor.config import SiteConfig
from monitor.config.alerts import WebhookChannel

SCHEMA = "genstatus.alert/v1"
#: set by the sender; the channel's own ``headers`` cannot replace them
RESERVED_HEADERS = ("content-type", "content-length", "host", "user-agent", "x-genstatus-")


class WebhookSender:
    def __init__(self, config: WebhookChannel, site: SiteConfig) -> None:
        self.channel_id = config.id
        self.timeout = config.timeout.total_seconds()
        self._config = config
        self._site = site

    def send(self, message: Message) -> Receipt:
        now = time.time()
        body = encode_json(payload(message, self._site, sent_at=now))
        timestamp = str(int(now))
        headers = {k: v for k, v in self._config.headers.items() if not k.lower().startswith(RESERVED_HEADERS)}
        headers |= {
            "Content-Type": "application/json",
            "X-Genstatus-Delivery": message.delivery_key,
            "X-Genstatus-Event": message.event,
            "X-Genstatus-Timestamp": timestamp,
        }
        secrets = [*self._config.headers.values()]
        if self._config.secret is not None:
            key = self._config.secret.get_secret_value()
            headers["X-Genstatus-Signature"] = "sha256=" + sign(key, timestamp, body)
            secrets.append(key)
        answer = post_json(
            self._config.url.get_secret_value(), body, what="webhook", channel_id=self.channel_id,
            timeout=self.timeout, headers=headers, allow_private_network=self._config.allow_private_network,
            secrets=secrets,
        )
        return Receipt(status=answer.status)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed with ``secret``."""
    return hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def payload(message: Message, site: SiteConfig, *, sent_at: float) -> dict[str, Any]:
    """The ``genstatus.alert/v1`` body (see the module docstring)."""
    return {
        "schema": SCHEMA,
        "delivery": message.delivery_key,
        "event": message.event,
        "test": message.test,
        "site": {"title": site.title, "url": site.url},
        "incident": {
            "id": message.incident_id,
            "service": message.service,
            "service_name": message.service_name,
            "group": message.group,
            "kind": message.kind,
            "impact": message.impact,
            "audience": message.audience,
            "regions": list(message.regions),
            "started_at": iso_utc(message.started_at),
            "since": message.since,
            "url": message.url,
        },
        "title": message.title,
        "headline": message.headline,
        "text": message.text(),
        "outcomes": dict(message.outcomes),
        "example": message.example,
        "image_url": message.image_public_url,
        "sent_at": iso_utc(datetime.fromtimestamp(int(sent_at), UTC)),
    }
