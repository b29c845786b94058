"""Serve a WSGI app from a background thread with waitress (for ``genstatus run``, ``serve``, ``demo`` and tests).

waitress is a production WSGI server in pure Python: a socket loop in one thread hands requests to a
pool of worker threads.  Deployments that prefer another server use the factory in ``web.wsgi``.

Everything a visitor can hold is bounded, so a crowd of visitors (or a flood of slow connections) costs
the process a fixed number of threads, descriptors and database connections and never slows the probes:

* ``THREADS`` worker threads, whatever the number of connections (plus the one socket-loop thread);
* at most ``CONNECTION_LIMIT`` open connections (fewer when the process may open few files); when
  they run short, the connections that have waited longest without a request in progress are closed
  to make room, so a visitor who sends a request gets an answer even while slow clients pile up;
* ``REQUEST_TIMEOUT``: a request must arrive in full within this many seconds of the connection
  opening (or of the previous response, for keep-alive), however slowly it trickles in;
* ``CHANNEL_TIMEOUT``: a connection that makes no progress for this long is closed, even one whose
  client stopped reading its response;
* small request headers and bodies (the pages take no uploads);
* the page's database pool is its own (``web.make_web_engine``), never the monitor's.
"""

from __future__ import annotations

import heapq
import logging
import select
import threading
import time

from flask import Flask
from waitress import create_server, wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer
from waitress.task import ThreadedTaskDispatcher
from waitress.trigger import trigger as Trigger

from web import close_app

log = logging.getLogger("genstatus.web")

#: request worker threads: a fixed number, however many connections are open
THREADS = 8
#: open connections at most (listening sockets included); see ``connection_limit()``
CONNECTION_LIMIT = 400
#: never fewer than this, however low the open-file limit
MIN_CONNECTION_LIMIT = 32
#: seconds a client has to send a complete request, from connecting or from its previous response
REQUEST_TIMEOUT = 10
#: seconds a connection may go without progress (nothing read, nothing sent) before it is closed
CHANNEL_TIMEOUT = 30
#: seconds between waitress's own sweeps for idle connections
CLEANUP_INTERVAL = 5
#: seconds between our sweeps for late requests and stuck responses (every loop turn when crowded)
SWEEP_INTERVAL = 1.0
#: bytes of request line and headers, all together (browsers send a few hundred; cookies of a parent domain fit)
MAX_REQUEST_HEADER_SIZE = 32 * 1024
#: bytes of request body: the pages take no uploads
MAX_REQUEST_BODY_SIZE = 16 * 1024
#: the ``Server`` response header (waitress's default is fine too, but names the software)
IDENT = "genstatus"
#: seconds ``shutdown()`` lets the loop send what finished requests still have buffered
DRAIN_TIMEOUT = 2.0
#: seconds between two warnings that connections were closed to make room
CROWD_WARNING_EVERY = 60.0


def connection_limit() -> int:
    """``CONNECTION_LIMIT``, or half the process's open-file limit when that is lower: the probes, the
    database and the spool need descriptors too, and a visitor must never take the last one."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return CONNECTION_LIMIT
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return CONNECTION_LIMIT
    return max(MIN_CONNECTION_LIMIT, min(CONNECTION_LIMIT, soft // 2))


class TimedChannel(HTTPChannel):
    """waitress's connection, noting since when it has been waiting for its client to send a request.

    ``waiting_since`` (``time.monotonic()``) is when the connection opened or its last request was
    served; ``None`` while a worker serves a request.
    """

    waiting_since: float | None = None

    def __init__(self, *args, **kwargs) -> None:
        self.waiting_since = time.monotonic()
        super().__init__(*args, **kwargs)

    def service(self) -> None:  # in a worker thread
        self.waiting_since = None
        try:
            super().service()
        finally:
            self.waiting_since = time.monotonic()


class WebServer:
    """A waitress server whose socket loop runs in a daemon thread until ``shutdown()``.

    ``app`` is the Flask app it serves; ``shutdown()`` releases the database pool the app owns.
    """

    def __init__(self, server, app: Flask | None = None) -> None:
        self._server = server
        self.app = app
        if isinstance(server, MultiSocketServer):  # a host name with several addresses: all share one loop
            self._map = server.map
            self.host, port = server.effective_listen[0]
        else:
            self._map = server._map
            self.host, port = server.effective_host, server.effective_port
        self.port = int(port)
        self._adj = server.adj
        for listener in self._listeners():
            listener.channel_class = TimedChannel
        # beyond this many open sockets, the longest-waiting idle connections are closed to keep slots free
        self._crowded = self._adj.connection_limit - max(2, self._adj.connection_limit // 10)
        self._thread = threading.Thread(target=self._serve, name="genstatus-web", daemon=True)
        self._lock = threading.Lock()
        self._stopped = False
        self._warned_at: float | None = None
        #: connections closed so far: ``late`` (no complete request in time), ``stuck`` (a response nobody
        #: reads), ``evicted`` (closed to make room)
        self.closed = {"late": 0, "stuck": 0, "evicted": 0}

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def connection_limit(self) -> int:
        return int(self._adj.connection_limit)

    def open_connections(self) -> int:
        """Client connections open right now."""
        return sum(isinstance(channel, HTTPChannel) for channel in list(self._map.values()))

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        """waitress's loop (``wasyncore.loop``) with a sweep between turns, in the loop's own thread."""
        use_poll = self._adj.asyncore_use_poll and hasattr(select, "poll")
        poll = wasyncore.poll2 if use_poll else wasyncore.poll
        next_sweep = 0.0
        while self._map:
            poll(self._adj.asyncore_loop_timeout, self._map)
            now = time.monotonic()
            if now >= next_sweep or len(self._map) > self._crowded:
                self._sweep(now)
                next_sweep = now + SWEEP_INTERVAL

    def _sweep(self, now: float) -> None:
        """Close connections whose request is late or whose response is stuck; when crowded, make room."""
        wall = time.time()  # waitress keeps ``last_activity`` in wall-clock time
        waiting: list[TimedChannel] = []
        for channel in list(self._map.values()):
            if not isinstance(channel, TimedChannel) or channel.requests:
                continue  # a listener, the wake-up pipe, or a request being served
            since = channel.waiting_since
            if since is None:
                continue
            if channel.total_outbufs_len:
                if wall - channel.last_activity > self._adj.channel_timeout:
                    self._close(channel, "stuck")  # its client stopped reading: the socket may never turn writable
                    continue
            elif now - since > REQUEST_TIMEOUT:
                self._close(channel, "late")
                continue
            waiting.append(channel)
        excess = len(self._map) - self._crowded
        if excess > 0 and waiting:
            for channel in heapq.nsmallest(excess, waiting, key=lambda c: c.waiting_since or now):
                self._close(channel, "evicted")
            if self._warned_at is None or now - self._warned_at >= CROWD_WARNING_EVERY:
                self._warned_at = now
                log.warning("status page: %d connections open (limit %d); closing those that waited longest "
                            "without sending a request, to make room", len(self._map), self._adj.connection_limit)

    def _close(self, channel: TimedChannel, why: str) -> None:
        self.closed[why] += 1
        channel.handle_close()

    def _listeners(self) -> list[BaseWSGIServer]:
        return [d for d in list(self._map.values()) if isinstance(d, BaseWSGIServer)]

    def shutdown(self) -> None:
        """Stop listening, let requests in progress finish (up to 5 s) and their responses go out, then close
        every connection, wait for the loop thread and release the app's database pool.  Safe to call twice."""
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
        if self.app is not None:
            close_app(self.app)

    def _drain(self, timeout: float) -> None:
        """Wait until no connection has response bytes left to send (the loop sends them), for ``timeout`` s at most."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            getattr(channel, "total_outbufs_len", 0) for channel in list(self._map.values())
        ):
            time.sleep(0.02)

    def _stop_listening(self) -> None:
        for listener in self._listeners():
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
            threads=THREADS, ident=IDENT, connection_limit=connection_limit(), channel_timeout=CHANNEL_TIMEOUT,
            cleanup_interval=CLEANUP_INTERVAL, max_request_header_size=MAX_REQUEST_HEADER_SIZE,
            max_request_body_size=MAX_REQUEST_BODY_SIZE,
            asyncore_use_poll=True,  # poll(), not select(): no ceiling at descriptor 1024
            log_socket_errors=False,  # clients that hang up are no news (a flood would fill the log with tracebacks)
        )
    except BaseException as exc:
        wasyncore.close_all(socket_map, ignore_all=True)  # the wake-up pipe and any socket already bound
        if isinstance(exc, ValueError) and isinstance(exc.__context__, OSError):
            raise exc.__context__ from None  # waitress turns an unknown host into "Invalid host/port specified."
        raise
    dispatcher.set_thread_count(THREADS)
    web = WebServer(server, app)
    web.start()
    return web
