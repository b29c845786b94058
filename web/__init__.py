"""The status page web app (Flask).  It only reads the database; probes run elsewhere."""

from __future__ import annotations

from flask import Flask, Response, render_template
from sqlalchemy import Engine
from werkzeug.exceptions import HTTPException, InternalServerError

from monitor.config import DEFAULT_DATABASE, Config
from monitor.store.db import make_engine, session_factory
from web.context import EXTENSION, WebState, close_session, state

#: No inline scripts or styles anywhere: the pages are plain server-rendered HTML.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; "
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

    The engine is ``app.extensions["genstatus"].engine``; whoever stops the app disposes of it.
    """
    app = Flask(__name__)
    app.config["TESTING"] = testing
    app.jinja_env.autoescape = True
    if engine is None:
        engine = make_engine(database_url or (config.database if config else DEFAULT_DATABASE))
    app.extensions[EXTENSION] = WebState(engine, session_factory(engine), config)

    from web.status import bp as status_bp

    app.register_blueprint(status_bp)
    app.teardown_appcontext(close_session)
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(InternalServerError, _internal_error)
    app.context_processor(lambda: {"site": state().site})
    return app


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _http_error(error: HTTPException) -> tuple[str, int, dict[str, str]]:
    # keep what the error says in its headers (a 405's Allow); the body is our page
    headers = {name: value for name, value in error.get_headers() if name.lower() != "content-type"}
    page = render_template("error.html", code=error.code, title=error.name, message=error.description)
    return page, error.code or 500, headers


def _internal_error(_error: InternalServerError) -> tuple[str, int]:
    """Unhandled exceptions (Flask has logged them): a plain page that reveals nothing of the cause."""
    page, code, _ = _http_error(InternalServerError())
    return page, code
