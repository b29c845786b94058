"""The console channel (the log) and the Apprise channel against a local HTTP receiver."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from monitor.alerts.channels.apprise import AppriseSender
from monitor.alerts.channels.base import PermanentError, TemporaryError
from monitor.alerts.channels.console import ConsoleSender
from monitor.alerts.message import Message
from monitor.config import SiteConfig
from monitor.config.alerts import AppriseChannel, ConsoleChannel

SITE = SiteConfig(title="Image Generation Status", url="https://status.example.com")
TOKEN = "tok3n-abc123-secret"


def message(**overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "delivery_key": "outbox-7-apprise", "event": "open", "title": "DALL·E 3: major outage",
        "body": "Confirmed outage in eu-west: server_error (3); e.g. HTTP 503: upstream connect error.",
        "impact": "major", "url": "https://status.example.com/#incident-7",
    }
    fields.update(overrides)
    return Message(**fields)


def test_console_logs_the_text(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="genstatus.alerts.console")
    msg = message()
    receipt = ConsoleSender(ConsoleChannel(id="console", type="console"), SITE).send(msg)
    assert receipt.status == "logged"
    [record] = [r for r in caplog.records if r.name == "genstatus.alerts.console"]
    assert record.levelno == logging.WARNING
    assert msg.text().rstrip("\n") in record.getMessage()
    assert record.getMessage().startswith("🔴 DALL·E 3: major outage — opened")


# -- Apprise: json:// URLs posting to a receiver on loopback ------------------------------------------


class Receiver(ThreadingHTTPServer):
    status = 200
    delay = 0.0

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.posts: list[tuple[str, dict[str, Any]]] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(self.server.delay)
        self.server.posts.append((self.path, json.loads(body)))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def sender(*urls: str, timeout: str = "5s") -> AppriseSender:
    return AppriseSender(AppriseChannel.model_validate({"id": "apprise", "type": "apprise", "urls": list(urls),
                                                        "timeout": timeout}), SITE)


def test_apprise_delivers_title_and_body(receiver: Receiver) -> None:
    msg = message()
    receipt = sender(f"json://127.0.0.1:{receiver.port}/hook/{TOKEN}").send(msg)
    assert receipt.status == "sent"
    [(path, payload)] = receiver.posts
    assert path == f"/hook/{TOKEN}"
    assert payload["title"] == msg.headline
    assert payload["message"].startswith("Confirmed outage in eu-west")  # the headline is the title, not repeated
    assert "https://status.example.com/#incident-7" in payload["message"]
    assert payload["type"] == "failure"


def test_apprise_resolved_is_a_success(receiver: Receiver) -> None:
    sender(f"json://127.0.0.1:{receiver.port}/hook").send(message(event="resolve"))
    [(_, payload)] = receiver.posts
    assert payload["type"] == "success" and payload["title"].endswith("resolved")


def test_apprise_failure_is_temporary_and_hides_the_url(receiver: Receiver) -> None:
    receiver.status = 500
    url = f"json://127.0.0.1:{receiver.port}/hook/{TOKEN}"
    with pytest.raises(TemporaryError) as caught:
        sender(url).send(message())
    assert caught.value.reason == "one or more Apprise URLs failed; see the log"
    assert TOKEN not in str(caught.value) and "127.0.0.1" not in str(caught.value)
    assert len(receiver.posts) == 1


def test_apprise_one_good_one_failing_url_is_temporary(receiver: Receiver) -> None:
    receiver.status = 500
    with pytest.raises(TemporaryError):
        sender(f"json://127.0.0.1:{receiver.port}/a", f"json://127.0.0.1:{receiver.port}/b").send(message())
    assert sorted(path for path, _ in receiver.posts) == ["/a", "/b"]


def test_apprise_slow_receiver_is_cut_off(receiver: Receiver) -> None:
    receiver.delay = 3.0
    start = time.monotonic()
    with pytest.raises(TemporaryError):
        sender(f"json://127.0.0.1:{receiver.port}/slow/{TOKEN}", timeout="500ms").send(message())
    assert time.monotonic() - start < 2.0


def test_apprise_invalid_url_is_permanent_and_hidden() -> None:
    with pytest.raises(PermanentError) as caught:
        sender(f"nosuchservice://{TOKEN}@example.com").send(message())
    assert TOKEN not in str(caught.value) and "#1" in caught.value.reason


def test_apprise_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # makes `import apprise` raise ImportError
    with pytest.raises(PermanentError, match=r"pip install 'genstatus\[apprise\]'"):
        sender("json://127.0.0.1:9/hook").send(message())
