"""Serve a WSGI app from a background thread with waitress (for ``genstatus run``, ``serve``, ``demo`` and tests).

waitress is a production WSGI server in pure Python: a socket loop in one thread hands requests to a
pool of worker threads.  Deployments that prefer another server use the factory in ``web.wsgi``.
"""

from __future__ import annotations

import threading
import time

from flask import Flask
from waitress import create_server, wasyncore
from waitress.server import BaseWSGIServer, MultiSocketServer
from waitress.task import ThreadedTaskDispatcher
from waitress.trigger import trigger as Trigger

#: request worker threads
THREADS = 8
#: seconds an idle keep-alive connection stays open
CHANNEL_TIMEOUT = 60
#: the ``Server`` response header (waitress's default is fine too, but names the software)
IDENT = "genstatus"
#: seconds ``shutdown()`` lets the loop send what finished requests still have buffered
DRAIN_TIMEOUT = 2.0


class WebServer:
    """A waitress server whose socket loop runs in a daemon thread until ``shutdown()``."""

    def __init__(self, server) -> None:
        self._server = server
        if isinstance(server, MultiSocketServer):  # a host name with several addresses: all share one loop
            self._map = server.map
            self.host, port = server.effective_listen[0]
        else:
            self._map = server._map
            self.host, port = server.effective_host, server.effective_port
        self.port = int(port)
        self._adj = server.adj
        self._thread = threading.Thread(target=self._serve, name="genstatus-web", daemon=True)
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        wasyncore.loop(timeout=self._adj.asyncore_loop_timeout, map=self._map, use_poll=self._adj.asyncore_use_poll)

    def shutdown(self) -> None:
        """Stop listening, let requests in progress finish (up to 5 s) and their responses go out, then close
        every connection and wait for the loop thread.  Safe to call twice."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        trigger = next((d for d in list(self._map.values()) if isinstance(d, Trigger)), None)
        if not self._thread.is_alive():
            trigger = None
        if trigger is not None:  # sockets are only touched from the loop's own thread
            listening_closed = threading.Event()

            def stop_listening() -> None:
                self._stop_listening()
                listening_closed.set()

            trigger.pull_trigger(stop_listening)
            listening_closed.wait(timeout=5)
        self._server.task_dispatcher.shutdown()  # requests in progress finish: the loop still sends their responses
        if trigger is not None:
            self._drain(DRAIN_TIMEOUT)
            trigger.pull_trigger(lambda: wasyncore.close_all(self._map, ignore_all=True))  # an empty socket map ends the loop
            self._thread.join(timeout=10)
        wasyncore.close_all(self._map, ignore_all=True)  # nothing left open if the loop had already ended

    def _drain(self, timeout: float) -> None:
        """Wait until no connection has response bytes left to send (the loop sends them), for ``timeout`` s at most."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            getattr(channel, "total_outbufs_len", 0) for channel in list(self._map.values())
        ):
            time.sleep(0.02)

    def _stop_listening(self) -> None:
        for listener in [d for d in self._map.values() if isinstance(d, BaseWSGIServer)]:
            listener.accepting = False
            wasyncore.dispatcher.close(listener)  # the listening socket only (BaseWSGIServer.close also closes the trigger)


def start_server(app: Flask, host: str = "127.0.0.1", port: int = 0) -> WebServer:
    """Listen on ``host:port`` (0 picks a free port) and serve ``app`` in the background.

    A port in use or an unknown host raises ``OSError``.
    """
    ipv6 = ":" in host  # one address family, as the host is written: "localhost" is 127.0.0.1 only
    socket_map: dict = {}
    # our own dispatcher, given its threads only once listening works: a failed bind leaves no idle workers
    dispatcher = ThreadedTaskDispatcher()
    try:
        server = create_server(
            app, map=socket_map, _dispatcher=dispatcher, host=host, port=port, ipv4=not ipv6, ipv6=ipv6,
            threads=THREADS, channel_timeout=CHANNEL_TIMEOUT, ident=IDENT,
        )
    except BaseException as exc:
        wasyncore.close_all(socket_map, ignore_all=True)  # the wake-up pipe and any socket already bound
        if isinstance(exc, ValueError) and isinstance(exc.__context__, OSError):
            raise exc.__context__ from None  # waitress turns an unknown host into "Invalid host/port specified."
        raise
    dispatcher.set_thread_count(THREADS)
    web = WebServer(server)
    web.start()
    return web
