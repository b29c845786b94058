"""The HTTP client every adapter uses, and the one helper every adapter sends requests with.

Redirects are off (``probes.download`` follows them by hand so each hop is checked),
and ``trust_env`` is off so a stray ``HTTPS_PROXY`` or ``.netrc`` on the monitoring
host cannot change where probes go or what credentials they carry.

An adapter builds a :class:`Request` and hands it to ``Adapter.send`` (this module's
:func:`send`): the same-origin rule, streaming, the run's deadline, the error
classification and the size cap are applied there, once, for every provider.

The same-origin rule: every request an adapter sends carries the service's credentials
(the key, ``service.headers``), so it may only go to the origin (scheme, host, port) of
the service's ``base_url`` — or to an origin the config names (``allowed_origins``, or
for the ``http`` adapter an absolute URL in its options), or to one of the adapter's own
``sibling_hosts``.  A URL a provider's answer names on any other origin (a polling,
result or cancel URL) is refused as ``bad_output`` and never requested.  Origins other
than ``base_url``'s must also resolve to public addresses unless the service sets
``allow_private_network`` (the connection is pinned to the checked address, as for
image downloads).
"""

from __future__ import annotations

import dataclasses
import functools
import ssl
from collections.abc import Callable, Collection, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from monitor.enums import Outcome
from probes.answers import json_object, parse_json, read_head
from probes.deadline import deadline_transport, exchange
from probes.download import pinned, read_limited
from probes.failure import ProbeFailure

if TYPE_CHECKING:  # pragma: no cover
    from monitor.config import ServiceConfig
    from probes.context import ProbeContext

USER_AGENT = "genstatus/0.1"
CONNECT_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 30.0
POOL_TIMEOUT_S = 5.0


def client_timeout(service: ServiceConfig) -> httpx.Timeout:
    """Per-phase timeouts, none longer than the service's whole-run deadline."""
    total = service.timeout.total_seconds()
    return httpx.Timeout(
        connect=min(CONNECT_TIMEOUT_S, total),
        read=total,
        write=min(WRITE_TIMEOUT_S, total),
        pool=min(POOL_TIMEOUT_S, total),
    )


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """The TLS settings every probe client uses, built once: what httpx builds for ``verify=True``
    without the environment (certifi's CA bundle, hostname and chain checked).  Each client building
    its own cost 20+ ms of CPU and 0.7 MB per service; an ``SSLContext`` is safe to share between
    threads, and httpcore sets the same ALPN protocols on it for every HTTP/1.1 connection."""
    return httpx.create_ssl_context(verify=True, trust_env=False)


def make_client(service: ServiceConfig) -> httpx.Client:
    """The client for one service; the caller closes it (``with make_client(s) as client``)."""
    # a canary run holds one connection, plus one for an image download on another host
    connections = 2 * service.concurrency + 2
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=30.0)
    return httpx.Client(
        timeout=client_timeout(service),
        transport=deadline_transport(limits=limits, trust_env=False, verify=shared_ssl_context()),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
    )


# -- requests ---------------------------------------------------------------------------

#: every status: for ``ok`` (read any answer) or ``keep`` (read none)
ANY_STATUS = range(100, 600)
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Request:
    """One request an adapter wants sent: built by the adapter, sent by ``Adapter.send``."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    data: Any = None
    files: Any = None
    params: Any = None
    auth: httpx.Auth | None = None
    #: None: what is left of the run's deadline (a cancel after the deadline sets its own)
    timeout: httpx.Timeout | None = None
    #: what the answer is, for error details ("prediction", "task state")
    what: str = "response"

    def but(self, **changes: Any) -> Request:
        """A copy with ``changes`` (e.g. another ``url`` or extra ``headers``)."""
        return dataclasses.replace(self, **changes)


@dataclass
class Reply:
    """An answer: the (closed) response for its status and headers, and the body read."""

    response: httpx.Response
    body: bytes
    #: the URL asked for (``response.url`` may be the pinned IP address)
    url: httpx.URL
    request_id_header: str | None = None

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self.response.headers

    def json(self) -> Any:
        """The body as JSON, or ``bad_output``."""
        return parse_json(self.body, self.response, self.request_id_header)

    def object(self) -> dict[str, Any]:
        """The body as a JSON object, or ``bad_output``."""
        return json_object(self.body, self.response, self.request_id_header)


def origin_of(url: str | httpx.URL) -> str:
    """``scheme://host[:port]``, the port only when it is not the scheme's default."""
    if isinstance(url, str):
        return _origin_of_text(url)
    return _origin(url)


@functools.lru_cache(maxsize=1024)
def _origin_of_text(url: str) -> str:
    """``origin_of`` a configured URL (``base_url``, ``allowed_origins``): the same few strings are
    asked for on every request, and parsing a URL is most of the work."""
    return _origin(httpx.URL(url))


def _origin(parsed: httpx.URL) -> str:
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    port = parsed.port or DEFAULT_PORTS.get(parsed.scheme)
    return f"{parsed.scheme}://{host}" + ("" if port == DEFAULT_PORTS.get(parsed.scheme) else f":{port}")


@dataclass(frozen=True)
class Destinations:
    """Where one service's requests may go (see the module docstring).

    ``home`` is ``base_url``'s origin; ``trusted`` the origins the config itself sends requests
    to (``home`` included); ``allowed`` other origins answers may name, checked for public addresses.
    """

    home: str
    trusted: frozenset[str] = frozenset()
    allowed: frozenset[str] = frozenset()

    def route(self, ctx: ProbeContext, request: Request) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
        """``(target, extra headers, extensions)`` for ``request``, or the ``bad_output`` refusing it."""
        try:
            url = httpx.URL(request.url)
            origin = origin_of(url) if url.scheme in DEFAULT_PORTS and url.host else None
        except (httpx.InvalidURL, ValueError):
            origin = None
        if origin is None:
            raise ProbeFailure(Outcome.BAD_OUTPUT, f"{request.what} URL {request.url[:100]!r} refused: not an http(s) URL")
        if origin in self.trusted or origin == self.home:
            return url, {}, {}
        if origin not in self.allowed:
            raise ProbeFailure(
                Outcome.BAD_OUTPUT,
                f"{request.what} URL on another origin ({origin}) refused: credentials stay on {self.home}",
            )
        return pinned(ctx, url, f"send the {request.what} request to", Outcome.BAD_OUTPUT)


def send(
    ctx: ProbeContext,
    request: Request,
    *,
    destinations: Destinations,
    failure: Callable[[httpx.Response, bytes], ProbeFailure],
    request_id_header: str = "x-request-id",
    ok: Collection[int] = (200,),
    keep: Collection[int] = (),
    limit: int,
    phase: str | None = None,
    record: bool = True,
) -> Reply:
    """Send ``request`` where ``destinations`` allow; see ``Adapter.send``."""
    target, headers, extensions = destinations.route(ctx, request)
    timeout = request.timeout or ctx.timeout()
    if record:  # until this request answers, the run's status is its status: none if the connection fails
        ctx.http_status = None
    with ctx.phase(phase) if phase else nullcontext(), exchange(ctx, timeout, request.what):
        with ctx.client.stream(
            request.method, target, headers={**request.headers, **headers}, json=request.json, data=request.data,
            files=request.files, params=request.params, auth=request.auth, extensions=extensions, timeout=timeout,
        ) as response:
            if record:
                ctx.note_response(response, request_id_header)
            status = response.status_code
            asked = target if not headers else httpx.URL(request.url)  # unpinned: the URL asked for, parsed
            if status in keep:
                return Reply(response, b"", asked, request_id_header)
            if status not in ok:
                raise failure(response, read_head(ctx, response))
            body = read_limited(ctx, response, limit, what=request.what)
    return Reply(response, body, asked, request_id_header)
