"""The ``genstatus`` command line (DESIGN.md §5).  Exit codes: 0 ok, 1 unhealthy, 2 usage/config error.

The library modules of ``monitor`` never import Flask; the commands that serve pages import
``web`` lazily, here, where the monitor and the web UI are put together.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import textwrap
import threading
from importlib import resources
from pathlib import Path

from monitor.config import DEFAULT_CONFIG_NAME, ConfigError, config_path, load_config
from monitor.durations import format_duration

EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE = 0, 1, 2
DEFAULT_WEB_PORT = 8080
DEFAULT_EMULATOR_PORT = 8765

log = logging.getLogger("genstatus")


class UsageError(Exception):
    """A usage problem the user can fix; printed as one line, exit 2."""


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("alembic", "apscheduler", "httpx", "httpcore", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _wait_for_signal() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


# -- commands --------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.dir) / DEFAULT_CONFIG_NAME
    if target.exists() and not args.force:
        raise UsageError(f"{target} already exists (use --force to overwrite)")
    if args.example == "all":
        from monitor.examples import example_config

        text = example_config()
    else:
        text = resources.files("monitor").joinpath("starter.yaml").read_text(encoding="utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    print("next: 'genstatus emulator' in one terminal, 'genstatus run' in another, then open http://127.0.0.1:8080/")
    return EXIT_OK


def _service_and_canary(config, service_id: str, canary_id: str | None):
    """The configured service and, when asked for, one of its canaries; UsageError naming what exists."""
    try:
        service = config.service(service_id)
    except KeyError:
        raise UsageError(f"no service {service_id!r} in the config (have: {', '.join(s.id for s in config.services)})") from None
    if canary_id is not None and canary_id not in service.canaries:
        raise UsageError(f"service {service.id} has no canary {canary_id!r} (has: {', '.join(service.canaries)})")
    return service, (config.canary(canary_id) if canary_id is not None else None)


def _require_plugins(config, args: argparse.Namespace, *, load_models: bool) -> None:
    """Optional quality checks the config asks for must be able to run here (exit 2 otherwise)."""
    from monitor.scoring.plugins import plugin_problems

    problems = plugin_problems(config, load_models=load_models)
    if problems:
        raise UsageError("\n".join(f"{config_path(args.config)}: {line}" for line in problems))


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    _require_plugins(config, args, load_models=False)
    print(f"{config_path(args.config)}: OK ({len(config.services)} services, {len(config.canaries)} canaries)")
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from monitor.db import make_engine
    from monitor.migrate import current_revision, upgrade

    config = load_config(args.config)
    engine = make_engine(config.database)
    try:
        upgrade(engine)
        print(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()
    return EXIT_OK


def cmd_probe(args: argparse.Namespace) -> int:
    from monitor.enums import Outcome, ProbeKind
    from monitor.runner import ProbeRunner

    config = load_config(args.config)
    service, _ = _service_and_canary(config, args.service, None)
    if args.health:
        canary, kind = None, ProbeKind.HEALTH
    else:
        _, canary = _service_and_canary(config, service.id, args.canary or service.canaries[0])
        kind = ProbeKind.CANARY
        _require_plugins(config, args, load_models=True)
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
    return EXIT_OK if result.outcome in (Outcome.OK, Outcome.SLOW) else EXIT_UNHEALTHY


def _probe_and_store(config, service, canary, kind, region):
    """Run one probe scored against the stored references and history, then store it."""
    from monitor.db import make_engine
    from monitor.migrate import upgrade
    from monitor.reference_store import ReferenceSource
    from monitor.runner import ProbeRunner
    from monitor.store import ResultStore

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
    from monitor.baseline import capture
    from monitor.db import make_engine
    from monitor.migrate import upgrade
    from monitor.runner import ProbeRunner
    from monitor.store import ResultStore

    config = load_config(args.config)
    service, canary = _service_and_canary(config, args.service, args.canary)
    if args.samples < 1 or args.samples > 100:
        raise UsageError("--samples must be between 1 and 100")
    canaries = [canary] if canary else config.canaries_of(service)
    _require_plugins(config, args, load_models=True)
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


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.runtime import MonitorRuntime

    config = load_config(args.config)
    _require_plugins(config, args, load_models=True)
    region = args.region or config.region
    # Results that cannot be written while the database is down wait here (replayed on recovery).
    spool = os.environ.get("GENSTATUS_SPOOL") or config_path(args.config).resolve().parent / f"genstatus-spool-{region}.jsonl"
    runtime = MonitorRuntime(config, region=region, spool_path=str(spool))
    web = None
    runtime.start()
    try:
        if not args.no_web:
            web = _start_web(config, runtime.engine, args.host, args.port)
            print(f"status page: {web.url}/", flush=True)
        _wait_for_signal()
    finally:
        print("stopping: letting in-flight probes finish...", file=sys.stderr, flush=True)
        if web:
            web.shutdown()
        runtime.stop()
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from monitor.db import make_engine
    from monitor.migrate import upgrade

    config = load_config(args.config)
    engine = make_engine(config.database)
    upgrade(engine)
    web = _start_web(config, engine, args.host, args.port)
    print(f"status page: {web.url}/", flush=True)
    try:
        _wait_for_signal()
    finally:
        web.shutdown()
        engine.dispose()
    return EXIT_OK


def _start_web(config, engine, host: str, port: int):
    from web import create_app
    from web.server import start_server

    try:
        return start_server(create_app(config, engine=engine), host=host, port=port)
    except OSError as exc:
        raise UsageError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    except SystemExit:  # werkzeug exits when the port is taken, after explaining why on stderr
        raise UsageError(f"cannot serve on {host}:{port}: the address is in use (choose another with --port)") from None


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
        _wait_for_signal()
    finally:
        server.stop()
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from monitor.detect import DetectorConfig
    from monitor.replay import TraceError, read_trace, replay

    config = load_config(args.config) if args.config else None  # no -c: the documented defaults
    try:
        observations = read_trace(args.trace)
    except FileNotFoundError:
        raise UsageError(f"{args.trace}: no such trace file") from None
    except TraceError as exc:
        raise UsageError(str(exc)) from None
    incidents = replay(observations, DetectorConfig.from_config(config))
    if args.json:
        print(json.dumps({"incidents": [i.to_dict(with_updates=args.updates) for i in incidents]}, indent=2))
        return EXIT_OK
    print(f"{len(observations)} results, {len(incidents)} incident{'' if len(incidents) == 1 else 's'}")
    for incident in incidents:
        data = incident.to_dict()
        subject = data["service"] or f"region {', '.join(data['regions'])}"
        end = f"resolved {data['resolved_at']}" if data["resolved_at"] else "still open"
        print(f"  {data['kind']:<8} {data['impact']:<8} {data['audience']:<8} {subject} [{', '.join(data['regions'])}] "
              f"started {data['started_at']}, detected {data['detected_at']}, {end}")
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    from monitor.enums import Verdict
    from monitor.scoring import score_image

    def read(path: str, what: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            raise UsageError(f"{path}: no such {what} file") from None
        except OSError as exc:
            raise UsageError(f"{path}: cannot read the {what} file: {exc.strerror or exc}") from None

    data = read(args.image, "image")
    references = [read(path, "reference") for path in args.reference or []]
    if args.expect_text:
        from monitor.scoring.ocr import ocr_available

        if not ocr_available():
            raise UsageError("--expect-text needs the OCR extra: pip install 'genstatus[ocr]'")
    assessment = score_image(data, prompt=args.prompt, references=references or None, noise_check=True,
                             expect_text=args.expect_text)
    result = assessment.to_dict()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        line = f"{args.image}: {result['verdict']} (score {result['score']:.2f})"
        if result["reference_distance"] is not None:
            line += f", {result['reference_distance']} bits from the nearest reference"
        print(line)
        for reason in result["reasons"]:
            print(f"  {reason}")
    return EXIT_OK if assessment.verdict is Verdict.PASS else EXIT_UNHEALTHY


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    return run_demo(host=args.host, port=args.port, interval=args.interval, scenario=args.scenario)


# -- parser ----------------------------------------------------------------------------


SCENARIO_HELP = """\
scenario file (times are offsets from the emulator's start; 'for' is optional):
  events:
    - {at: 20s, provider: openai, fault: server_error, for: 1m}
    - {at: 2m, provider: openai, service: dalle3, fault: blank_image, for: 1m}
    - {at: 4m, provider: openai, fault: slow, params: {seconds: 8}, for: 1m}
  repeat: 6m        # optional: start over after this long
'service' targets one service, addressed as /s/<service>/<provider>/... in its base_url.
"""


def build_parser() -> argparse.ArgumentParser:
    from probes.emulator.faults import FAULTS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", help=f"config file (default: $GENSTATUS_CONFIG or ./{DEFAULT_CONFIG_NAME})")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    parser = argparse.ArgumentParser(
        prog="genstatus",
        description="Reliability monitor and status page for AI image-generation services.",
        epilog="Exit codes: 0 ok, 1 the checked thing is unhealthy, 2 usage or config error.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("init", parents=[common], help="write a commented starter config",
                       description="Write a commented starter genstatus.yaml that runs as is against the emulator.")
    p.add_argument("dir", nargs="?", default=".", help="directory to write genstatus.yaml into (default: .)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--example", choices=["all"],
                   help="'all': one service per emulated provider (with comments on each real service)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("check-config", parents=[common], help="validate the config (exit 0, or 2 with the error)",
                       description="Validate the config; print each problem as FILE:LINE key.path: message.")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("db", parents=[common], help="database maintenance", description="Database maintenance.")
    db_sub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    q = db_sub.add_parser("upgrade", parents=[common], help="migrate the database to the latest schema",
                          description="Alembic upgrade to head (run, serve and probe also do this at start-up).")
    q.set_defaults(func=cmd_db_upgrade)

    p = sub.add_parser("run", parents=[common], help="probe, store and serve the status page in one process",
                       description="Everything in one process: scheduler, probes, store and status page. Ctrl-C stops cleanly.")
    p.add_argument("--region", help="region name this process probes from (default: the config's region)")
    p.add_argument("--host", default="127.0.0.1", help="address for the status page (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_WEB_PORT, help=f"port for the status page (default {DEFAULT_WEB_PORT})")
    p.add_argument("--no-web", action="store_true", help="do not serve the status page")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("serve", parents=[common], help="serve the status page only",
                       description="Serve the status page from the configured database (no probing).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_WEB_PORT, help=f"port (default {DEFAULT_WEB_PORT})")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("probe", parents=[common], help="run one probe now and print the result",
                       description="Run one probe now, print the result and store it (unless --dry-run). "
                                   "Exit 0 when the service answered well (ok or slow), 1 otherwise.")
    p.add_argument("service", help="service id from the config")
    p.add_argument("--canary", help="canary id (default: the service's first canary)")
    p.add_argument("--health", action="store_true", help="run the cheap health check instead of a generation")
    p.add_argument("--region", help="region name to record (default: the config's region)")
    p.add_argument("--json", action="store_true", help="print the full result record as JSON")
    p.add_argument("--dry-run", action="store_true", help="do not store the result")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("emulator", parents=[common], help="serve the provider emulators on loopback",
                       description="Serve the protocol-faithful provider emulators under /<provider>/ on one port, "
                                   "with the fault switch at /_faults/<provider>. With --scenario, faults are also "
                                   "set and cleared on a timeline.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=SCENARIO_HELP + textwrap.fill(f"faults: {', '.join(FAULTS)}", 88, subsequent_indent="  "))
    p.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_EMULATOR_PORT, help=f"port (default {DEFAULT_EMULATOR_PORT})")
    p.add_argument("--scenario", metavar="FILE", help="a YAML timeline of faults to play (see below)")
    p.set_defaults(func=cmd_emulator)

    p = sub.add_parser("replay", parents=[common], help="run detection over a trace and print the incidents",
                       description="Run the detector over a JSON Lines trace of probe results (one per line: ts, service, "
                                   "region, canary, outcome, latency_ms, quality, http_status) and print the incidents it "
                                   "would open. Detector settings come from -c CONFIG (its detection: section and "
                                   "services), else the defaults. Deterministic.")
    p.add_argument("trace", help="trace file (JSON Lines)")
    p.add_argument("--json", action="store_true", help='print {"incidents": [...]} as JSON')
    p.add_argument("--updates", action="store_true", help="with --json, include each incident's updates")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("score", parents=[common], help="score one image file and print the verdict",
                       description="Score one image file: decode and validate, degenerate-output detectors, perceptual "
                                   "hashes and, with --reference, drift and sharpness against the canary's own pictures. "
                                   "Exit 0 for pass, 1 for degraded or fail, 2 for a usage error.")
    p.add_argument("image", help="the image file to score")
    p.add_argument("--prompt", help="the prompt the image was generated for (e.g. a dark scene is not a black placeholder)")
    p.add_argument("--reference", nargs="+", metavar="IMG", help="reference picture(s) of the same canary")
    p.add_argument("--expect-text", metavar="TEXT", help="text the image must show legibly (OCR; needs the ocr extra)")
    p.add_argument("--json", action="store_true",
                   help='print {"verdict", "score", "flags", "hashes", "reference_distance", "reasons"} as JSON')
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("baseline", parents=[common], help="capture a canary's reference profile from sample runs",
                       description="Run N real generations of each canary of SERVICE (or one with --canary) and store "
                                   "their hashes, image statistics and thumbnails as the reference profile every agent "
                                   "scores against (drift for fixed seeds the provider reproduces, blur and statistics "
                                   "outside the canary's normal). Samples cost what a canary costs and are not stored "
                                   "as results. Exit 0 when every profile was stored, 1 when a canary had too few good "
                                   "samples (its old profile is kept), 2 for a usage error.")
    p.add_argument("service", help="service id from the config")
    p.add_argument("--canary", metavar="ID", help="only this canary (default: every canary of the service)")
    p.add_argument("--samples", type=int, default=5, metavar="N", help="sample runs per canary (default 5)")
    p.add_argument("--region", help="region recorded with the references (default: the config's)")
    p.add_argument("--json", action="store_true", help='print {"profiles": [...]} as JSON')
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("demo", parents=[common], help="a self-contained demo: emulator, monitor and status page",
                       description="Temporary SQLite database, the emulated providers on loopback, the monitor probing "
                                   "them every few seconds and the status page. Prints the URL; Ctrl-C stops everything.")
    p.add_argument("--host", default="127.0.0.1", help="address for the status page (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_WEB_PORT, help=f"port for the status page (default {DEFAULT_WEB_PORT})")
    p.add_argument("--interval", default="5s", help="probe interval of the demo services (default 5s)")
    p.add_argument("--scenario", metavar="FILE|none", default=None,
                   help="the incident timeline to play (default: the built-in one; 'none': no scripted incidents)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"genstatus: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
