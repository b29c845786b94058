"""What every command shares: exit codes, usage errors, config loading, logging, waiting, the web server."""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config schema (pydantic, its validators) is imported by the commands that load one
    from monitor.config import Config

EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE = 0, 1, 2
DEFAULT_WEB_PORT = 8080
DEFAULT_EMULATOR_PORT = 8765
#: ``monitor.config.DEFAULT_CONFIG_NAME``, repeated here for ``--help`` (test_cli_imports checks they agree)
DEFAULT_CONFIG_NAME = "genstatus.yaml"


class UsageError(Exception):
    """A usage problem the user can fix; printed as one line, exit 2."""


def load(args: argparse.Namespace) -> Config:
    """The config named by ``-c`` (or the default), checked with the provider rules as well."""
    from monitor.config import load_config
    from probes.registry import provider_issues

    return load_config(args.config, checks=[provider_issues])


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("alembic", "apscheduler", "httpx", "httpcore", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def wait_for_signal() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


def service_and_canary(config, service_id: str, canary_id: str | None):
    """The configured service and, when asked for, one of its canaries; UsageError naming what exists."""
    try:
        service = config.service(service_id)
    except KeyError:
        raise UsageError(f"no service {service_id!r} in the config (have: {', '.join(s.id for s in config.services)})") from None
    if canary_id is not None and canary_id not in service.canaries:
        raise UsageError(f"service {service.id} has no canary {canary_id!r} (has: {', '.join(service.canaries)})")
    return service, (config.canary(canary_id) if canary_id is not None else None)


def require_plugins(config, args: argparse.Namespace, *, load_models: bool) -> None:
    """Optional quality checks the config asks for must be able to run here (exit 2 otherwise)."""
    from monitor.config import config_path
    from monitor.scoring.plugins import plugin_problems

    problems = plugin_problems(config, load_models=load_models)
    if problems:
        raise UsageError("\n".join(f"{config_path(args.config)}: {line}" for line in problems))


def start_web(config, engine, host: str, port: int):
    from web import create_app
    from web.server import start_server

    try:  # the page gets a small pool of its own on the same database: visitors never wait on, or take, the monitor's
        return start_server(create_app(config, database_url=engine.url.render_as_string(hide_password=False)), host=host, port=port)
    except OSError as exc:  # waitress: EADDRINUSE, EACCES, an unknown host (socket.gaierror) ...
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"cannot serve on {host}:{port}: the address is in use (choose another with --port)") from None
        raise UsageError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    except ValueError as exc:  # waitress rejects a listen address it cannot parse
        raise UsageError(f"cannot serve on {host}:{port}: {exc}") from None

