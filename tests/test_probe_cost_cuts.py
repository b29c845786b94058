"""What the per-probe CPU cuts must keep: the emulator serves persistent HTTP/1.1 connections like a
provider (and still ends them when asked or stopped), probe clients share one verifying TLS context,
and the store's prebuilt statements prune and read exactly as before."""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from monitor.config import Config, ServiceConfig
from monitor.enums import Outcome, ProbeKind
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.record import ResultRecord
from monitor.store.references import recent_outputs
from monitor.store.results import THUMBNAILS_KEPT, ResultStore
from probes.emulator.server import EmulatorServer
from probes.http import make_client, origin_of, shared_ssl_context


def _exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send ``request`` and read one whole response (headers plus ``Content-Length`` bytes)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            return data
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head


@pytest.fixture
def emulator():
    with EmulatorServer() as server:
        yield server


def _connect(server: EmulatorServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def test_emulator_keeps_the_connection_across_requests_with_unread_bodies(emulator: EmulatorServer):
    """A body the emulator never reads (an unknown path answers 404 at once), plain or chunked, is
    drained, so the next request on the same connection is answered rather than mistaken for it."""
    with _connect(emulator) as sock:
        body = b'{"prompt": "' + b"x" * 200_000 + b'"}'
        first = _exchange(sock, b"POST /nowhere/v1 HTTP/1.1\r\nHost: e\r\nContent-Type: application/json\r\n"
                          b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert first.startswith(b"HTTP/1.1 404") and b"connection: close" not in first.lower()
        chunked = _exchange(sock, b"POST /nowhere/v1 HTTP/1.1\r\nHost: e\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        assert chunked.startswith(b"HTTP/1.1 404")
        faults = _exchange(sock, b"GET /_faults HTTP/1.1\r\nHost: e\r\n\r\n")
        assert faults.startswith(b"HTTP/1.1 200")


def test_emulator_closes_when_the_client_asks_and_when_it_stops():
    with EmulatorServer() as server:
        with _connect(server) as sock:
            head = _exchange(sock, b"GET /_faults HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n")
            assert b"connection: close" in head.lower()
            assert sock.recv(1) == b""  # closed after the answer
        idle = _connect(server)
        assert _exchange(idle, b"GET /_faults HTTP/1.1\r\nHost: e\r\n\r\n").startswith(b"HTTP/1.1 200")
    with idle:  # the server stopped: its kept-alive connection ends with it
        try:
            assert idle.recv(1) == b""
        except ConnectionResetError:
            pass


def test_httpx_reuses_one_connection_to_the_emulator(emulator: EmulatorServer):
    service = ServiceConfig.model_validate({"id": "dalle3", "provider": "openai", "api_key": "sk-test", "canaries": ["c"],
                                            "base_url": emulator.base_url("openai")})
    with make_client(service) as client:
        for _ in range(2):  # a POST whose body the emulator never reads, then a GET on the same connection
            assert client.post(f"{emulator.url}/nowhere", content=b"x" * 100_000).status_code == 404
            assert client.get(f"{emulator.url}/_faults").json() == {"faults": {}}
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert len(pool.connections) == 1


def test_probe_clients_share_one_verifying_tls_context():
    services = [ServiceConfig.model_validate({"id": f"s{i}", "provider": "openai", "api_key": "sk-test", "canaries": ["c"]})
                for i in range(2)]
    contexts = []
    for service in services:
        with make_client(service) as client:
            contexts.append(client._transport._pool._ssl_context)  # type: ignore[attr-defined]
    assert contexts[0] is contexts[1] is shared_ssl_context()
    assert contexts[0].verify_mode == ssl.CERT_REQUIRED and contexts[0].check_hostname
    assert contexts[0].cert_store_stats()["x509_ca"] > 0  # a CA bundle is loaded


def test_origin_of_is_the_same_for_text_and_parsed_urls():
    for url in ("https://api.openai.com/v1", "http://127.0.0.1:8080/x", "https://[::1]:443/y", "http://h:80"):
        assert origin_of(url) == origin_of(httpx.URL(url))
    assert origin_of("http://h:80") == "http://h" and origin_of("https://[::1]:8443/") == "https://[::1]:8443"


def _record(at: datetime, canary: str | None, marker: int) -> ResultRecord:
    record = ResultRecord(service="dalle3", canary=canary, region="eu", kind=ProbeKind.CANARY, started_at=at,
                          finished_at=at + timedelta(seconds=1), outcome=Outcome.OK, latency_ms={"total": 1000.0})
    record.thumbnail, record.seed, record.image_sha256 = bytes([marker]) * 20, marker, str(marker)
    record.hashes = {"phash": f"{marker:016x}", "dhash": "0" * 16}
    return record


@pytest.mark.parametrize("canary", ["still-life", None])
def test_prebuilt_pruning_keeps_the_newest_thumbnails_per_canary(tmp_path: Path, canary: str | None):
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        upgrade(engine)
        store = ResultStore(engine)
        store.sync_catalog(Config.model_validate({
            "canaries": [{"id": "still-life", "prompt": "a red apple"}, {"id": "fox", "prompt": "a fox"}],
            "services": [{"id": "dalle3", "provider": "openai", "canaries": ["still-life", "fox"]}]}))
        t0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
        for i in range(THUMBNAILS_KEPT + 4):
            store.record(_record(t0 + timedelta(minutes=i), canary, i))
            store.record(_record(t0 + timedelta(minutes=i, seconds=30), "fox", 100 + i))  # another canary's
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT canary_id, thumbnail FROM result_images").all()
        mine = sorted(thumb[0] for c, thumb in rows if c == canary)
        assert mine == list(range(4, THUMBNAILS_KEPT + 4))  # exactly the newest ones
        assert sum(1 for c, _ in rows if c == "fox") == THUMBNAILS_KEPT
        if canary is not None:
            assert [r.seed for r in recent_outputs(engine, "dalle3", canary, limit=3)] == [15, 14, 13]
        assert [r.seed for r in recent_outputs(engine, "dalle3", "fox")] == [115, 114, 113, 112, 111]
    finally:
        engine.dispose()
