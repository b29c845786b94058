"""The webhook channel against a real HTTP receiver on loopback: body, headers, signature, failures."""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from monitor.alerts.channels import http as alert_http
from monitor.alerts.channels.base import DeliveryError, PermanentError, TemporaryError
from monitor.alerts.channels.http import post_json, retry_after
from monitor.alerts.channels.webhook import WebhookSender
from monitor.alerts.message import Message
from monitor.config import SiteConfig
from monitor.config.alerts import WebhookChannel
from tests.alerts.receiver import Receiver, Reply, receiver  # noqa: F401

HMAC_SECRET = "whsec-0123456789-very-secret"
AUTH = "Bearer hook-auth-token-42"
SECRET_PATH = "/hooks/T0SECRET/B0SECRET/xyzzy-path-secret"


def message(**changes: Any) -> Message:
    fields: dict[str, Any] = dict(
        delivery_key="delivery-42-open-hook", event="open", title="DALL·E 3: major outage",
        body="12 of 15 probes failed in eu-west and us-east.", impact="major", incident_id=42,
        service="dalle3", service_name="DALL·E 3", group="openai", kind="outage", regions=("eu-west", "us-east"),
        started_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC), since="2024-05-01 14:00 CEST (12:00 UTC)",
        outcomes=(("server_error", 12), ("timeout", 3)), example="HTTP 500: upstream overloaded",
        url="https://status.example.com/incidents/42",
    )
    return Message(**(fields | changes))


def sender(url: str, *, secret: str | None = HMAC_SECRET, allow: bool = True, timeout: str = "2s",
           headers: dict[str, str] | None = None) -> WebhookSender:
    config = WebhookChannel.model_validate({
        "id": "ops-hook", "type": "webhook", "url": url, "secret": secret, "allow_private_network": allow,
        "timeout": timeout, "headers": {"Authorization": AUTH} if headers is None else headers,
    })
    return WebhookSender(config, SiteConfig(title="Example Status", url="https://status.example.com"))


def assert_no_secrets(*texts: object) -> None:
    for text in texts:
        for secret in (SECRET_PATH, "T0SECRET", "xyzzy-path-secret", "qtoken-secret", HMAC_SECRET, AUTH):
            assert secret not in str(text)


def test_body_headers_and_signature(receiver: Receiver):
    started = time.time()
    receipt = sender(receiver.url + "/hook").send(message())
    assert receipt.status == "200 OK"
    [request] = receiver.requests
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "genstatus/0.1"
    assert request.headers["x-genstatus-delivery"] == "delivery-42-open-hook"
    assert request.headers["x-genstatus-event"] == "open"
    assert request.headers["authorization"] == AUTH
    timestamp = request.headers["x-genstatus-timestamp"]
    assert int(started) - 1 <= int(timestamp) <= time.time() + 1
    expected = hmac.new(HMAC_SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-genstatus-signature"], f"sha256={expected}")

    body = request.json()
    assert body == {
        "schema": "genstatus.alert/v1",
        "delivery": "delivery-42-open-hook",
        "event": "open",
        "test": False,
        "site": {"title": "Example Status", "url": "https://status.example.com"},
        "incident": {
            "id": 42, "service": "dalle3", "service_name": "DALL·E 3", "group": "openai", "kind": "outage",
            "impact": "major", "audience": "public", "regions": ["eu-west", "us-east"],
            "started_at": "2024-05-01T12:00:00Z", "since": "2024-05-01 14:00 CEST (12:00 UTC)",
            "url": "https://status.example.com/incidents/42",
        },
        "title": "DALL·E 3: major outage",
        "headline": "DALL·E 3: major outage — opened",
        "text": message().text(),
        "outcomes": {"server_error": 12, "timeout": 3},
        "example": "HTTP 500: upstream overloaded",
        "image_url": None,
        "sent_at": datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def test_a_tampered_body_fails_verification(receiver: Receiver):
    sender(receiver.url).send(message())
    [request] = receiver.requests
    timestamp = request.headers["x-genstatus-timestamp"]
    forged = hmac.new(HMAC_SECRET.encode(), timestamp.encode() + b"." + request.body.replace(b"major", b"minor"),
                      hashlib.sha256).hexdigest()
    assert request.headers["x-genstatus-signature"] != f"sha256={forged}"


def test_no_secret_no_signature_and_reserved_headers_stay_ours(receiver: Receiver):
    hook = sender(receiver.url, secret=None,
                  headers={"X-Genstatus-Event": "forged", "Content-Type": "text/plain", "X-Team": "imaging"})
    hook.send(message(event="test", test=True, incident_id=None))
    [request] = receiver.requests
    assert "x-genstatus-signature" not in request.headers
    assert request.headers["x-genstatus-event"] == "test"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-team"] == "imaging"
    body = request.json()
    assert body["test"] is True and body["incident"]["id"] is None
    assert body["headline"].startswith("[TEST] ")


def test_retries_keep_the_delivery_key(receiver: Receiver):
    hook = sender(receiver.url)
    receiver.reply(Reply(503))
    with pytest.raises(TemporaryError):
        hook.send(message())
    hook.send(message())
    keys = {r.headers["x-genstatus-delivery"] for r in receiver.requests}
    assert keys == {"delivery-42-open-hook"} and len(receiver.requests) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_server_errors_are_temporary(receiver: Receiver, status: int):
    receiver.reply(Reply(status, b"try later"))
    with pytest.raises(TemporaryError) as caught:
        sender(receiver.url).send(message())
    assert caught.value.status == f"HTTP {status}"
    assert not caught.value.permanent
    assert "try later" in caught.value.reason


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_client_errors_are_permanent(receiver: Receiver, status: int):
    receiver.reply(Reply(status))
    with pytest.raises(PermanentError) as caught:
        sender(receiver.url).send(message())
    assert caught.value.status == f"HTTP {status}"
    assert caught.value.permanent


def test_429_retry_after_seconds(receiver: Receiver):
    receiver.reply(Reply(429, headers={"Retry-After": "7"}))
    with pytest.raises(TemporaryError) as caught:
        sender(receiver.url).send(message())
    assert caught.value.retry_after == 7
    assert caught.value.status == "HTTP 429"


def test_429_retry_after_http_date(receiver: Receiver):
    later = datetime.now(UTC) + timedelta(seconds=120)
    receiver.reply(Reply(429, headers={"Retry-After": format_datetime(later, usegmt=True)}))
    with pytest.raises(TemporaryError) as caught:
        sender(receiver.url).send(message())
    assert caught.value.retry_after is not None and 100 <= caught.value.retry_after <= 121


def test_retry_after_parsing():
    assert retry_after("7") == 7
    assert retry_after(None) is None
    assert retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past: now


def test_redirects_are_not_followed(receiver: Receiver):
    receiver.reply(Reply(302, headers={"Location": receiver.url + "/elsewhere"}))
    with pytest.raises(PermanentError) as caught:
        sender(receiver.url).send(message())
    assert caught.value.status == "HTTP 302"
    assert [r.path for r in receiver.requests] == ["/"]


def test_a_hanging_receiver_is_cut_off_at_the_timeout(receiver: Receiver):
    receiver.reply(Reply(hang=30))
    started = time.monotonic()
    with pytest.raises(TemporaryError) as caught:
        sender(receiver.url, timeout="1s").send(message())
    elapsed = time.monotonic() - started
    assert 0.8 <= elapsed < 1 + 3
    assert "did not answer within 1s" in caught.value.reason


def test_a_closed_port_is_temporary():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TemporaryError, match="cannot post to webhook at 127.0.0.1"):
        sender(f"http://127.0.0.1:{port}/hook").send(message())


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_private_addresses_are_refused_unless_allowed(receiver: Receiver, host: str):
    url = receiver.url.replace("127.0.0.1", host) + SECRET_PATH
    with pytest.raises(PermanentError) as caught:
        sender(url, allow=False).send(message())
    reason = caught.value.reason
    assert f"webhook at {host}" in reason and "non-public address" in reason
    assert "allow_private_network: true" in reason and "'ops-hook'" in reason
    assert receiver.requests == []
    assert_no_secrets(reason)
    assert sender(url, allow=True).send(message()).status == "200 OK"


def test_no_secret_in_errors_or_receipts(receiver: Receiver):
    url = receiver.url + SECRET_PATH + "?token=qtoken-secret"
    echo = f"Cannot POST {SECRET_PATH}?token=qtoken-secret (auth {AUTH}, key {HMAC_SECRET})"
    hook = sender(url)
    errors: list[DeliveryError] = []
    for reply in (Reply(404, echo), Reply(500, echo), Reply(429, echo, {"Retry-After": "1"})):
        receiver.reply(reply)
        with pytest.raises(DeliveryError) as caught:
            hook.send(message())
        errors.append(caught.value)
    receiver.reply(Reply(200, echo))
    receipt = hook.send(message())
    assert "webhook at 127.0.0.1" in errors[0].reason and "[redacted]" in errors[0].reason
    for error in errors:
        assert_no_secrets(error, error.reason, error.status, repr(error.args))
    assert_no_secrets(receipt)


def test_a_url_that_is_not_http_is_permanent():
    with pytest.raises(PermanentError, match="must be an http or https URL") as caught:
        sender("ftp://example.com" + SECRET_PATH).send(message())
    assert_no_secrets(caught.value)


def test_the_connection_is_pinned_to_the_checked_address(monkeypatch: pytest.MonkeyPatch):
    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "hooks.example.com"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    monkeypatch.setattr(alert_http.socket, "getaddrinfo", resolve)
    target, headers, extensions = alert_http._pinned(httpx.URL("https://hooks.example.com/x"), False, "webhook", "ops")
    assert str(target) == "https://93.184.216.34/x"
    assert headers == {"Host": "hooks.example.com"}
    assert extensions == {"sni_hostname": "hooks.example.com"}


def test_one_private_address_among_public_ones_is_refused(monkeypatch: pytest.MonkeyPatch):
    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))]

    monkeypatch.setattr(alert_http.socket, "getaddrinfo", resolve)
    with pytest.raises(PermanentError, match="non-public address 10.0.0.5"):
        post_json("https://rebind.example.com/x", {}, what="webhook", channel_id="ops", timeout=2)
