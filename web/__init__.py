"""The status page web app (Flask).  It only reads the database; probes run elsewhere."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, Response, current_app, g, render_template
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException, InternalServerError

from monitor.config import DEFAULT_DATABASE, Config, SiteConfig
from monitor.db import make_engine, session_factory
from web.queries import ServiceInfo, active_services

EXTENSION = "genstatus"

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


@dataclass
class WebState:
    """What one app owns: its engine, session factory and (optional) config."""

    engine: Engine
    sessions: sessionmaker[Session]
    config: Config | None

    @property
    def site(self) -> SiteConfig:
        return self.config.site if self.config else SiteConfig()

    def services(self, session: Session) -> list[ServiceInfo]:
        """Services in display order: the config's order when there is one, else the table's."""
        if self.config is None:
            return active_services(session)
        return [ServiceInfo(id=s.id, name=s.display_name, group=s.group) for s in self.config.services]


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
    app.teardown_appcontext(_close_session)
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(InternalServerError, _internal_error)
    app.context_processor(lambda: {"site": state().site})
    return app


def state() -> WebState:
    return current_app.extensions[EXTENSION]


def db_session() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db_session" not in g:
        g.db_session = state().sessions()
    return g.db_session


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _http_error(error: HTTPException) -> tuple[str, int]:
    return render_template("error.html", code=error.code, title=error.name, message=error.description), error.code or 500


def _internal_error(_error: InternalServerError) -> tuple[str, int]:
    """Unhandled exceptions (Flask has logged them): a plain page that reveals nothing of the cause."""
    return _http_error(InternalServerError())
