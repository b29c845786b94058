"""The run's deadline holds on the wall clock against endpoints that trickle or stall.

Each hostile endpoint is a small raw-socket server on loopback that sends its answer a byte at a
time (or stops half way): before the deadline was enforced per socket operation, trickled headers
kept a 5 s probe running for minutes, because every byte restarted httpx's read timeout.  Each
case asserts the run ends as ``timeout`` soon after its deadline, while the server would have gone
on for far longer (``TRICKLE_FOR_S``).
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from monitor.config import CanaryConfig, ServiceConfig
from monitor.enums import Outcome
from probes.base import ProbeContext
from probes.deadline import until
from probes.download import download_image
from probes.failure import DeadlineExceeded
from probes.http import make_client
from probes.registry import adapter_class

DEADLINE_S = 1.5
#: how long after the deadline a run may still end: thread scheduling on a busy 2-core machine
SLACK_S = 2.0
#: how long each hostile server would keep going if nobody cut it off
TRICKLE_FOR_S = 30.0
STEP_S = 0.05
CANARY = CanaryConfig(id="canary", prompt="a red apple", size="64x64", seed=7)


def trickle(sock: socket.socket, data: bytes) -> None:
    """Send ``data`` one byte every ``STEP_S``, for at most ``TRICKLE_FOR_S``."""
    stop = time.monotonic() + TRICKLE_FOR_S
    for byte in data:
        if time.monotonic() > stop:
            return
        sock.sendall(bytes([byte]))
        time.sleep(STEP_S)


def stall() -> None:
    time.sleep(TRICKLE_FOR_S)


def read_request(rfile) -> tuple[str, str]:
    """The method and path of an HTTP/1.1 request; its body is read and ignored."""
    method, path, _ = rfile.readline().decode("latin-1").split(" ", 2)
    length = 0
    while (line := rfile.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    rfile.read(length)
    return method, path


def json_head(length: int) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode()


class Hostile(socketserver.BaseRequestHandler):
    """Scripted per path (the last path segment names the behaviour)."""

    def handle(self) -> None:
        rfile = self.request.makefile("rb")
        try:
            method, path = read_request(rfile)
            behaviour = path.rstrip("/").rsplit("/", 1)[-1]
            getattr(self, behaviour.replace("-", "_"), self.headers_trickled)(method, path)
        except (OSError, ValueError):
            pass  # the client hung up: that is the point

    def headers_trickled(self, method: str, path: str) -> None:
        trickle(self.request, b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000 + b"\r\n\r\n")

    def body_trickled(self, method: str, path: str) -> None:
        body = b'{"data": [{"b64_json": "' + b"A" * 10_000 + b'"}]}'
        self.request.sendall(json_head(len(body)))
        trickle(self.request, body)

    def body_stalled(self, method: str, path: str) -> None:
        body = b'{"data": [{"b64_json": "' + b"A" * 10_000 + b'"}]}'
        self.request.sendall(json_head(len(body)))
        trickle(self.request, body[:20])  # a second of progress, then nothing
        stall()

    def predictions(self, method: str, path: str) -> None:
        """Replicate's create call: accepted at once, to be polled at ``poll_trickled``."""
        port = self.server.server_address[1]
        answer = json.dumps({"id": "p1", "status": "starting", "urls": {
            "get": f"http://127.0.0.1:{port}/v1/poll_trickled", "cancel": f"http://127.0.0.1:{port}/v1/cancel"}})
        self.request.sendall(json_head(len(answer)) + answer.encode())

    def poll_trickled(self, method: str, path: str) -> None:
        body = json.dumps({"id": "p1", "status": "processing", "logs": "x" * 10_000}).encode()
        self.request.sendall(json_head(len(body)))
        trickle(self.request, body)

    def cancel(self, method: str, path: str) -> None:
        self.server.cancelled.append(path)
        self.request.sendall(json_head(2) + b"{}")

    def image_trickled(self, method: str, path: str) -> None:
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n")
        trickle(self.request, b"\x89PNG\r\n\x1a\n" + b"\0" * 99_992)

    def never_reads(self, method: str, path: str) -> None:
        stall()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Hostile)
        self.cancelled: list[str] = []


@pytest.fixture
def hostile() -> Iterator[Server]:
    server = Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def base_url(server: Server, behaviour: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{behaviour}"


def service(provider: str, url: str, **fields) -> ServiceConfig:
    return ServiceConfig(id="hostile", provider=provider, base_url=url, api_key="sk-test-0123456789",
                         canaries=[CANARY.id], timeout=timedelta(seconds=DEADLINE_S), allow_private_network=True,
                         **fields)


def probe_timed(config: ServiceConfig):
    adapter = adapter_class(config.provider)(config)
    with make_client(config) as client:
        ctx = ProbeContext(config, CANARY, client, seed=CANARY.seed)
        began = time.monotonic()
        result = adapter.probe(ctx)
        return result, time.monotonic() - began


@pytest.mark.parametrize("behaviour", ["headers-trickled", "body-trickled", "body-stalled"])
def test_a_trickling_or_stalling_answer_ends_at_the_deadline(hostile, behaviour):
    result, took = probe_timed(service("openai", base_url(hostile, behaviour)))
    assert result.outcome is Outcome.TIMEOUT, result.error_detail
    assert "deadline of 1.5s exceeded" in (result.error_detail or "")
    assert DEADLINE_S - 0.1 <= took < DEADLINE_S + SLACK_S


def test_trickled_polling_answers_end_at_the_deadline_and_the_job_is_cancelled(hostile):
    config = service("replicate", base_url(hostile, "").rstrip("/"), model="owner/model",
                     options={"wait": 0})
    result, took = probe_timed(config)
    assert result.outcome is Outcome.TIMEOUT, result.error_detail
    assert took < DEADLINE_S + SLACK_S + 3  # + the cancel's own short timeout
    assert hostile.cancelled == ["/v1/cancel"]


def test_a_trickled_image_download_ends_at_the_deadline(hostile):
    config = service("openai", base_url(hostile, ""))
    with make_client(config) as client:
        ctx = ProbeContext(config, CANARY, client)
        began = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="image download"):
            download_image(ctx, base_url(hostile, "image-trickled"))
    assert time.monotonic() - began < DEADLINE_S + SLACK_S


def test_a_receiver_that_never_reads_cannot_hold_an_upload_past_the_deadline(hostile):
    config = service("openai", base_url(hostile, "never-reads"))
    with make_client(config) as client:
        began = time.monotonic()
        with until(began + DEADLINE_S), pytest.raises(httpx.TimeoutException):
            # far more than the socket buffers hold: only the deadline ends it
            client.post(base_url(hostile, "never-reads"), content=b"x" * (64 * 1024 * 1024), timeout=60)
    assert time.monotonic() - began < DEADLINE_S + SLACK_S


def test_without_a_deadline_in_force_httpx_timeouts_apply_unchanged(hostile):
    config = service("openai", base_url(hostile, "headers-trickled"))
    with make_client(config) as client:
        began = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            # a trickle restarts the read timeout: only a deadline bounds it, so this one stalls instead
            client.get(base_url(hostile, "body-stalled"), timeout=httpx.Timeout(5, read=1.5))
    assert time.monotonic() - began >= 1.5
