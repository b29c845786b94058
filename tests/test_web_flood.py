"""A flood of slow visitors never blinds the monitor: the status page has bounded threads, connections,
request deadlines and a database pool of its own, so probes, the store and detection never wait on it.

The main test runs what ``genstatus run`` runs (``MonitorRuntime`` and ``start_web``) against the
emulator on a temporary SQLite database, and holds hundreds of slow connections open against the page
(silent ones, ones trickling a request a byte at a time, ones that never read their answer; each one
the server closes is opened again) while results are stored and an outage is forced.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import text

import web
import web.server
from monitor.cli.common import start_web
from monitor.config import parse_config
from monitor.engine.runtime import MonitorRuntime
from monitor.store.db import make_engine
from monitor.store.models import Base
from probes.registry import provider_issues
from web import create_app, make_web_engine
from web.server import CHANNEL_TIMEOUT, REQUEST_TIMEOUT, THREADS, start_server

INTERVAL_S = 1.0
JITTER_S = INTERVAL_S * 0.1
CONFIRM_S = 1.0
#: slow connections held against the page (fewer when the open-file limit is low)
FLOOD_SIZE = 1000


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft open-file limit towards ``wanted`` (never above the hard limit); returns the soft limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return wanted if soft == resource.RLIM_INFINITY else soft


# -- the flood ---------------------------------------------------------------------------


@dataclass
class Flood:
    """``size`` slow clients against ``port``, all driven from one thread.

    Kinds, in turn: ``silent`` (connects, sends nothing), ``trickle`` (a request line and then one header
    byte a second, never finishing: slowloris) and ``reader`` (a complete request, a tiny receive buffer,
    never reads the answer).  A silent or trickling socket the server closes is opened again at once,
    so the pressure lasts as long as the flood.
    """

    port: int
    size: int
    opened: int = 0
    reopened: int = 0
    refused: int = 0
    _socks: dict[int, tuple[socket.socket, str]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    KINDS = ("silent", "trickle", "silent", "trickle", "silent", "trickle", "silent", "trickle", "silent", "reader")

    def start(self) -> Flood:
        for n in range(self.size):
            self._open(self.KINDS[n % len(self.KINDS)])
        self._thread = threading.Thread(target=self._run, name="test-flood", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for sock, _ in list(self._socks.values()):
            sock.close()
        self._socks.clear()

    def _open(self, kind: str) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if kind == "reader":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            sock.settimeout(1.0)
            sock.connect(("127.0.0.1", self.port))
            if kind == "trickle":
                sock.sendall(b"GET / HTTP/1.1\r\nHost: flood\r\nX-Slow: ")
            elif kind == "reader":
                sock.sendall(b"GET / HTTP/1.1\r\nHost: flood\r\n\r\n")
            sock.setblocking(False)
        except OSError:
            sock.close()
            self.refused += 1
            return
        self.opened += 1
        self._socks[sock.fileno()] = (sock, kind)

    def _run(self) -> None:
        next_trickle = time.monotonic() + 1.0
        while not self._stop.is_set():
            poller = select.poll()
            for fd, (_, kind) in self._socks.items():
                poller.register(fd, 0 if kind == "reader" else select.POLLIN)  # readers never read
            for fd, _events in poller.poll(200):
                sock, kind = self._socks.pop(fd)
                try:
                    gone = not sock.recv(65536)
                except BlockingIOError:
                    gone = False
                except OSError:
                    gone = True
                if gone or kind == "reader":
                    sock.close()
                    if kind != "reader" and not self._stop.is_set():
                        self.reopened += 1
                        self._open(kind)
                else:
                    self._socks[fd] = (sock, kind)
            if time.monotonic() >= next_trickle:
                next_trickle += 1.0
                for sock, kind in list(self._socks.values()):
                    if kind == "trickle":
                        try:
                            sock.send(b"a")
                        except OSError:
                            pass


# -- the monitor -------------------------------------------------------------------------


def flood_config(tmp_path, emulator) -> str:
    return f"""\
database: sqlite:///{tmp_path / 'flood.db'}
detection: {{confirm_delay: {CONFIRM_S:g}s, false_incident_budget: 10000}}
canaries:
  - {{id: apple, prompt: "a red apple", size: 1024x1024, seed: random}}
services:
  - id: svc
    name: Flooded
    provider: openai
    base_url: {emulator.base_url('openai')}
    api_key: sk-flood-test-0000
    model: dall-e-3
    canaries: [apple]
    interval: {INTERVAL_S:g}s
    health_interval: {INTERVAL_S:g}s
    timeout: 5s
    allow_private_network: true
"""


def open_incidents(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT count(*) FROM incidents WHERE service_id = 'svc' AND resolved_at IS NULL")).scalar_one()


def stored_results(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM probe_results WHERE service_id = 'svc'")).scalar_one()


def timed_get(url: str) -> tuple[int, float]:
    """A visitor's GET: its status and seconds taken (a client that waits no longer than the request deadline)."""
    began = time.monotonic()
    try:
        status = httpx.get(url, timeout=REQUEST_TIMEOUT).status_code
    except httpx.HTTPError:
        status = 0
    return status, time.monotonic() - began


def wait_until(condition, within: float, step: float = 0.1) -> float | None:
    began = time.monotonic()
    while time.monotonic() - began < within:
        if condition():
            return time.monotonic() - began
        time.sleep(step)
    return None


def test_a_flood_of_slow_connections_never_blinds_the_monitor(tmp_path, emulator, caplog):
    """Nothing spooled, every write quick, detection on time, threads and connections bounded, the page answers."""
    size = min(FLOOD_SIZE, (raise_open_file_limit(4 * FLOOD_SIZE) - 300) // 2)
    if size < 200:
        pytest.skip("the open-file limit is too low to hold a flood here")
    caplog.set_level(logging.WARNING, logger="genstatus")
    config = parse_config(flood_config(tmp_path, emulator), "flood.yaml", env={}, checks=[provider_issues])
    runtime = MonitorRuntime(config, region="flood", spool_path=str(tmp_path / "spool.jsonl"), detect_every=0.5)
    writes: list[float] = []
    record = runtime.store.record

    def timed_record(result) -> None:
        began = time.monotonic()
        record(result)
        writes.append(time.monotonic() - began)

    runtime.store.record = timed_record
    flood = None
    web_server = start_web(config, runtime.engine, "127.0.0.1", 0)
    try:
        # the page reads through a small pool of its own, never the monitor's
        web_engine = web_server.app.extensions["genstatus"].engine
        assert web_engine is not runtime.engine and web_engine.pool is not runtime.engine.pool
        assert (web_engine.pool.size(), web_engine.pool._max_overflow) == (web.POOL_SIZE, 0)

        threads_serving = threading.active_count()  # the monitor's threads not yet started
        runtime.start()
        page = web_server.url + "/"
        assert wait_until(lambda: stored_results(runtime.engine) >= 2, within=10), "no results before the flood"
        assert timed_get(page)[0] == 200
        threads_before = threading.active_count()

        flood = Flood(web_server.port, size).start()
        stored_at_start = stored_results(runtime.engine)
        threads_seen, held_seen, gets = [threading.active_count()], [web_server.open_connections()], []
        flood_began = time.monotonic()
        while time.monotonic() - flood_began < 3.0:  # results keep coming while the flood goes on
            gets.append(timed_get(page))
            threads_seen.append(threading.active_count())
            held_seen.append(web_server.open_connections())
            time.sleep(0.2)

        # an outage during the flood is detected on time (two intervals and the confirmation, as in the demo test)
        emulator.faults.set("openai", "server_error")
        red_within = 2 * (INTERVAL_S + JITTER_S) + CONFIRM_S + 2.0
        detected_in = wait_until(lambda: open_incidents(runtime.engine) > 0, within=red_within + 3.0)
        emulator.faults.clear()
        threads_seen.append(threading.active_count())
        held_seen.append(web_server.open_connections())
        gets.append(timed_get(page))
        flooded_for = time.monotonic() - flood_began
        stored_during = stored_results(runtime.engine) - stored_at_start
        flood.stop()
        after_flood = timed_get(page)

        report = (f"flood {size} sockets: {flood.opened} opened, {flood.reopened} reopened after the server closed them, "
                  f"{flood.refused} refused; server closed {web_server.closed}; held at most {max(held_seen)} "
                  f"(limit {web_server.connection_limit}); threads {threads_serving} serving, {threads_before} "
                  f"with the monitor, at most {max(threads_seen)} during the flood; {len(writes)} writes, slowest "
                  f"{max(writes):.3f}s; {stored_during} results stored in {flooded_for:.1f}s of flood; detection "
                  f"in {detected_in}s (bound {red_within:.1f}s); GET during the flood: "
                  f"{sorted({s for s, _ in gets})}, slowest {max(t for _, t in gets):.2f}s; after: {after_flood}")
        print(report)

        assert runtime.store.spooled == 0, report
        assert not [r for r in caplog.records if "spool" in r.getMessage()], report
        assert detected_in is not None and detected_in <= red_within, report
        assert stored_during >= flooded_for / INTERVAL_S - 2, report  # canary and health runs, one a second each
        assert max(writes) < web.POOL_TIMEOUT, report  # no write ever queued behind the page
        # the page's threads do not grow with its connections (the emulator and the flood have a few of their own)
        assert max(threads_seen) <= threads_before + 4, report  # (threads of earlier tests may still be winding down)
        assert max(held_seen) <= web_server.connection_limit, report
        assert flood.reopened > 0, report  # the server did close slow connections (late ones, or to make room)
        # a visitor's GET is answered during the flood, well within the request deadline
        assert all(status == 200 for status, _ in gets), report
        assert max(t for _, t in gets) < REQUEST_TIMEOUT, report
        assert after_flood[0] == 200 and after_flood[1] < REQUEST_TIMEOUT, report
        # slow connections are all gone within the request deadline and a sweep
        assert wait_until(lambda: web_server.open_connections() == 0, within=REQUEST_TIMEOUT + 3.0) is not None
    finally:
        if flood is not None:
            flood.stop()
        emulator.faults.clear()
        web_server.shutdown()
        runtime.stop()


# -- the pieces --------------------------------------------------------------------------


@pytest.fixture
def database(tmp_path):
    url = f"sqlite:///{tmp_path / 'web.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    return url


def test_the_page_pool_is_small_and_bounded_on_sqlite_and_postgresql(database, monkeypatch):
    assert web.POOL_SIZE == THREADS  # every worker can hold a connection; nothing else asks for one
    for url in (database, "postgresql://genstatus:secret@db.invalid:5432/genstatus"):
        engine = make_web_engine(url)  # nothing connects yet
        try:
            assert (engine.pool.size(), engine.pool._max_overflow, engine.pool._timeout) == (
                web.POOL_SIZE, 0, web.POOL_TIMEOUT)
        finally:
            engine.dispose()
    made: list[dict] = []
    monkeypatch.setattr(web, "make_engine", lambda url, **kwargs: made.append(kwargs))
    make_web_engine("postgres://u:p@db.invalid/gs")
    make_web_engine("postgresql://u:p@db.invalid/gs?connect_timeout=2")
    assert made[0]["connect_args"] == {"connect_timeout": web.CONNECT_TIMEOUT}  # a dead server costs seconds, not minutes
    assert made[1]["connect_args"] == {}  # the URL's own timeout wins
    monkeypatch.undo()
    memory = make_web_engine("sqlite://")  # each connection its own database: left as it is
    assert memory.pool.__class__.__name__ == "SingletonThreadPool"


def test_a_busy_page_pool_answers_503_with_retry_after(database, monkeypatch, caplog):
    monkeypatch.setattr(web, "POOL_TIMEOUT", 0.2)
    app = create_app(database_url=database, testing=True)
    engine = app.extensions["genstatus"].engine
    held = [engine.connect() for _ in range(web.POOL_SIZE)]  # every connection of the page's pool in use
    try:
        client = app.test_client()
        for path in ("/", "/services/svc"):
            response = client.get(path)
            html = response.get_data(as_text=True)
            assert response.status_code == 503
            assert response.headers["Retry-After"] == str(web.RETRY_AFTER)
            assert "503 Service Unavailable" in html and "QueuePool" not in html and "web.db" not in html
            assert response.headers["X-Frame-Options"] == "DENY"
        assert client.get("/healthz").status_code == 503
        assert any("database unavailable" in r.getMessage() for r in caplog.records)
    finally:
        for connection in held:
            connection.close()
    assert app.test_client().get("/").status_code == 200
    web.close_app(app)


def closed_by_server(sock: socket.socket) -> bool:
    """Reads what is left; True once the server has closed the connection."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def test_late_requests_and_idle_connections_are_closed_complete_ones_answered(database, monkeypatch):
    monkeypatch.setattr(web.server, "REQUEST_TIMEOUT", 1)
    monkeypatch.setattr(web.server, "SWEEP_INTERVAL", 0.2)
    closed_apps = []
    monkeypatch.setattr(web.server, "close_app", closed_apps.append)
    app = create_app(database_url=database)
    server = start_server(app)
    socks: list[socket.socket] = []
    try:
        def connect(payload: bytes) -> socket.socket:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(payload)
            socks.append(sock)
            return sock

        silent = connect(b"")
        partial = connect(b"GET / HTTP/1.1\r\nHost: x\r\n")
        blank_lines = connect(b"\r\n")  # empty lines between requests are no request: they buy no time
        keep_alive = connect(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert keep_alive.recv(65536).startswith(b"HTTP/1.1 200")
        began = time.monotonic()
        for _ in range(3):
            time.sleep(0.4)
            try:
                blank_lines.sendall(b"\r\n")
            except OSError:
                break
        for sock in (silent, partial, blank_lines, keep_alive):
            assert closed_by_server(sock)
        assert time.monotonic() - began < CHANNEL_TIMEOUT / 2  # the request deadline, not the idle timeout
        assert server.closed["late"] >= 4
        # a complete request is answered as ever; oversized headers are refused before the app sees them
        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
        assert httpx.get(server.url + "/healthz", headers={"X-Big": "x" * 40_000}, timeout=5).status_code == 431
    finally:
        for sock in socks:
            sock.close()
        server.shutdown()
    assert closed_apps == [app]  # its own database pool is released with the server
    web.close_app(app)


def test_a_response_nobody_reads_is_dropped_after_the_channel_timeout(database, monkeypatch):
    monkeypatch.setattr(web.server, "CHANNEL_TIMEOUT", 1)
    monkeypatch.setattr(web.server, "SWEEP_INTERVAL", 0.2)
    app = create_app(database_url=database)

    @app.get("/big")
    def big():
        return "x" * (32 * 1024 * 1024)  # more than the kernel buffers hold: the rest waits in the server

    server = start_server(app)
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read
        assert wait_until(lambda: server.closed["stuck"] == 1, within=10), server.closed
        assert wait_until(lambda: server.open_connections() == 0, within=5), server.open_connections()
        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200  # the workers were never held
    finally:
        sock.close()
        server.shutdown()
        web.close_app(app)


def test_connections_stay_bounded_by_the_open_file_limit(monkeypatch):
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _which: (256, 4096))
    assert web.server.connection_limit() == 128
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (20_000, 20_000))
    assert web.server.connection_limit() == web.server.CONNECTION_LIMIT
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (40, 40))
    assert web.server.connection_limit() == web.server.MIN_CONNECTION_LIMIT
