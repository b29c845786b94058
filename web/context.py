"""What a request sees of its app: the engine, the session of this request, the config."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import Config, SiteConfig
from web.queries import ServiceInfo, active_services

EXTENSION = "genstatus"


@dataclass
class WebState:
    """What one app owns: its engine, session factory and (optional) config."""

    engine: Engine
    sessions: sessionmaker[Session]
    config: Config | None
    owns_engine: bool = False  # made by ``create_app`` (released by ``web.close_app``), not handed in

    @property
    def site(self) -> SiteConfig:
        return self.config.site if self.config else SiteConfig()

    def services(self, session: Session) -> list[ServiceInfo]:
        """Services in display order: the config's order when there is one, else the table's."""
        if self.config is None:
            return active_services(session)
        return [ServiceInfo(id=s.id, name=s.display_name, group=s.group) for s in self.config.services]


def state() -> WebState:
    return current_app.extensions[EXTENSION]


def db_session() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db_session" not in g:
        g.db_session = state().sessions()
    return g.db_session


def close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
