"""Helpers the adapter tests share: probing a service, variants of it, and a one-off answer server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from werkzeug.serving import make_server

from monitor.config import CanaryConfig, Config, ServiceConfig
from monitor.engine.runner import ProbeRunner, apply_scoring
from monitor.enums import ProbeKind
from monitor.store.record import ResultRecord
from probes.base import Adapter, ProbeContext, ProbeResult
from probes.http import make_client


def with_(service: ServiceConfig, **changes: Any) -> ServiceConfig:
    return service.model_copy(update=changes)


def probe(
    adapter_class: type[Adapter],
    service: ServiceConfig,
    canary: CanaryConfig | None,
    kind: ProbeKind = ProbeKind.CANARY,
    seed: int | None = 1234,
    *,
    score: bool = True,
) -> ResultRecord | ProbeResult:
    """One probe straight through the adapter (no runner), scored and joined into its record like the runner
    would, unless ``score=False`` (then the adapter's answer as it is)."""
    with make_client(service) as client:
        answer = adapter_class(service).probe(ProbeContext(service, canary, client, seed=seed), kind)
    if not score:
        return answer
    return ResultRecord.join(answer) if kind is ProbeKind.HEALTH else apply_scoring(answer, service, canary)


def run_with_runner(service: ServiceConfig, canary: CanaryConfig | None, kind: ProbeKind = ProbeKind.CANARY) -> ResultRecord:
    """Through the runner, so scoring settles blank/wrong-size images."""
    runner = ProbeRunner(Config(canaries=[canary] if canary else [], services=[service]))
    try:
        return runner.run(service, canary, kind)
    finally:
        runner.close()


def serve(app: Callable[..., Any]) -> Iterator[str]:
    """Serve a WSGI ``app`` on loopback for a fixture (``yield from serve(app)``): yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
