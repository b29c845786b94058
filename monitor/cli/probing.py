"""``probe`` and ``baseline``: generations run now, against the configured services."""

from __future__ import annotations

import argparse
import json
import sys

from monitor.cli.common import EXIT_OK, EXIT_UNHEALTHY, UsageError, load, require_plugins, service_and_canary


def cmd_probe(args: argparse.Namespace) -> int:
    from monitor.engine.runner import ProbeRunner
    from monitor.enums import HEALTHY_OUTCOMES, ProbeKind

    config = load(args)
    service, _ = service_and_canary(config, args.service, None)
    if args.health:
        canary, kind = None, ProbeKind.HEALTH
    else:
        _, canary = service_and_canary(config, service.id, args.canary or service.canaries[0])
        kind = ProbeKind.CANARY
        require_plugins(config, args, load_models=True)
    region = args.region or config.region
    if args.dry_run:
        runner = ProbeRunner(config, region=region)
        try:
            result = runner.run(service, canary, kind)
        finally:
            runner.close()
    else:
        result = _probe_and_store(config, service, canary, kind, region)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        total = result.latency_ms.get("total")
        line = f"{result.service} {result.canary or 'health'} [{result.region}]: {result.outcome} in {total:.0f} ms"
        if result.http_status:
            line += f" (HTTP {result.http_status})"
        print(line)
        if result.error_detail:
            print(f"  {result.error_detail}")
    return EXIT_OK if result.outcome in HEALTHY_OUTCOMES else EXIT_UNHEALTHY


def _probe_and_store(config, service, canary, kind, region):
    """Run one probe scored against the stored references and history, then store it."""
    from monitor.engine.runner import ProbeRunner
    from monitor.store.db import make_engine
    from monitor.store.migrate import upgrade
    from monitor.store.references import ReferenceSource
    from monitor.store.results import ResultStore

    engine = make_engine(config.database)
    store = None
    try:
        try:
            upgrade(engine)
            store = ResultStore(engine)
            store.sync_catalog(config)
        except Exception as exc:  # noqa: BLE001 - probe anyway; report that nothing is stored
            print(f"genstatus: database unavailable, result will not be stored: {type(exc).__name__}: "
                  f"{str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        runner = ProbeRunner(config, region=region, references=ReferenceSource(engine) if store else None)
        try:
            result = runner.run(service, canary, kind)
        finally:
            runner.close()
        if store is not None:
            try:
                store.record(result)
            except Exception as exc:  # noqa: BLE001 - the probe ran; report it even if storing failed
                print(f"genstatus: result not stored: {type(exc).__name__}: "
                      f"{str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return result
    finally:
        engine.dispose()


def cmd_baseline(args: argparse.Namespace) -> int:
    from monitor.engine.baseline import capture
    from monitor.engine.runner import ProbeRunner
    from monitor.store.db import make_engine
    from monitor.store.migrate import upgrade
    from monitor.store.results import ResultStore

    config = load(args)
    service, canary = service_and_canary(config, args.service, args.canary)
    if args.samples < 1 or args.samples > 100:
        raise UsageError("--samples must be between 1 and 100")
    canaries = [canary] if canary else config.canaries_of(service)
    require_plugins(config, args, load_models=True)
    region = args.region or config.region
    engine = make_engine(config.database)
    runner = ProbeRunner(config, region=region)
    reports = []
    try:
        upgrade(engine)
        ResultStore(engine).sync_catalog(config)
        for canary in canaries:
            if not args.json:
                print(f"{service.id} / {canary.id}: {args.samples} sample runs ...", flush=True)
            reports.append(capture(config, service, canary, lambda s, c: runner.run(s, c, keep_image=True), engine,
                                   samples=args.samples, region=region))
    finally:
        runner.close()
        engine.dispose()
    if args.json:
        print(json.dumps({"profiles": [r.to_dict() for r in reports]}, indent=2))
    else:
        for report in reports:
            data = report.to_dict()
            verdict = "stored" if report.stored else "NOT stored"
            print(f"{report.service} / {report.canary}: {data['references']} references of {report.samples} samples, "
                  f"{verdict}")
            for line in report.failures + report.notes:
                print(f"  {line}")
            if data["statistics"]:
                print("  typical: " + ", ".join(f"{k} {v:g}" for k, v in data["statistics"].items()))
    return EXIT_OK if all(r.stored for r in reports) else EXIT_UNHEALTHY

