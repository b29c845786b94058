"""End to end: the monitor probes the emulator, an outage opens and resolves, and a real webhook
receiver and a real SMTP server on loopback each get exactly one "opened" and one "resolved",
each within seconds of the transition."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from datetime import UTC, datetime

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.config import parse_config
from monitor.engine.runtime import MonitorRuntime
from monitor.store.models import AlertDelivery, AlertOutbox
from tests.alerts.receiver import Receiver

pytestmark = pytest.mark.slow
DELIVERY_WITHIN_S = 5.0


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[float, email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.messages.append((time.time(), parsed))  # type: ignore[arg-type]
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lateness_of_a_sleeping_thread(seconds: float = 1.0) -> float:
    """How late a thread wakes from a sleep right now: the machine's own load, measured in this run."""
    began = time.monotonic()
    done = threading.Event()
    threading.Timer(seconds, done.set).start()
    done.wait(seconds + 30)
    return max(0.0, time.monotonic() - began - seconds)


def test_an_outage_reaches_webhook_and_email_once_opened_and_once_resolved(tmp_path, emulator):
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    receiver = Receiver()
    receiver.start()
    config = parse_config(f"""\
database: sqlite:///{tmp_path / 'e2e.db'}
region: test
site: {{url: "https://status.example.com"}}
detection: {{confirm_delay: 1s, recovery_period: 3s, false_incident_budget: 10000}}
canaries: [{{id: apple, prompt: "a red apple", size: 1024x1024}}]
services:
  - {{id: svc, name: Emulated DALL·E, group: OpenAI, provider: openai, model: dall-e-3, canaries: [apple], interval: 2s,
      timeout: 5s, base_url: "{emulator.base_url('openai', service='svc')}", api_key: sk-e2e-secret-000000,
      allow_private_network: true}}
alerts:
  channels:
    - {{id: hook, type: webhook, url: "{receiver.url}/alerts", secret: whsec-e2e-1234, allow_private_network: true}}
    - {{id: mail, type: email, to: [oncall@example.com], smtp: {{host: 127.0.0.1, port: {smtp.port}, starttls: false}}}}
  routes:
    - {{channels: [hook, mail]}}
""", env={})
    runtime = MonitorRuntime(config, detect_every=0.3)
    runtime.start()
    try:
        time.sleep(2.5)
        emulator.faults.set("openai", "server_error", service="svc")
        wait_for(lambda: _events(receiver) == ["open"], 30, "the webhook's 'open'")
        emulator.faults.clear("openai")
        wait_for(lambda: _events(receiver) == ["open", "resolve"], 40, "the webhook's 'resolve'")
        wait_for(lambda: len(_mails(inbox)) == 2, 10, "both emails")
        time.sleep(2)  # nothing more arrives
    finally:
        runtime.stop()
        receiver.stop()
        smtp.stop()
    assert _events(receiver) == ["open", "resolve"]
    opened, resolved = _mails(inbox)
    assert opened["Subject"].endswith("— opened") and resolved["Subject"].endswith("— resolved")
    assert resolved["In-Reply-To"] == opened["Message-ID"]
    for request in receiver.requests:
        assert "sk-e2e-secret-000000" not in request.body.decode()
    with Session(runtime.engine) as session:
        rows = session.execute(select(AlertOutbox.event, AlertOutbox.created_at, AlertDelivery.channel_id, AlertDelivery.sent_at)
                               .join(AlertDelivery, AlertDelivery.outbox_id == AlertOutbox.id)
                               .where(AlertOutbox.event.in_(("open", "resolve")))).all()
    assert sorted((event, channel) for event, _, channel, _ in rows) == [
        ("open", "hook"), ("open", "mail"), ("resolve", "hook"), ("resolve", "mail")]
    allowance = DELIVERY_WITHIN_S + lateness_of_a_sleeping_thread()
    for event, written, channel, sent in rows:
        assert sent is not None and (sent - written).total_seconds() <= allowance, (event, channel, sent - written)
    assert all(isinstance(sent, datetime) and sent.tzinfo == UTC for *_, sent in rows)


def _mails(inbox: Inbox) -> list:
    """The "opened" and "resolved" emails (the "recovering" update in between is not counted here)."""
    return [mail for _, mail in inbox.messages if mail["Subject"].endswith(("— opened", "— resolved"))]


def _events(receiver: Receiver) -> list[str]:
    return [r.json()["event"] for r in receiver.requests if r.path == "/alerts" and r.json()["event"] in ("open", "resolve")]


def wait_for(predicate, within: float, what: str):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {within}s waiting for {what}")
