"""The Slack channel against real HTTP servers on loopback: an incoming webhook and a fake Web API.

The blocks are parsed back with slack_sdk's own models (``Block.parse`` then ``to_dict``, which runs
its validators) and checked against Block Kit's limits.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import ActionsBlock, Block, ContextBlock, HeaderBlock, ImageBlock, SectionBlock

from monitor.alerts.channels.base import DeliveryError, PermanentError, TemporaryError
from monitor.alerts.channels.slack import SlackSender
from monitor.alerts.message import Message
from monitor.config import SiteConfig
from monitor.config.alerts import SlackChannel
from tests.alerts.receiver import Receiver, Reply, Request, receiver  # noqa: F401

TOKEN = "xoxb-1111-2222-bot-token-secret"
HOOK_PATH = "/services/T0SECRET/B0SECRET/webhook-path-secret"


def message(**changes: Any) -> Message:
    fields: dict[str, Any] = dict(
        delivery_key="delivery-42-open-slack", event="open", title="DALL·E 3: major outage",
        body="12 of 15 probes failed in eu-west and us-east. <!channel> & co", impact="major", incident_id=42,
        service="dalle3", service_name="DALL·E 3", group="openai", kind="outage", regions=("eu-west", "us-east"),
        started_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC), since="2024-05-01 14:00 CEST (12:00 UTC)",
        outcomes=(("server_error", 12), ("timeout", 3)), example="HTTP 500: upstream overloaded",
        url="https://status.example.com/incidents/42",
    )
    return Message(**(fields | changes))


def webhook_sender(url: str, *, allow: bool = True, timeout: str = "2s") -> SlackSender:
    config = SlackChannel.model_validate({"id": "ops-slack", "type": "slack", "webhook_url": url, "timeout": timeout})
    return SlackSender(config, SiteConfig(), allow_private_network=allow)


def bot_sender(api_url: str, *, timeout: str = "2s") -> SlackSender:
    config = SlackChannel.model_validate({"id": "ops-slack", "type": "slack", "token": TOKEN, "channel": "#alerts",
                                          "api_url": api_url, "timeout": timeout})
    return SlackSender(config, SiteConfig(), allow_private_network=True)


def parsed(blocks: list[dict[str, Any]]) -> list[Block]:
    """The blocks through slack_sdk's models; ``to_dict`` validates, and nothing may be lost on the way."""
    models = [Block.parse(block) for block in blocks]
    assert all(model is not None for model in models)
    assert [model.to_dict() for model in models if model is not None] == blocks
    return [model for model in models if model is not None]


def assert_within_limits(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= 50
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert len(block.get("text", {}).get("text", "")) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
        if block["type"] == "context":
            assert all(len(e["text"]) <= 3000 for e in block["elements"])


def test_webhook_posts_block_kit(receiver: Receiver):
    receipt = webhook_sender(receiver.url + HOOK_PATH).send(message())
    assert receipt.status == "200 ok" and receipt.thread == {}
    [request] = receiver.requests
    assert request.path == HOOK_PATH
    body = request.json()
    assert body["text"] == "DALL·E 3: major outage — opened"
    blocks = body["blocks"]
    assert_within_limits(blocks)
    header, section, context, actions = parsed(blocks)
    assert isinstance(header, HeaderBlock) and header.text.text == "🔴 DALL·E 3: major outage — opened"
    assert isinstance(section, SectionBlock)
    assert section.text is not None and "&lt;!channel&gt; &amp; co" in section.text.text  # no @channel ping
    assert [f.text for f in section.fields] == [
        "*Impact*\nmajor", "*Regions*\neu-west, us-east", "*Since*\n2024-05-01 14:00 CEST (12:00 UTC)",
        "*Outcomes*\nserver_error ×12, timeout ×3",
    ]
    assert isinstance(context, ContextBlock)
    assert context.elements[0].text == "Example error: HTTP 500: upstream overloaded"
    assert isinstance(actions, ActionsBlock) and actions.elements[0].url == "https://status.example.com/incidents/42"


def test_image_block_only_with_a_public_image_url(receiver: Receiver):
    hook = webhook_sender(receiver.url)
    hook.send(message(kind="quality", image=b"\x89PNG...", url=None, example=None))
    hook.send(message(kind="quality", image_public_url="https://status.example.com/images/42.png"))
    without, with_image = (r.json()["blocks"] for r in receiver.requests)
    assert [b["type"] for b in without] == ["header", "section"]
    image = parsed(with_image)[-1]
    assert isinstance(image, ImageBlock)
    assert image.image_url == "https://status.example.com/images/42.png" and "DALL·E 3" in (image.alt_text or "")


def test_long_texts_are_cut_to_slack_limits(receiver: Receiver):
    long = message(title="T" * 400, body="b & " * 2000, example="e" * 10_000, since="s" * 3000,
                   regions=tuple(f"region-{i}" for i in range(500)), test=True, event="test")
    webhook_sender(receiver.url).send(long)
    blocks = receiver.requests[0].json()["blocks"]
    assert_within_limits(blocks)
    header, section, context, _actions = parsed(blocks)
    assert isinstance(header, HeaderBlock) and header.text.text.startswith("🧪 [TEST] TTT")
    assert len(header.text.text) == 150 and header.text.text.endswith("…")
    assert isinstance(section, SectionBlock) and section.text is not None
    assert section.text.text.endswith("…") and "&am…" not in section.text.text
    assert isinstance(context, ContextBlock) and len(context.elements[0].text) == 500


def test_webhook_resolve_and_test_marks(receiver: Receiver):
    hook = webhook_sender(receiver.url)
    hook.send(message(event="resolve"))
    hook.send(message(event="test", test=True))
    resolved, test = (r.json()["blocks"][0]["text"]["text"] for r in receiver.requests)
    assert resolved == "✅ DALL·E 3: major outage — resolved"
    assert test == "🧪 [TEST] DALL·E 3: major outage — test"


@pytest.mark.parametrize(("status", "said"), [(404, "no_service"), (404, "channel_not_found"), (403, "invalid_token"),
                                              (403, "action_prohibited"), (410, "channel_is_archived"), (400, "invalid_payload")])
def test_webhook_refusals_are_permanent(receiver: Receiver, status: int, said: str):
    receiver.reply(Reply(status, said))
    with pytest.raises(PermanentError) as caught:
        webhook_sender(receiver.url + HOOK_PATH).send(message())
    assert caught.value.status == f"HTTP {status}"
    assert said in caught.value.reason and "slack webhook at 127.0.0.1" in caught.value.reason
    assert_no_secrets(caught.value)


def test_webhook_server_errors_and_rate_limits_are_temporary(receiver: Receiver):
    hook = webhook_sender(receiver.url + HOOK_PATH)
    receiver.reply(Reply(500, "rollup_error"), Reply(429, "rate limited", {"Retry-After": "7"}))
    with pytest.raises(TemporaryError) as first:
        hook.send(message())
    with pytest.raises(TemporaryError) as second:
        hook.send(message())
    assert first.value.status == "HTTP 500"
    assert second.value.retry_after == 7


def test_webhook_on_a_private_address_is_refused_by_default(receiver: Receiver):
    with pytest.raises(PermanentError, match="non-public address") as caught:
        webhook_sender(receiver.url + HOOK_PATH, allow=False).send(message())
    assert receiver.requests == []
    assert_no_secrets(caught.value)


def test_a_hanging_webhook_is_cut_off(receiver: Receiver):
    receiver.reply(Reply(hang=30))
    started = time.monotonic()
    with pytest.raises(TemporaryError):
        webhook_sender(receiver.url, timeout="1s").send(message())
    assert time.monotonic() - started < 1 + 3


# -- bot token: a fake of the Web API -----------------------------------------------------------------


class FakeSlackAPI:
    """chat.postMessage and chat.update as Slack answers them; ``errors`` scripts ``"ok": false`` answers."""

    def __init__(self) -> None:
        self._ts = (f"1714564800.{n:06d}" for n in itertools.count(100))
        self.errors: dict[str, str] = {}

    def __call__(self, request: Request) -> Reply:
        method = request.path.rsplit("/", 1)[-1]
        body = request.json()
        if method in self.errors:
            return Reply(200, {"ok": False, "error": self.errors[method]})
        if method == "chat.postMessage":
            return Reply(200, {"ok": True, "channel": "C0ALERTS", "ts": next(self._ts), "message": {"text": body["text"]}})
        if method == "chat.update":
            return Reply(200, {"ok": True, "channel": body["channel"], "ts": body["ts"], "text": body["text"]})
        return Reply(200, {"ok": False, "error": "unknown_method"})


@pytest.fixture
def slack_api() -> Iterator[tuple[Receiver, FakeSlackAPI]]:
    fake = FakeSlackAPI()
    with Receiver(fake) as running:
        yield running, fake


def test_bot_threads_later_messages_and_edits_the_first_on_resolve(slack_api: tuple[Receiver, FakeSlackAPI]):
    api, _fake = slack_api
    bot = bot_sender(api.url + "/api")
    first = bot.send(message())
    assert first.status == "200 ok"
    assert first.thread == {"ts": "1714564800.000100", "channel": "C0ALERTS"}

    update = bot.send(message(event="escalate", impact="critical", thread=first.thread))
    resolve = bot.send(message(event="resolve", thread=update.thread))
    assert update.thread == resolve.thread == first.thread

    paths = [r.path for r in api.requests]
    assert paths == ["/api/chat.postMessage", "/api/chat.postMessage", "/api/chat.update", "/api/chat.postMessage"]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in api.requests)
    opened, escalated, edited, resolved = (r.json() for r in api.requests)
    assert opened["channel"] == "#alerts" and "thread_ts" not in opened
    assert escalated["channel"] == "C0ALERTS" and escalated["thread_ts"] == "1714564800.000100"
    assert escalated["reply_broadcast"] is True  # an escalation shows in the channel too
    assert edited["channel"] == "C0ALERTS" and edited["ts"] == "1714564800.000100"
    assert edited["blocks"][0]["text"]["text"] == "✅ DALL·E 3: major outage — resolved"
    assert resolved["thread_ts"] == "1714564800.000100" and resolved["reply_broadcast"] is False
    for body in (opened, escalated, edited, resolved):
        assert_within_limits(body["blocks"])
        parsed(body["blocks"])


def test_a_resolve_is_posted_even_if_the_first_message_cannot_be_edited(slack_api: tuple[Receiver, FakeSlackAPI]):
    api, fake = slack_api
    fake.errors["chat.update"] = "message_not_found"
    receipt = bot_sender(api.url).send(message(event="resolve", thread={"ts": "1.000001", "channel": "C0ALERTS"}))
    assert "message_not_found" in receipt.detail
    assert [r.path for r in api.requests] == ["/chat.update", "/chat.postMessage"]


@pytest.mark.parametrize("error", ["invalid_auth", "not_authed", "account_inactive", "token_revoked",
                                   "channel_not_found", "is_archived", "not_in_channel"])
def test_api_refusals_are_permanent(slack_api: tuple[Receiver, FakeSlackAPI], error: str):
    api, fake = slack_api
    fake.errors["chat.postMessage"] = error
    with pytest.raises(PermanentError) as caught:
        bot_sender(api.url).send(message())
    assert error in caught.value.reason
    assert_no_secrets(caught.value)


def test_api_rate_limits_are_temporary(slack_api: tuple[Receiver, FakeSlackAPI]):
    api, fake = slack_api
    bot = bot_sender(api.url)
    api.reply(Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}))
    with pytest.raises(TemporaryError) as by_status:
        bot.send(message())
    assert by_status.value.retry_after == 7 and by_status.value.status == "HTTP 429"
    fake.errors["chat.postMessage"] = "ratelimited"
    with pytest.raises(TemporaryError, match="ratelimited"):
        bot.send(message())


def test_api_answers_that_are_not_json_are_temporary(slack_api: tuple[Receiver, FakeSlackAPI]):
    api, _fake = slack_api
    api.reply(Reply(200, "<html>proxy says hi</html>"))
    with pytest.raises(TemporaryError, match="not a JSON object"):
        bot_sender(api.url).send(message())


def test_a_hanging_api_is_cut_off_within_the_whole_timeout(slack_api: tuple[Receiver, FakeSlackAPI]):
    api, _fake = slack_api
    api.reply(Reply(body={"ok": True}, hang=0.7), Reply(hang=30))  # chat.update answers slowly, chat.postMessage never
    started = time.monotonic()
    with pytest.raises(TemporaryError, match="chat.postMessage"):
        bot_sender(api.url, timeout="1s").send(message(event="resolve", thread={"ts": "1.000001", "channel": "C1"}))
    assert time.monotonic() - started < 1 + 3
    assert [r.path for r in api.requests] == ["/chat.update", "/chat.postMessage"]


def test_no_secret_in_api_errors(slack_api: tuple[Receiver, FakeSlackAPI]):
    api, _fake = slack_api
    api.reply(Reply(401, f"bad token {TOKEN}"), Reply(500, f"token={TOKEN}"))
    errors: list[DeliveryError] = []
    for _ in range(2):
        with pytest.raises(DeliveryError) as caught:
            bot_sender(api.url).send(message())
        errors.append(caught.value)
    assert isinstance(errors[0], PermanentError) and isinstance(errors[1], TemporaryError)
    for error in errors:
        assert_no_secrets(error)


def assert_no_secrets(error: DeliveryError) -> None:
    for text in (str(error), error.reason, str(error.status)):
        for secret in (TOKEN, HOOK_PATH, "T0SECRET", "webhook-path-secret"):
            assert secret not in text
