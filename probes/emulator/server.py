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

import socket
import threading
from collections.abc import Iterable
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol

from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import LimitedStream

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


#: how long an idle kept-alive connection waits for its next request (nginx's default)
KEEP_ALIVE_IDLE_S = 75.0
#: the most of an unread request body drained to keep its connection; a bigger one closes it
DRAIN_LIMIT = 64 * 1024 * 1024


class _OpenConnections:
    """The sockets a server's handlers hold, so ``stop`` can close kept-alive ones too."""

    def __init__(self) -> None:
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def close_all(self) -> None:
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the handler thread waiting for a next request
            except OSError:
                pass


class _KeepAliveHandler(WSGIRequestHandler):
    """HTTP/1.1 with persistent connections, as providers serve it.

    werkzeug's development handler closes every connection (it cannot tell where an unread request
    body ends), so every request would pay a TCP connect a real provider does not charge.  This one
    reads the unread rest of each request body (``Content-Length`` or chunked) before the next
    request line, answers with a ``Content-Length``, and closes only when the client asks
    (``Connection: close``, HTTP/1.0), when a body cannot be drained, or after
    ``KEEP_ALIVE_IDLE_S`` without a request.  Responses are buffered: the emulators build
    every answer in memory anyway.
    """

    protocol_version = "HTTP/1.1"
    connections: _OpenConnections | None = None
    quiet = True

    def setup(self) -> None:
        super().setup()
        if self.connections is not None:
            self.connections.add(self.connection)

    def finish(self) -> None:
        if self.connections is not None:
            self.connections.discard(self.connection)
        super().finish()

    def handle_one_request(self) -> None:
        self.connection.settimeout(KEEP_ALIVE_IDLE_S)  # the wait for a request line and its headers
        super().handle_one_request()

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        if not self.quiet:
            super().log_request(*args, **kwargs)

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if not format.startswith("Request timed out"):  # an idle connection reaching its end
            super().log_error(format, *args)

    def make_environ(self) -> WSGIEnvironment:
        environ = super().make_environ()
        if not environ.get("wsgi.input_terminated"):  # chunked bodies are bounded by werkzeug already
            try:
                length = max(0, int(environ.get("CONTENT_LENGTH") or 0))
            except ValueError:
                length = 0
                self.close_connection = True  # where this body ends is unknown
            environ["wsgi.input"] = LimitedStream(self.rfile, length)  # type: ignore[arg-type]
        return environ

    def run_wsgi(self) -> None:
        self.connection.settimeout(None)  # the request's own pace is the client's business
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        try:
            status, headers, body = self._call(self.server.app, environ)
        except Exception as exc:  # noqa: BLE001 - a bug in an emulator answers 500, as werkzeug's does
            if self.server.passthrough_errors:
                raise
            self.server.log("error", f"Error on request {self.command} {self.path}: {type(exc).__name__}: {exc}")
            status, headers, body = self._call(InternalServerError(), environ)
        self._drain(environ)
        code_text, _, message = status.partition(" ")
        code = int(code_text)
        self.send_response(code, message)
        names = {name.lower() for name, _ in headers}
        for name, value in headers:
            if name.lower() != "connection":
                self.send_header(name, value)
        bodiless = self.command == "HEAD" or 100 <= code < 200 or code in (204, 304)
        if "content-length" not in names and not bodiless:
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and not bodiless:
            self.wfile.write(body)
        self.wfile.flush()

    @staticmethod
    def _call(app: Any, environ: WSGIEnvironment) -> tuple[str, list[tuple[str, str]], bytes]:
        answer: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer[:] = [status, headers]
            return lambda data: None  # the emulators never use the legacy write()

        chunks = app(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return answer[0], answer[1], body

    def _drain(self, environ: WSGIEnvironment) -> None:
        """Read what the emulator left of the request body, so the next request line comes next."""
        stream = environ["wsgi.input"]
        drained = 0
        try:
            while drained <= DRAIN_LIMIT:
                piece = stream.read(65536)
                if not piece:
                    return
                drained += len(piece)
        except (OSError, ValueError, HTTPException):  # a broken chunk, a client gone mid-body
            pass
        self.close_connection = True


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
        self._connections = _OpenConnections()
        handler = type("EmulatorHandler", (_KeepAliveHandler,),
                       {"connections": self._connections, "quiet": not log_requests})
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
        self._connections.close_all()  # kept-alive connections end with the server, as a provider's would

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
