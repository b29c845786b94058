"""The run's deadline on the wall clock, enforced at every socket operation.

httpx's timeouts bound each socket operation, not the whole exchange: an endpoint that trickles
its headers or body a byte at a time restarts the read timeout with every byte and can hold a
5 s probe for minutes.  Every probe client therefore talks through :class:`DeadlineBackend`, a
thin wrapper around httpcore's own socket backend that shortens the timeout of each connect,
TLS handshake, read and write to what is left until the deadline in force, and refuses the
operation once it has passed.  The deadline in force is set with :func:`until` around each
request (``probes.http.send`` and ``probes.download``), so it follows the run and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

from probes.failure import DeadlineExceeded

if TYPE_CHECKING:  # pragma: no cover
    from probes.context import ProbeContext

#: the monotonic time the current request must be done by (None: only httpx's own timeouts)
_deadline: ContextVar[float | None] = ContextVar("genstatus_probe_deadline", default=None)
#: bytes handed to one ``send`` call, so a receiver that reads slowly meets the deadline too
WRITE_PIECE = 64 * 1024


@contextmanager
def until(deadline: float) -> Iterator[None]:
    """Every socket operation inside the block ends by ``deadline`` (a ``time.monotonic()`` value)."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


@contextmanager
def exchange(ctx: ProbeContext, timeout: httpx.Timeout, what: str) -> Iterator[None]:
    """One request and its whole answer, over by ``timeout.read`` from now at the latest.

    Requests of a run get what is left of the run's deadline (``ctx.timeout()``); a request with its
    own timeout (a cancel sent after the deadline) gets that.  A read or write cut off because the
    run's deadline passed is the run's ``timeout`` (``DeadlineExceeded``), whatever the socket said.
    """
    ends = time.monotonic() + timeout.read if timeout.read is not None else ctx.deadline
    try:
        with until(ends):
            yield
    except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):
        if ctx.remaining() > 0:
            raise
        raise DeadlineExceeded(
            f"deadline of {ctx.service.timeout.total_seconds():g}s exceeded during the {what}") from None


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the deadline in force; ``expired`` once none is left."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the run's deadline has passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every operation ends by the deadline in force."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), WRITE_PIECE):
            self._stream.write(buffer[start:start + WRITE_PIECE], _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return DeadlineStream(self._stream.start_tls(ssl_context, server_hostname,
                                                     _bounded(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's socket backend, with every stream it opens bound to the deadline in force."""

    def __init__(self, backend: httpcore.NetworkBackend | None = None) -> None:
        self._backend = backend or httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return DeadlineStream(self._backend.connect_tcp(
            host, port, _bounded(timeout, httpcore.ConnectTimeout), local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return DeadlineStream(self._backend.connect_unix_socket(
            path, _bounded(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def deadline_transport(**options: Any) -> httpx.HTTPTransport:
    """An ``httpx.HTTPTransport`` (``options`` as for it) whose connections keep the deadline in force.

    httpx has no public way to choose the socket backend, so the transport's connection pool gets
    it after construction; a version of httpx where that pool is shaped differently fails here,
    loudly, rather than silently losing the guarantee.
    """
    transport = httpx.HTTPTransport(**options)
    pool = getattr(transport, "_pool", None)
    if not isinstance(pool, httpcore.ConnectionPool) or not hasattr(pool, "_network_backend"):
        raise RuntimeError(f"httpx {httpx.__version__}: cannot enforce probe deadlines on this transport")
    pool._network_backend = DeadlineBackend(pool._network_backend)
    return transport
