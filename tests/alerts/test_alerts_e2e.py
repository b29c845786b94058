"""End to end: the monitor probes the emulator through an outage, a flap of the same outage and a
quality drift; a real webhook receiver and a real SMTP server on loopback each get exactly one
message per transition (opened, resolved, reopened -- never a second "opened" for the flap),
each within seconds of the transition, the emails threaded and the quality one with its image."""

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
        # an outage, opened and resolved
        emulator.faults.set("openai", "server_error", service="svc")
        wait_for(lambda: _events(receiver) == ["open"], 30, "the webhook's 'open'")
        emulator.faults.clear("openai")
        wait_for(lambda: _events(receiver) == ["open", "resolve"], 40, "the webhook's 'resolve'")
        # the same outage again soon after: a flap is the same incident, reopened -- not a new "open"
        emulator.faults.set("openai", "server_error", service="svc")
        wait_for(lambda: _events(receiver)[2:] == ["reopen"], 30, "the webhook's 'reopen'")
        emulator.faults.clear("openai")
        wait_for(lambda: _events(receiver)[2:] == ["reopen", "resolve"], 40, "the second 'resolve'")
        # a quality drift: blank images
        emulator.faults.set("openai", "blank_image", service="svc")
        wait_for(lambda: _events(receiver)[4:] == ["open"], 30, "the quality incident's 'open'")
        emulator.faults.clear("openai")
        wait_for(lambda: _events(receiver)[4:] == ["open", "resolve"], 40, "the quality incident's 'resolve'")
        wait_for(lambda: len(_mails(inbox)) == 6, 10, "the emails")
        time.sleep(2)  # nothing more arrives
    finally:
        runtime.stop()
        receiver.stop()
        smtp.stop()
    by_incident: dict = {}
    for request in receiver.requests:
        body = request.json()
        if body["event"] in WATCHED:
            by_incident.setdefault((body["incident"]["id"], body["incident"]["kind"]), []).append(body["event"])
        assert "sk-e2e-secret-000000" not in request.body.decode()
    assert sorted(by_incident.values()) == [["open", "resolve"], ["open", "resolve", "reopen", "resolve"]], by_incident
    assert {kind for _, kind in by_incident} == {"outage", "quality"}
    keys = [r.headers["x-genstatus-delivery"] for r in receiver.requests]
    assert len(keys) == len(set(keys))  # no delivery twice
    mails = _mails(inbox)
    assert [m["Subject"].rsplit("— ", 1)[1] for m in mails] == ["opened", "resolved", "reopened", "resolved", "opened",
                                                                "resolved"]
    assert mails[1]["In-Reply-To"] == mails[0]["Message-ID"] and mails[3]["In-Reply-To"] == mails[0]["Message-ID"]
    assert mails[5]["In-Reply-To"] == mails[4]["Message-ID"]
    assert mails[4].get_body(("related",)) is not None  # the quality incident's email shows the blank output inline
    with Session(runtime.engine) as session:
        rows = session.execute(select(AlertOutbox.event, AlertOutbox.created_at, AlertDelivery.channel_id, AlertDelivery.sent_at)
                               .join(AlertDelivery, AlertDelivery.outbox_id == AlertOutbox.id)
                               .where(AlertOutbox.event.in_(WATCHED))).all()
    assert len(rows) == 2 * 6
    allowance = DELIVERY_WITHIN_S + lateness_of_a_sleeping_thread()
    for event, written, channel, sent in rows:
        assert sent is not None and (sent - written).total_seconds() <= allowance, (event, channel, sent - written)
    assert all(isinstance(sent, datetime) and sent.tzinfo == UTC for *_, sent in rows)


WATCHED = ("open", "reopen", "resolve")


def _mails(inbox: Inbox) -> list:
    """The opened, reopened and resolved emails (the "recovering" updates in between are not counted here)."""
    return [mail for _, mail in inbox.messages if mail["Subject"].endswith(("— opened", "— reopened", "— resolved"))]


def _events(receiver: Receiver) -> list[str]:
    return [r.json()["event"] for r in receiver.requests if r.path == "/alerts" and r.json()["event"] in WATCHED]


def wait_for(predicate, within: float, what: str):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {within}s waiting for {what}")
