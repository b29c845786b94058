"""One loopback HTTP server for all provider emulators, plus the fault control API.

Providers live under ``/<provider>/...`` (``/openai/v1/images/generations``); the same
provider addressed as ``/s/<service>/<provider>/...`` lets faults target one service.
Adding a provider is one module exposing a class like ``OpenAIEmulator`` plus one line
in ``EMULATORS``.  Faults are set over HTTP so tests, demos and people with curl can
break a provider on purpose::

    curl -X POST 'http://127.0.0.1:PORT/_faults/openai?fault=server_error&count=2'
    curl -X POST 'http://127.0.0.1:PORT/_faults/openai?fault=blank_image&service=dalle3'
    curl -X POST http://127.0.0.1:PORT/_faults/openai -d '{"fault": "slow", "seconds": 2}'
    curl http://127.0.0.1:PORT/_faults
    curl -X DELETE http://127.0.0.1:PORT/_faults
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from probes.emulator.faults import SERVICE_KEY, FaultBoard
from probes.emulator.registry import EMULATORS
from probes.emulator.responses import json_response

if TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from probes.emulator.scenario import Scenario, ScenarioRunner

class ProviderEmulator(Protocol):
    """What a provider module offers: it answers every request under ``/<provider>/``."""

    #: the path under ``/<provider>`` that a service's ``base_url`` ends with (e.g. ``/v1``)
    BASE_PATH: str

    def __init__(self, faults: FaultBoard, stop: threading.Event) -> None: ...

    def handle(self, request: Request, path: str) -> Response:
        """Answer ``request``; ``path`` is the part after ``/<provider>`` (starts with ``/``)."""
        ...


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class EmulatorServer:
    """The emulators on ``host:port`` (port 0 = any free port), served from a daemon thread."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, log_requests: bool = False, scenario: Scenario | None = None
    ) -> None:
        self.faults = FaultBoard()
        self._scenario = scenario
        self._scenario_runner: ScenarioRunner | None = None
        self._stop = threading.Event()
        self._emulators: dict[str, ProviderEmulator] = {
            name: _load(target)(self.faults, self._stop) for name, target in EMULATORS.items()
        }
        self._control = Map(
            [
                Rule("/_faults", methods=["GET", "DELETE"], endpoint="all"),
                Rule("/_faults/<provider>", methods=["POST", "DELETE"], endpoint="provider"),
            ]
        )
        handler = WSGIRequestHandler if log_requests else _QuietHandler
        self._server: BaseWSGIServer = make_server(host, port, self._app, threaded=True, request_handler=handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    def base_url(self, provider: str, service: str | None = None) -> str:
        """What a service's ``base_url`` should be to talk to ``provider``'s emulator.

        With ``service``, faults set for that service (``faults.set(..., service=...)``) apply.
        """
        if provider not in self._emulators:
            raise KeyError(f"no emulator for {provider!r} (known: {', '.join(sorted(self._emulators))})")
        scope = f"/s/{service}" if service else ""
        return f"{self.url}{scope}/{provider}{self._emulators[provider].BASE_PATH}"

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="genstatus-emulator", daemon=True)
        self._thread.start()
        if self._scenario is not None:  # its clock starts with the server
            from probes.emulator.scenario import ScenarioRunner

            self._scenario_runner = ScenarioRunner(self.faults, self._scenario).start()
        return self

    def stop(self) -> None:
        """Wake hung requests, stop accepting, close the socket and wait for the thread."""
        self._stop.set()
        if self._scenario_runner is not None:
            self._scenario_runner.stop()
            self._scenario_runner = None
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- WSGI -------------------------------------------------------------------------

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self._answer(Request(environ))(environ, start_response)

    def _answer(self, request: Request) -> Response:
        if request.path == "/_faults" or request.path.startswith("/_faults/"):
            return self._control_api(request)
        path = request.path
        if path.startswith("/s/"):
            service, _, path = path[len("/s/"):].partition("/")
            request.environ[SERVICE_KEY] = service or None
        provider, _, rest = path.lstrip("/").partition("/")
        emulator = self._emulators.get(provider)
        if emulator is None:
            known = ", ".join(f"/{name}/" for name in sorted(self._emulators))
            return json_response({"error": f"no emulator at /{provider}/ (known: {known}; faults under /_faults)"}, 404)
        return emulator.handle(request, "/" + rest)

    def _control_api(self, request: Request) -> Response:
        try:
            endpoint, args = self._control.bind_to_environ(request.environ).match()
        except HTTPException as exc:
            return json_response({"error": f"{exc.name}: {request.method} {request.path}"}, exc.code or 400)
        provider = args.get("provider")
        if provider is not None and provider not in self._emulators:
            return json_response({"error": f"unknown provider {provider!r} (known: {', '.join(sorted(self._emulators))})"}, 400)
        params: dict[str, Any] = dict(request.args.items())
        if request.method == "POST" and request.get_data():
            body = request.get_json(force=True, silent=True)
            if not isinstance(body, dict):
                return json_response({"error": 'body must be a JSON object like {"fault": "server_error", "count": 2}'}, 400)
            params.update(body)
        service = params.pop("service", None)
        if request.method == "DELETE":
            self.faults.clear(provider, service)
        elif request.method == "POST" and provider is not None:  # POST is routed only with a provider
            fault = params.pop("fault", None)
            if not isinstance(fault, str):
                return json_response({"error": "missing 'fault' (JSON body or ?fault=NAME)"}, 400)
            try:
                self.faults.set(provider, fault, service=service, **params)
            except ValueError as exc:
                return json_response({"error": str(exc)}, 400)
        return json_response({"faults": self.faults.snapshot()})


def _load(target: str) -> type[ProviderEmulator]:
    module_name, _, class_name = target.partition(":")
    return getattr(import_module(module_name), class_name)
