"""Slack channel: an incoming webhook, or a bot token posting through the Web API.

Both post the same Block Kit message (built as plain dicts: ``slack_sdk`` is only a test dependency,
the tests parse these blocks back with its models).  With a bot token the first message of an
incident is the thread's parent: later messages reply under it (``thread_ts`` from the receipt's
``thread``), and a resolve also edits the parent to show it resolved.
"""

from __future__ import annotations

import re
import time
from typing import Any

from monitor.alerts.channels.base import PermanentError, Receipt, TemporaryError
from monitor.alerts.channels.http import Answer, post_json, retry_after
from monitor.alerts.message import Message
from monitor.config import SiteConfig
from monitor.config.alerts import SlackChannel

# Block Kit limits (characters)
HEADER_CHARS = 150
SECTION_CHARS = 3000
FIELD_CHARS = 2000
EXAMPLE_CHARS = 500  # an example error is a hint, not a log
ALT_TEXT_CHARS = 2000
URL_CHARS = 3000

#: Web API errors worth retrying; every other ``"ok": false`` is permanent (bad token, no such
#: channel, bot not in it, archived, malformed message: retrying cannot help)
TEMPORARY_API_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
API_HINTS = {
    "invalid_auth": "check the token", "not_authed": "check the token", "account_inactive": "check the token",
    "token_revoked": "check the token", "channel_not_found": "check 'channel'", "is_archived": "the channel is archived",
    "not_in_channel": "invite the bot to the channel",
}
#: replies that also show in the channel, not only in the thread
BROADCAST_EVENTS = {"escalate", "reopen"}


class SlackSender:
    """``allow_private_network`` lets ``webhook_url``/``api_url`` reach a private address (a proxy, tests)."""

    def __init__(self, config: SlackChannel, site: SiteConfig, *, allow_private_network: bool = False) -> None:
        self.channel_id = config.id
        self.timeout = config.timeout.total_seconds()
        self._config = config
        self._site = site
        self._allow_private = allow_private_network or config.allow_private_network

    def send(self, message: Message) -> Receipt:
        deadline = time.monotonic() + self.timeout
        if self._config.webhook_url is not None:
            answer = self._post(self._config.webhook_url.get_secret_value(), _content(message), "slack webhook",
                                deadline, secrets=[self._config.webhook_url.get_secret_value()])
            return Receipt(status="200 ok" if answer.content.strip() == b"ok" else answer.status)
        return self._send_api(message, deadline)

    def _send_api(self, message: Message, deadline: float) -> Receipt:
        parent = message.thread.get("ts")
        channel = message.thread.get("channel") or str(self._config.channel)
        note = ""
        if parent and message.resolved:
            # edit the parent first: an edit can be repeated, so a retry after a failed post is harmless
            try:
                self._call("chat.update", {"channel": channel, "ts": parent, **_content(message)}, deadline)
            except PermanentError as exc:  # e.g. the parent was deleted; the resolve still goes out
                note = f"the first message was not updated: {exc.reason}"
        body: dict[str, Any] = {"channel": channel, **_content(message), "unfurl_links": False}
        if parent:
            body |= {"thread_ts": parent, "reply_broadcast": message.event in BROADCAST_EVENTS}
        data = self._call("chat.postMessage", body, deadline)
        if parent:
            thread = {"ts": parent, "channel": channel}
        elif data.get("ts") and data.get("channel"):
            thread = {"ts": str(data["ts"]), "channel": str(data["channel"])}
        else:
            thread = {}
        return Receipt(status="200 ok", detail=note or f"ts {data.get('ts')}", thread=thread)

    def _call(self, method: str, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        """One Web API call; ``"ok": false`` becomes a ``DeliveryError``."""
        token = self._config.token.get_secret_value() if self._config.token else ""
        url = f"{self._config.api_url.rstrip('/')}/{method}"
        what = f"slack {method}"
        answer = self._post(url, body, what, deadline, secrets=[token],
                            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json; charset=utf-8"})
        try:
            data = answer.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise TemporaryError(f"{what} answered HTTP {answer.status_code} with something that is not a JSON object",
                                 status=f"HTTP {answer.status_code}")
        if data.get("ok") is True:
            return data
        error = str(data.get("error") or "")
        error = error if re.fullmatch(r"[a-z0-9_]{1,64}", error) else "unknown_error"
        status = f"HTTP {answer.status_code} {error}"
        hint = f" ({API_HINTS[error]})" if error in API_HINTS else ""
        if error in TEMPORARY_API_ERRORS:
            raise TemporaryError(f"{what} failed: {error}", status=status,
                                 retry_after=retry_after(answer.headers.get("retry-after")))
        raise PermanentError(f"{what} refused the message: {error}{hint}", status=status)

    def _post(self, url: str, body: dict[str, Any], what: str, deadline: float, *,
              secrets: list[str], headers: dict[str, str] | None = None) -> Answer:
        return post_json(url, body, what=what, channel_id=self.channel_id, timeout=deadline - time.monotonic(),
                         headers=headers, allow_private_network=self._allow_private, secrets=secrets)


def _content(message: Message) -> dict[str, Any]:
    return {"text": message.headline, "blocks": blocks(message)}


def blocks(message: Message) -> list[dict[str, Any]]:
    """The Block Kit layout: header, facts, example error, incident button, thumbnail."""
    header = cut(f"{message.mark} {message.headline}", HEADER_CHARS)
    out: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}}]
    facts = [
        ("Impact", message.impact),
        ("Regions", ", ".join(message.regions)),
        ("Since", message.since or ""),
        ("Outcomes", ", ".join(f"{name} ×{count}" for name, count in message.outcomes)),
    ]
    fields = [{"type": "mrkdwn", "text": cut(f"*{name}*\n{escape(value)}", FIELD_CHARS)} for name, value in facts if value]
    section: dict[str, Any] = {"type": "section"}
    if message.body.strip():
        section["text"] = {"type": "mrkdwn", "text": cut(escape(message.body.strip()), SECTION_CHARS)}
    if fields:
        section["fields"] = fields[:10]
    if len(section) > 1:
        out.append(section)
    if message.example:
        example = cut(f"Example error: {' '.join(message.example.split())}", EXAMPLE_CHARS)
        out.append({"type": "context", "elements": [{"type": "plain_text", "text": example, "emoji": False}]})
    if message.url and len(message.url) <= URL_CHARS:
        button = {"type": "button", "action_id": "open_incident", "url": message.url,
                  "text": {"type": "plain_text", "text": "Open incident"}}
        out.append({"type": "actions", "elements": [button]})
    if message.image_public_url and len(message.image_public_url) <= URL_CHARS:
        alt = cut(f"A failing output of {message.service_name or message.service or 'the service'}", ALT_TEXT_CHARS)
        out.append({"type": "image", "image_url": message.image_public_url, "alt_text": alt})
    return out


def escape(text: str) -> str:
    """Slack mrkdwn control characters (``<@U123>`` mentions, ``<url|label>`` links) as text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, with "…" when cut (never through a ``&amp;``-style entity)."""
    if len(text) <= limit:
        return text
    return re.sub(r"&[a-z]*$", "", text[: limit - 1]) + "…"
