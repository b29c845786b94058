"""The status page web app (Flask).  It only reads the database; probes run elsewhere."""

from __future__ import annotations

import logging

from flask import Flask, Response, render_template
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from monitor.config import DEFAULT_DATABASE, Config
from monitor.store.db import make_engine, normalize_url, session_factory
from web.context import EXTENSION, WebState, close_session, state

log = logging.getLogger("genstatus.web")

#: the page's database connections at most: one per worker thread of ``web.server`` (``THREADS``), none beyond
POOL_SIZE = 8
#: seconds a request waits for one of them before the page answers 503
POOL_TIMEOUT = 5
#: seconds a PostgreSQL connection attempt may take
CONNECT_TIMEOUT = 5
#: the ``Retry-After`` of a 503, in seconds
RETRY_AFTER = 10

#: No inline scripts or styles anywhere: the pages are plain server-rendered HTML.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "DENY",
}


def create_app(
    config: Config | None = None,
    *,
    database_url: str | None = None,
    engine: Engine | None = None,
    testing: bool = False,
) -> Flask:
    """Build the web app.  The database is ``engine``, else ``database_url``, else ``config.database``.

    The engine is ``app.extensions["genstatus"].engine``.  Given an ``engine``, whoever stops the app
    disposes of it; otherwise the app has its own (``make_web_engine``), released by ``close_app``.
    """
    app = Flask(__name__)
    app.config["TESTING"] = testing
    app.jinja_env.autoescape = True
    owns_engine = engine is None
    if engine is None:
        engine = make_web_engine(database_url or (config.database if config else DEFAULT_DATABASE))
    app.extensions[EXTENSION] = WebState(engine, session_factory(engine), config, owns_engine=owns_engine)

    from web import badges, caching, feeds, health, metrics, reports
    from web.admin import bp as admin_bp
    from web.api_v1 import bp as api_v1_bp
    from web.api_v2 import bp as api_v2_bp
    from web.status import bp as status_bp
    from web.subscribe import bp as subscribe_bp

    app.register_blueprint(status_bp)
    app.register_blueprint(subscribe_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(api_v1_bp)
    app.register_blueprint(api_v2_bp)
    for public in (feeds, badges, metrics, health):  # /feed.atom|rss, /badge/<service>.svg, /metrics, /readyz
        app.register_blueprint(public.bp)
    app.register_blueprint(reports.bp)  # /reports, /reports/<week>: public or admin-only (reports.weekly.public)
    app.teardown_appcontext(close_session)
    app.after_request(_security_headers)
    caching.install(app)  # ETag, 304, Cache-Control, gzip; the render cache of @cached_view
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(InternalServerError, _internal_error)
    app.register_error_handler(PoolTimeout, _database_unavailable)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.context_processor(lambda: {"site": state().site})
    return app


def make_web_engine(url: str) -> Engine:
    """The page's own engine: at most ``POOL_SIZE`` connections, a request waits ``POOL_TIMEOUT`` s for
    one.  Separate from the monitor's engine, so visitors can never take the connections the store,
    detection and alerts need; a busy page answers 503 instead of queueing without end."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory":
            return make_engine(url)  # one in-memory database per connection: a pool has nothing to share
        return make_engine(url, pool_size=POOL_SIZE, max_overflow=0, pool_timeout=POOL_TIMEOUT)
    connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": CONNECT_TIMEOUT}
    return make_engine(url, pool_size=POOL_SIZE, max_overflow=0, pool_timeout=POOL_TIMEOUT, connect_args=connect_args)


def close_app(app: Flask) -> None:
    """Release the database pool the app made for itself (an engine it was given stays open)."""
    web = app.extensions.get(EXTENSION)
    if isinstance(web, WebState) and web.owns_engine:
        web.engine.dispose()


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _http_error(error: HTTPException) -> tuple[str, int, dict[str, str]]:
    # keep what the error says in its headers (a 405's Allow); the body is our page
    headers = {name: value for name, value in error.get_headers() if name.lower() != "content-type"}
    page = render_template("error.html", code=error.code, title=error.name, message=error.description)
    return page, error.code or 500, headers


def _database_unavailable(error: Exception) -> tuple[str, int, dict[str, str]]:
    """The page's pool is busy or the database does not answer: 503 and when to retry, the cause to the log only."""
    cause = str(getattr(error, "orig", None) or error).splitlines()
    log.warning("status page: database unavailable: %s", cause[0][:200] if cause else type(error).__name__)
    return _http_error(ServiceUnavailable(
        "The status page is busy or cannot reach its database. Please try again shortly.", retry_after=RETRY_AFTER))


def _internal_error(_error: InternalServerError) -> tuple[str, int]:
    """Unhandled exceptions (Flask has logged them): a plain page that reveals nothing of the cause."""
    page, code, _ = _http_error(InternalServerError())
    return page, code
