"""The PagerDuty channel against a real HTTP server on loopback answering as the Events API v2 does."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.alerts.channels.base import DeliveryError, PermanentError, TemporaryError
from monitor.alerts.channels.pagerduty import PagerDutySender
from monitor.alerts.message import Message
from monitor.config import SiteConfig
from monitor.config.alerts import PagerDutyChannel
from tests.alerts.receiver import Receiver, Reply, Request, receiver  # noqa: F401

ROUTING_KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY01"


def message(**changes: Any) -> Message:
    fields: dict[str, Any] = dict(
        delivery_key="delivery-42-open-pd", event="open", title="DALL·E 3: major outage",
        body="12 of 15 probes failed in eu-west and us-east.", impact="major", incident_id=42,
        service="dalle3", service_name="DALL·E 3", group="openai", kind="outage", regions=("eu-west", "us-east"),
        started_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC), since="2024-05-01 14:00 CEST (12:00 UTC)",
        outcomes=(("server_error", 12), ("timeout", 3)), example="HTTP 500: upstream overloaded",
        url="https://status.example.com/incidents/42",
    )
    return Message(**(fields | changes))


def accepted(request: Request) -> Reply:
    return Reply(202, {"status": "success", "message": "Event processed", "dedup_key": request.json()["dedup_key"]})


@pytest.fixture
def events_api() -> Any:
    with Receiver(accepted) as running:
        yield running


def sender(url: str, *, allow: bool = True, timeout: str = "2s") -> PagerDutySender:
    config = PagerDutyChannel.model_validate({"id": "oncall", "type": "pagerduty", "routing_key": ROUTING_KEY,
                                              "url": url + "/v2/enqueue", "timeout": timeout})
    return PagerDutySender(config, SiteConfig(url="https://status.example.com"), allow_private_network=allow)


def test_trigger_event(events_api: Receiver):
    receipt = sender(events_api.url).send(message())
    assert receipt.status == "202 success" and receipt.detail == "genstatus-incident-42"
    [request] = events_api.requests
    assert request.path == "/v2/enqueue" and request.headers["content-type"] == "application/json"
    assert request.json() == {
        "routing_key": ROUTING_KEY,
        "dedup_key": "genstatus-incident-42",
        "event_action": "trigger",
        "client": "genstatus",
        "client_url": "https://status.example.com/incidents/42",
        "links": [{"href": "https://status.example.com/incidents/42", "text": "Incident"}],
        "payload": {
            "summary": "DALL·E 3: major outage — opened",
            "source": "dalle3",
            "severity": "error",
            "timestamp": "2024-05-01T12:00:00Z",
            "component": "dalle3",
            "group": "openai",
            "class": "outage",
            "custom_details": {
                "event": "open",
                "outcomes": {"server_error": 12, "timeout": 3},
                "regions": ["eu-west", "us-east"],
                "since": "2024-05-01 14:00 CEST (12:00 UTC)",
                "example": "HTTP 500: upstream overloaded",
                "details": "12 of 15 probes failed in eu-west and us-east.",
                "audience": "public",
            },
        },
    }


def test_trigger_and_resolve_pair_up(events_api: Receiver):
    pd = sender(events_api.url)
    pd.send(message())
    pd.send(message(event="escalate", impact="critical"))
    pd.send(message(event="resolve"))
    opened, escalated, resolved = (r.json() for r in events_api.requests)
    assert opened["dedup_key"] == escalated["dedup_key"] == resolved["dedup_key"] == "genstatus-incident-42"
    assert escalated["event_action"] == "trigger" and escalated["payload"]["severity"] == "critical"
    assert resolved == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "genstatus-incident-42"}


@pytest.mark.parametrize(("impact", "severity"), [("critical", "critical"), ("major", "error"), ("minor", "warning"),
                                                  ("none", "info")])
def test_severity(events_api: Receiver, impact: str, severity: str):
    sender(events_api.url).send(message(impact=impact))
    assert events_api.requests[0].json()["payload"]["severity"] == severity


def test_a_message_without_incident_dedups_on_its_delivery_key(events_api: Receiver):
    sender(events_api.url).send(message(event="test", test=True, incident_id=None, service=None, url=None,
                                        started_at=None, title="Test alert from genstatus"))
    body = events_api.requests[0].json()
    assert body["dedup_key"] == "delivery-42-open-pd"
    assert body["payload"]["source"] == "genstatus" and body["payload"]["summary"].startswith("[TEST] ")
    assert "links" not in body and body["client_url"] == "https://status.example.com"
    assert body["payload"]["timestamp"].endswith("Z")


def test_summary_is_cut_to_1024_characters(events_api: Receiver):
    sender(events_api.url).send(message(title="x" * 5000))
    summary = events_api.requests[0].json()["payload"]["summary"]
    assert len(summary) == 1024 and summary.endswith("…")


def test_an_invalid_event_is_permanent(receiver: Receiver):
    receiver.reply(Reply(400, {"status": "invalid event", "message": "Event object is invalid",
                               "errors": [f"routing_key {ROUTING_KEY} is invalid"]}))
    with pytest.raises(PermanentError) as caught:
        sender(receiver.url).send(message())
    assert caught.value.status == "HTTP 400" and "Event object is invalid" in caught.value.reason
    assert_no_secrets(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_temporary(receiver: Receiver, status: int):
    receiver.reply(Reply(status, {"status": "error"}))
    with pytest.raises(TemporaryError) as caught:
        sender(receiver.url).send(message())
    assert caught.value.status == f"HTTP {status}"


def test_rate_limit_is_temporary_with_retry_after(receiver: Receiver):
    receiver.reply(Reply(429, {"status": "throttle event", "message": "Requests for this service are arriving too quickly"},
                         {"Retry-After": "7"}))
    with pytest.raises(TemporaryError) as caught:
        sender(receiver.url).send(message())
    assert caught.value.retry_after == 7


def test_a_hanging_receiver_is_cut_off(receiver: Receiver):
    receiver.reply(Reply(hang=30))
    started = time.monotonic()
    with pytest.raises(TemporaryError):
        sender(receiver.url, timeout="1s").send(message())
    assert time.monotonic() - started < 1 + 3


def test_a_private_address_is_refused_by_default(receiver: Receiver):
    with pytest.raises(PermanentError, match="non-public address"):
        sender(receiver.url, allow=False).send(message())
    assert receiver.requests == []


def test_no_routing_key_in_errors(receiver: Receiver):
    echo = {"status": "error", "message": f"routing key {ROUTING_KEY}"}
    for status in (401, 500):
        receiver.reply(Reply(status, echo))
        with pytest.raises(DeliveryError) as caught:
            sender(receiver.url).send(message())
        assert_no_secrets(caught.value)


def assert_no_secrets(error: DeliveryError) -> None:
    for text in (str(error), error.reason, str(error.status)):
        assert ROUTING_KEY not in text
