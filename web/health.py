"""Readiness: ``/readyz`` answers 200 only when the database answers and its schema is at the newest
migration, so a load balancer sends no visitors to a page whose queries would fail on a missing
column (during a rolling upgrade, before ``genstatus migrate`` has run).

``/healthz`` (liveness: the database answers at all) stays in ``web.status``.  The public answer
never names a host, port or database; the cause goes to the log.
"""

from __future__ import annotations

import functools
import logging

from flask import Blueprint
from sqlalchemy.exc import SQLAlchemyError

from web.context import state

log = logging.getLogger("genstatus.web")

bp = Blueprint("health", __name__)


@functools.cache
def head_revision() -> str | None:
    """The newest migration this code ships (fixed for the life of the process)."""
    from alembic.script import ScriptDirectory

    from monitor.store.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def readiness_problem() -> str | None:
    """Why the page is not ready, in words safe to publish; None when it is."""
    from monitor.store.migrate import current_revision

    try:
        current = current_revision(state().engine)
    except SQLAlchemyError as exc:
        log.warning("readiness: database unavailable: %s", str(getattr(exc, "orig", None) or exc).splitlines()[0][:200])
        return "database unavailable"
    if current is None:
        return "database schema not initialised (run genstatus db upgrade)"
    head = head_revision()
    if current != head:
        return f"database schema at revision {current}, this version needs {head} (run genstatus db upgrade)"
    return None


@bp.get("/readyz")
def readyz() -> tuple[dict[str, str], int]:
    problem = readiness_problem()
    if problem is not None:
        return {"status": "error", "reason": problem}, 503
    return {"status": "ok"}, 200
