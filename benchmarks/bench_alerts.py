"""Alert dispatch: throughput to a local webhook receiver, and the delay the outbox adds.

* **Throughput** (deliveries/s): outbox rows written at once, the dispatcher routing and sending
  them round after round, with 1 and with 5 webhook channels; beside it, in the same run, the
  same number of signed POSTs sent straight to the receiver one after another (the baseline: what
  the HTTP itself costs on this machine).
* **Delay** (median, p99): from the commit of an outbox row (as the coordinator writes it with an
  incident change) to the receiver getting the message, with the dispatcher running as in
  ``genstatus run``: its own thread, a round every second, or at once when the coordinator pokes
  it after writing outbox rows (as here).
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy.orm import Session

from monitor.alerts.dispatcher import Dispatcher
from monitor.alerts.registry import build_senders
from monitor.alerts.render import sample_outbox
from monitor.config import Config, parse_config
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.models import AlertOutbox


class Receiver:
    """A loopback HTTP server noting when each delivery key arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        arrived = self.arrived

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                arrived[self.headers.get("X-Genstatus-Delivery", "")] = time.time()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _config(directory: Path, receiver: Receiver, channels: int) -> Config:
    hooks = "".join(f"    - {{id: hook{i}, type: webhook, url: '{receiver.url}', secret: s3cr3t-{i}, "
                    f"allow_private_network: true}}\n" for i in range(channels))
    ids = ", ".join(f"hook{i}" for i in range(channels))
    return parse_config(f"database: sqlite:///{directory / 'bench.db'}\ncanaries: [{{id: c, prompt: x}}]\n"
                        f"alerts:\n  channels:\n{hooks}  routes:\n    - {{channels: [{ids}]}}\n", env={})


def _write(engine, count: int) -> list[float]:
    """``count`` outbox rows, one transaction each, like the coordinator's; returns each commit time."""
    committed = []
    for _ in range(count):
        row = sample_outbox(Config(), "open", datetime.now(UTC))
        row.id = None  # type: ignore[assignment]
        with Session(engine) as session, session.begin():
            session.add(row)
        committed.append(time.time())
    return committed


def throughput(channels: int, events: int) -> tuple[float, float]:
    """(dispatcher deliveries/s, direct POSTs/s) for ``events`` x ``channels`` deliveries."""
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(Path(tmp), receiver, channels)
        engine = make_engine(config.database)
        upgrade(engine)
        _write(engine, events)
        dispatcher = Dispatcher(engine, config)
        began = time.perf_counter()
        while len(receiver.arrived) < events * channels:
            dispatcher.run_once()
        dispatched = events * channels / (time.perf_counter() - began)
        sender = build_senders(config)["hook0"]
        from monitor.alerts.message import Message

        began = time.perf_counter()
        for i in range(events * channels):
            sender.send(Message(delivery_key=f"direct-{i}", event="open", title="t", body="b"))
        direct = events * channels / (time.perf_counter() - began)
        engine.dispose()
    receiver.stop()
    return dispatched, direct


def delay(channels: int, events: int) -> tuple[float, float]:
    """(median, p99) seconds from an outbox commit to the receiver, with the dispatcher's own loop running."""
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(Path(tmp), receiver, channels)
        engine = make_engine(config.database)
        upgrade(engine)
        dispatcher = Dispatcher(engine, config)
        dispatcher.start()
        try:
            delays = []
            for _ in range(events):
                (committed,) = _write(engine, 1)
                dispatcher.poke()  # what the coordinator does after a round that wrote outbox rows
                with Session(engine) as session:
                    last = session.query(AlertOutbox.id).order_by(AlertOutbox.id.desc()).first()
                keys = [f"gs-{last[0]}-hook{i}" for i in range(channels)]  # type: ignore[index]
                deadline = time.time() + 30
                while not all(k in receiver.arrived for k in keys) and time.time() < deadline:
                    time.sleep(0.005)
                delays += [receiver.arrived[k] - committed for k in keys if k in receiver.arrived]
                time.sleep(0.05)
        finally:
            dispatcher.stop()
            engine.dispose()
    receiver.stop()
    delays.sort()
    return statistics.median(delays), delays[min(len(delays) - 1, int(0.99 * len(delays)))]


def run(quick: bool = False) -> list[dict]:
    figures = []
    events = 50 if quick else 200
    for channels in (1, 5):
        dispatched, direct = throughput(channels, events)
        figures.append({"name": f"throughput, {channels} channel{'s' if channels > 1 else ''}", "value": round(dispatched, 1),
                        "unit": "deliveries/s", "note": f"{dispatched / direct:.2f} x direct POSTs one by one "
                                                         f"({direct:.0f}/s, same run, same receiver)"})
        median, p99 = delay(channels, 20 if quick else 60)
        figures.append({"name": f"outbox to receiver, {channels} channel{'s' if channels > 1 else ''}",
                        "value": round(median, 3), "unit": "s (median)",
                        "note": f"p99 {p99:.2f} s; poked after the commit, as the coordinator does"})
    return figures
