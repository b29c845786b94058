"""``run``, ``serve``, ``emulator`` and ``demo``: the long-running processes."""

from __future__ import annotations

import argparse
import os
import sys

from monitor.cli.common import EXIT_OK, UsageError, load, require_plugins, start_web, wait_for_signal
from monitor.config import config_path
from monitor.config.durations import format_duration


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.engine.runtime import MonitorRuntime
    from monitor.store.exclusive import DatabaseInUse

    config = load(args)
    require_plugins(config, args, load_models=True)
    region = args.region or config.region
    # Results that cannot be written while the database is down wait here (replayed on recovery).
    spool = os.environ.get("GENSTATUS_SPOOL") or config_path(args.config).resolve().parent / f"genstatus-spool-{region}.jsonl"
    try:
        runtime = MonitorRuntime(config, region=region, spool_path=str(spool))
    except DatabaseInUse as exc:
        raise UsageError(str(exc)) from None
    web = None
    runtime.start()
    try:
        if not args.no_web:
            web = start_web(config, runtime.engine, args.host, args.port)
            print(f"status page: {web.url}/", flush=True)
        wait_for_signal()
    finally:
        print("stopping: letting in-flight probes finish...", file=sys.stderr, flush=True)
        if web:
            web.shutdown()
        runtime.stop()
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from monitor.store.db import make_engine
    from monitor.store.migrate import upgrade

    config = load(args)
    engine = make_engine(config.database)
    upgrade(engine)
    web = start_web(config, engine, args.host, args.port)
    print(f"status page: {web.url}/", flush=True)
    try:
        wait_for_signal()
    finally:
        web.shutdown()
        engine.dispose()
    return EXIT_OK


def cmd_emulator(args: argparse.Namespace) -> int:
    from probes.emulator.scenario import load_scenario
    from probes.emulator.server import EMULATORS, EmulatorServer

    scenario = load_scenario(args.scenario) if args.scenario else None
    try:
        server = EmulatorServer(host=args.host, port=args.port, scenario=scenario)
    except OSError as exc:
        raise UsageError(f"cannot serve the emulator on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except SystemExit:  # werkzeug exits when the port is taken, after explaining why on stderr
        raise UsageError(f"cannot serve the emulator on {args.host}:{args.port}: the address is in use") from None
    server.start()
    print(f"emulator: {server.url}", flush=True)
    for provider in sorted(EMULATORS):
        print(f"  {provider:<18} base_url {server.base_url(provider)}", flush=True)
    if scenario is not None:
        cycle = f", repeating every {format_duration(scenario.repeat)}" if scenario.repeat else ""
        print(f"scenario {args.scenario}: {len(scenario.events)} events{cycle}", flush=True)
    print(f"force a fault:  curl -X POST '{server.url}/_faults/openai?fault=server_error'", flush=True)
    print(f"clear faults:   curl -X DELETE '{server.url}/_faults'", flush=True)
    try:
        wait_for_signal()
    finally:
        server.stop()
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.cli.demo import run_demo

    return run_demo(host=args.host, port=args.port, interval=args.interval, scenario=args.scenario,
                    emulator_port=args.emulator_port)

