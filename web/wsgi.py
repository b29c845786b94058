"""The status page as a WSGI app for any WSGI server: ``gunicorn -w 4 'web.wsgi:app'``.

The config is ``$GENSTATUS_CONFIG``, else ``./genstatus.yaml`` (``GENSTATUS_DATABASE_URL`` overrides its
database), read once when this module is imported.  The page only reads the database: migrate it first
(``genstatus db upgrade``, or let ``genstatus run`` do it).

Each process reads through a pool of its own of ``web.POOL_SIZE`` connections; a request that waits
``web.POOL_TIMEOUT`` s for one gets a 503 with ``Retry-After``.  With threaded workers keep
``--threads`` at or below ``web.POOL_SIZE``.  Slow clients are the front server's business here: put a
reverse proxy (nginx, a load balancer) with request timeouts in front of gunicorn.
"""

from __future__ import annotations

from flask import Flask

from monitor.config import load_config
from web import create_app


def create_app_from_env() -> Flask:
    """The app for the config ``genstatus serve`` would use without ``-c``; provider rules are not checked here."""
    return create_app(load_config())


app = create_app_from_env()
