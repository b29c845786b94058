"""Serve a WSGI app from a background thread (for ``genstatus run`` and ``demo``, and tests)."""

from __future__ import annotations

import threading

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server


class WebServer:
    """A threaded werkzeug server running in a daemon thread until ``shutdown()``."""

    def __init__(self, server: BaseWSGIServer) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="genstatus-web", daemon=True)

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        """Stop serving, wait for the thread and close the listening socket."""
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


def start_server(app: Flask, host: str = "127.0.0.1", port: int = 0) -> WebServer:
    """Listen on ``host:port`` (0 picks a free port) and serve ``app`` in the background."""
    server = WebServer(make_server(host, port, app, threaded=True))
    server.start()
    return server
