"""HTTP caching and compression for the public site, and a small render cache for busy views.

``install(app)`` adds one ``after_request`` hook that, for every response:

* marks private responses ``Cache-Control: no-store`` and leaves them uncompressed: anything under
  ``/admin``, requests with ``Authorization``, responses that set a cookie or whose view touched the
  session.  (Compressing pages that hold secrets such as CSRF tokens next to reflected input opens
  them to BREACH-style guessing; they are small anyway.)
* gives public ``GET``/``HEAD`` answers (status 200) a short ``Cache-Control: public, max-age=30``
  unless the view chose its own, a weak ``ETag`` (a hash of the uncompressed body, so one ETag serves
  the plain and the gzipped representation) and answers ``If-None-Match``/``If-Modified-Since`` with
  ``304`` and no body;
* gzips text (HTML, JSON, SVG, XML, CSS, plain text) over ``MIN_COMPRESS_BYTES`` for clients that
  accept it, with ``Vary: Accept-Encoding`` on every compressible answer;
* marks server errors ``no-store`` (a cache must not keep an outage of the page itself), and the
  health, readiness and metrics endpoints too.

``cached_view(seconds=5)`` is the render cache: put it under the route decorator of a public view
whose output depends only on the database (and the URL)::

    @bp.get("/api/v2/summary.json")
    @cached_view(seconds=5)
    def summary(): ...

The rendered response (status 200 only) is kept for ``seconds`` under (view, host, path, sorted
query, change marker); the change marker is one cheap query (newest probe result id, incident and
maintenance change times and counts, newest incident update), so a new result, incident, update or
maintenance window renders afresh at once and polling clients in between cost one indexed query.
It is bounded (LRU, ``MAX_ENTRIES`` per app) and thread-safe.  It never serves or keeps a response
for a request with a session cookie or ``Authorization``, nor one whose view read the session or set
a cookie, so per-user pages can never leak to someone else.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, Response, current_app, make_response, request
from flask.globals import request_ctx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.store.models import Incident, IncidentUpdate, Maintenance, ProbeResultRow, Service
from web.context import db_session

#: what a public page or JSON answer may be cached for by browsers and proxies, in seconds
PUBLIC_MAX_AGE = 30
PUBLIC_CACHE_CONTROL = f"public, max-age={PUBLIC_MAX_AGE}"
PRIVATE_CACHE_CONTROL = "no-store"
#: smaller bodies are sent as they are: gzip's header and the CPU would cost more than they save
MIN_COMPRESS_BYTES = 1024
GZIP_LEVEL = 6
COMPRESSIBLE_TYPES = frozenset({
    "text/html", "text/css", "text/plain", "text/xml", "text/csv", "text/javascript",
    "application/json", "application/xml", "application/atom+xml", "application/rss+xml",
    "application/javascript", "image/svg+xml",
})
#: paths that are never cached anywhere: the admin side (and everything below it)
PRIVATE_PREFIXES = ("/admin",)
#: answers that must always be fresh (probes of the page itself and Prometheus scrapes)
UNCACHED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

#: render-cache entries per app
MAX_ENTRIES = 256
CACHE_EXTENSION = "genstatus.render_cache"

# the clock of the render cache (tests replace it)
monotonic = time.monotonic


# -- the after_request hook -------------------------------------------------------------------


def install(app: Flask) -> None:
    """Add the caching and compression hook (and the app's render cache)."""
    app.extensions.setdefault(CACHE_EXTENSION, RenderCache())
    app.after_request(finish_response)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def session_used() -> bool:
    """Did this request's code read or change the session?  (Read without marking it accessed.)"""
    current = request_ctx._session
    return bool(current is not None and (getattr(current, "accessed", False) or getattr(current, "modified", False)))


def is_private(response: Response) -> bool:
    return (any(_under(request.path, prefix) for prefix in PRIVATE_PREFIXES)
            or "Authorization" in request.headers
            or "Set-Cookie" in response.headers
            or session_used())


def compressible(response: Response) -> bool:
    return response.mimetype in COMPRESSIBLE_TYPES


def finish_response(response: Response) -> Response:
    if is_private(response):
        response.headers["Cache-Control"] = PRIVATE_CACHE_CONTROL
        return response
    if response.status_code >= 500 or request.path in UNCACHED_PATHS:
        response.headers["Cache-Control"] = PRIVATE_CACHE_CONTROL
    elif request.method in ("GET", "HEAD") and response.status_code == 200:
        if not _conditional(response):
            return response
    if compressible(response):
        response.vary.add("Accept-Encoding")
        _compress(response)
    return response


def _conditional(response: Response) -> bool:
    """Cache headers and ETag of a public 200, turned into a 304 when the client has it; False for a
    response that cannot be read (streamed) and is left alone."""
    if response.direct_passthrough and compressible(response):  # a static file: read it to hash and gzip it
        response.direct_passthrough = False
        response.make_sequence()
    if response.is_streamed:
        return False
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = PUBLIC_CACHE_CONTROL
    if response.cache_control.no_store:
        return True
    if "ETag" not in response.headers:
        response.set_etag(body_etag(response.get_data()), weak=True)
    if compressible(response):
        response.vary.add("Accept-Encoding")  # before a 304, which must carry it too
    response.make_conditional(request)
    return True


def body_etag(body: bytes) -> str:
    """The weak ETag of an uncompressed body: one ETag for its plain and gzipped forms."""
    return hashlib.sha256(body).hexdigest()[:32]


def _compress(response: Response) -> None:
    if (response.status_code != 200 or response.is_streamed or response.direct_passthrough
            or "Content-Encoding" in response.headers or request.accept_encodings["gzip"] <= 0):
        return
    data = response.get_data()
    if len(data) <= MIN_COMPRESS_BYTES:
        return
    response.set_data(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0))
    response.headers["Content-Encoding"] = "gzip"
    etag, weak = response.get_etag()
    if etag and not weak:  # a strong ETag names exact bytes: these are other bytes
        response.set_etag(etag, weak=True)


# -- the render cache -------------------------------------------------------------------------


@dataclass
class Rendered:
    """A kept answer, with its ETag and (once asked for) its gzipped body, so a hit re-hashes and
    re-compresses nothing (a 570 KB page took 3 ms to gzip on every hit)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    expires: float
    gzipped: bytes | None = None

    def response(self) -> Response:
        response = Response(self.body, status=self.status, headers=self.headers)
        if "ETag" not in response.headers:
            response.set_etag(body_etag(self.body), weak=True)
        if (compressible(response) and len(self.body) > MIN_COMPRESS_BYTES and request.accept_encodings["gzip"] > 0
                and "Content-Encoding" not in response.headers):
            if self.gzipped is None:
                self.gzipped = gzip.compress(self.body, compresslevel=GZIP_LEVEL, mtime=0)
            response.set_data(self.gzipped)
            response.headers["Content-Encoding"] = "gzip"
            response.vary.add("Accept-Encoding")
        return response


class RenderCache:
    """A bounded LRU of rendered responses, each valid until its ``expires`` (``monotonic`` time)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Rendered] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, now: float) -> Rendered | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.expires > now:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None

    def put(self, key: Hashable, entry: Rendered) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def render_cache(app: Flask | None = None) -> RenderCache:
    """The app's render cache (made on first use when ``install`` was not called)."""
    return (app or current_app).extensions.setdefault(CACHE_EXTENSION, RenderCache())


def change_marker(session: Session, *, results: bool = True) -> tuple[Any, ...]:
    """What changes whenever a public view's data does: one query over indexed maxima and small counts.

    ``results=False`` leaves new probe results out: for views whose content follows incidents and
    maintenance (statuses, uptime), which a busy monitor's stream of results would otherwise keep
    re-rendering; they then show a new result within the cache's ``seconds``.
    """
    latest = [
        *([select(func.max(ProbeResultRow.id))] if results else []),
        select(func.max(Incident.updated_at)),
        select(func.count(Incident.id)),
        select(func.max(IncidentUpdate.id)),
        select(func.count(IncidentUpdate.id)),
        select(func.max(Maintenance.updated_at)),
        select(func.count(Maintenance.id)),
        select(func.max(Service.updated_at)),
    ]
    return tuple(session.execute(select(*(q.scalar_subquery() for q in latest))).one())


def _cacheable_request() -> bool:
    return (request.method in ("GET", "HEAD") and "Authorization" not in request.headers
            and current_app.config["SESSION_COOKIE_NAME"] not in request.cookies and not session_used())


F = TypeVar("F", bound=Callable[..., Any])


def cached_view(seconds: float = 5.0, *, on_results: bool = True) -> Callable[[F], F]:
    """Keep the view's rendered 200 answer for ``seconds`` while the database has not changed.

    ``on_results=False``: a new probe result alone does not re-render (see ``change_marker``).
    """

    def decorate(view: F) -> F:
        name = f"{view.__module__}.{view.__qualname__}"

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not _cacheable_request():
                return view(*args, **kwargs)
            cache = render_cache()
            key = (name, request.host_url, request.path, tuple(sorted(request.args.items(multi=True))),
                   change_marker(db_session(), results=on_results))
            hit = cache.get(key, monotonic())
            if hit is not None:
                return hit.response()
            response = make_response(view(*args, **kwargs))
            if (response.status_code == 200 and not response.is_streamed and "Set-Cookie" not in response.headers
                    and not session_used()):
                headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
                cache.put(key, Rendered(200, headers, response.get_data(), monotonic() + seconds))
            return response

        return wrapper  # type: ignore[return-value]

    return decorate
