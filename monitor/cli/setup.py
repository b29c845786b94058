"""``init``, ``check-config`` and ``db upgrade``: getting a config and a database ready."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from monitor.cli.common import EXIT_OK, UsageError, load, require_plugins
from monitor.config import DEFAULT_CONFIG_NAME, config_path
from monitor.config.subscriptions import subscription_warnings


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.dir) / DEFAULT_CONFIG_NAME
    if target.exists() and not args.force:
        raise UsageError(f"{target} already exists (use --force to overwrite)")
    if args.example == "all":
        from monitor.cli.examples import example_config

        text = example_config()
    else:
        text = resources.files("monitor.cli").joinpath("starter.yaml").read_text(encoding="utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    print("next: 'genstatus emulator' in one terminal, 'genstatus run' in another, then open http://127.0.0.1:8080/")
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load(args)
    require_plugins(config, args, load_models=False)
    print(f"{config_path(args.config)}: OK ({len(config.services)} services, {len(config.canaries)} canaries)")
    routed = {channel_id for route in config.alerts.routes for channel_id in route.channels}
    weekly = set(config.reports.weekly.channels) if config.reports.weekly else set()
    subscribers = {config.subscriptions.email_channel} if config.subscriptions.enabled else set()
    for channel in config.alerts.channels:
        if channel.id not in routed | weekly | subscribers:
            print(f"warning: alert channel {channel.id!r} is not used by any route (alerts.routes), so it gets nothing",
                  file=sys.stderr)
    if config.alerts.channels and not config.alerts.routes:
        print("warning: alerts.channels are configured but alerts.routes is empty: no alert is sent", file=sys.stderr)
    for warning in subscription_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from monitor.store.db import make_engine
    from monitor.store.migrate import current_revision, upgrade

    config = load(args)
    engine = make_engine(config.database)
    try:
        upgrade(engine)
        print(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()
    return EXIT_OK

