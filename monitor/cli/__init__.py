"""The ``genstatus`` command line (docs/contracts.md).  Exit codes: 0 ok, 1 unhealthy, 2 usage/config error.

One module per command group; this one builds the parser and dispatches.  A command's module is
imported only when that command runs (``lazy``), and the modules import their heavy dependencies
(config schema, database, scoring, Flask) inside the commands: ``genstatus --help`` and a one-shot
``probe`` or ``score`` pay only for what they use (``tests/test_cli_imports.py`` keeps it so).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable
from importlib import import_module

from monitor.cli.common import (
    DEFAULT_CONFIG_NAME,
    DEFAULT_EMULATOR_PORT,
    DEFAULT_WEB_PORT,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    setup_logging,
)
from monitor.cli.reports import add_report_parser
from monitor.cli.users import add_user_parser


def lazy(target: str) -> Callable[[argparse.Namespace], int]:
    """The command ``module:function``, imported when it runs rather than when the parser is built."""
    module, _, name = target.partition(":")

    def run(args: argparse.Namespace) -> int:
        return getattr(import_module(module), name)(args)

    run.__qualname__ = run.__name__ = name
    return run


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

    config_help = f"config file (default: $GENSTATUS_CONFIG or ./{DEFAULT_CONFIG_NAME})"
    parser = argparse.ArgumentParser(
        prog="genstatus",
        description="Reliability monitor and status page for AI image-generation services.",
        epilog="Exit codes: 0 ok, 1 the checked thing is unhealthy, 2 usage or config error.",
    )
    parser.add_argument("-c", "--config", help=config_help)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # every command takes them too; SUPPRESS: one not given after the command leaves the value given
    # before it (``genstatus -c other.yaml check-config`` and ``genstatus check-config -c other.yaml`` agree)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", default=argparse.SUPPRESS, help=config_help)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("init", parents=[common], help="write a commented starter config",
                       description="Write a commented starter genstatus.yaml that runs as is against the emulator.")
    p.add_argument("dir", nargs="?", default=".", help="directory to write genstatus.yaml into (default: .)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--example", choices=["all"],
                   help="'all': one service per emulated provider (with comments on each real service)")
    p.set_defaults(func=lazy("monitor.cli.setup:cmd_init"))

    p = sub.add_parser("check-config", parents=[common], help="validate the config (exit 0, or 2 with the error)",
                       description="Validate the config; print each problem as FILE:LINE key.path: message.")
    p.set_defaults(func=lazy("monitor.cli.setup:cmd_check_config"))

    p = sub.add_parser("db", parents=[common], help="database maintenance", description="Database maintenance.")
    db_sub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    q = db_sub.add_parser("upgrade", parents=[common], help="migrate the database to the latest schema",
                          description="Alembic upgrade to head (run, serve and probe also do this at start-up).")
    q.set_defaults(func=lazy("monitor.cli.setup:cmd_db_upgrade"))

    p = sub.add_parser("run", parents=[common], help="probe, store and serve the status page in one process",
                       description="Everything in one process: scheduler, probes, store and status page. Ctrl-C stops cleanly.")
    p.add_argument("--region", help="region name this process probes from (default: the config's region)")
    p.add_argument("--host", default="127.0.0.1", help="address for the status page (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_WEB_PORT, help=f"port for the status page (default {DEFAULT_WEB_PORT})")
    p.add_argument("--no-web", action="store_true", help="do not serve the status page")
    p.set_defaults(func=lazy("monitor.cli.serving:cmd_run"))

    p = sub.add_parser("serve", parents=[common], help="serve the status page only",
                       description="Serve the status page from the configured database (no probing).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_WEB_PORT, help=f"port (default {DEFAULT_WEB_PORT})")
    p.set_defaults(func=lazy("monitor.cli.serving:cmd_serve"))

    p = sub.add_parser("probe", parents=[common], help="run one probe now and print the result",
                       description="Run one probe now, print the result and store it (unless --dry-run). "
                                   "Exit 0 when the service answered well (ok or slow), 1 otherwise.")
    p.add_argument("service", help="service id from the config")
    p.add_argument("--canary", help="canary id (default: the service's first canary)")
    p.add_argument("--health", action="store_true", help="run the cheap health check instead of a generation")
    p.add_argument("--region", help="region name to record (default: the config's region)")
    p.add_argument("--json", action="store_true", help="print the full result record as JSON")
    p.add_argument("--dry-run", action="store_true", help="do not store the result")
    p.set_defaults(func=lazy("monitor.cli.probing:cmd_probe"))

    p = sub.add_parser("emulator", parents=[common], help="serve the provider emulators on loopback",
                       description="Serve the protocol-faithful provider emulators under /<provider>/ on one port, "
                                   "with the fault switch at /_faults/<provider>. With --scenario, faults are also "
                                   "set and cleared on a timeline.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=SCENARIO_HELP + textwrap.fill(f"faults: {', '.join(FAULTS)}", 88, subsequent_indent="  "))
    p.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_EMULATOR_PORT, help=f"port (default {DEFAULT_EMULATOR_PORT})")
    p.add_argument("--scenario", metavar="FILE", help="a YAML timeline of faults to play (see below)")
    p.set_defaults(func=lazy("monitor.cli.serving:cmd_emulator"))

    p = sub.add_parser("replay", parents=[common], help="run detection over a trace and print the incidents",
                       description="Run the detector over a JSON Lines trace of probe results (one per line: ts, service, "
                                   "region, canary, outcome, latency_ms, quality, http_status) and print the incidents it "
                                   "would open. Detector settings come from -c CONFIG (its detection: section and "
                                   "services), else the defaults. Deterministic.")
    p.add_argument("trace", help="trace file (JSON Lines)")
    p.add_argument("--json", action="store_true", help='print {"incidents": [...]} as JSON')
    p.add_argument("--updates", action="store_true", help="with --json, include each incident's updates")
    p.set_defaults(func=lazy("monitor.cli.analysis:cmd_replay"))

    p = sub.add_parser("score", parents=[common], help="score one image file and print the verdict",
                       description="Score one image file: decode and validate, degenerate-output detectors, perceptual "
                                   "hashes and, with --reference, drift and sharpness against the canary's own pictures. "
                                   "Exit 0 for pass, 1 for degraded or fail, 2 when it could not be judged (a missing or "
                                   "unreadable file, not an image, an unsupported format or size) or a usage error.")
    p.add_argument("image", help="the image file to score")
    p.add_argument("--prompt", help="the prompt the image was generated for (e.g. a dark scene is not a black placeholder)")
    p.add_argument("--reference", action="extend", nargs="+", metavar="IMG",
                   help="reference picture(s) of the same canary (repeatable: --reference a.png --reference b.png); "
                        "one that is blank, noise or not an image is left out, with a reason")
    p.add_argument("--expect-text", metavar="TEXT", help="text the image must show legibly (OCR; needs the ocr extra)")
    p.add_argument("--json", action="store_true",
                   help='print {"verdict", "score", "flags", "hashes", "reference_distance", "reasons"} as JSON')
    p.set_defaults(func=lazy("monitor.cli.analysis:cmd_score"))

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
    p.set_defaults(func=lazy("monitor.cli.probing:cmd_baseline"))

    p = sub.add_parser("alert-test", parents=[common], help="send a test alert through one channel",
                       description="Renders a realistic, clearly marked test alert through the real template and "
                                   "channel, and prints the receiver's answer or the exact error (exit 0 sent, 1 "
                                   "failed, 2 usage or config error).")
    p.add_argument("channel", metavar="CHANNEL", help="the id of a channel under alerts.channels")
    p.add_argument("--event", choices=("opened", "resolved"), default="opened", help="which message to send (default opened)")
    p.set_defaults(func=lazy("monitor.cli.alerting:cmd_alert_test"))

    p = sub.add_parser("demo", parents=[common], help="a self-contained demo: emulator, monitor and status page",
                       description="Temporary SQLite database, the emulated providers on loopback, the monitor probing "
                                   "them every few seconds and the status page. Prints the URL; Ctrl-C stops everything.")
    p.add_argument("--host", default="127.0.0.1", help="address for the status page (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_WEB_PORT, help=f"port for the status page (default {DEFAULT_WEB_PORT})")
    p.add_argument("--interval", default="5s", help="probe interval of the demo services (default 5s)")
    p.add_argument("--scenario", metavar="FILE|none", default=None,
                   help="the incident timeline to play (default: the built-in one; 'none': no scripted incidents)")
    p.add_argument("--emulator-port", type=int, default=0, metavar="N",
                   help="port for the emulated providers on 127.0.0.1; the demo's services point there (default: any free port)")
    p.set_defaults(func=lazy("monitor.cli.serving:cmd_demo"))

    add_user_parser(sub, common)
    add_report_parser(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"genstatus: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        return _closed_pipe()
    except Exception as exc:
        loader = sys.modules.get("monitor.config.loader")  # not imported: the error cannot be a ConfigError
        if loader is None or not isinstance(exc, loader.ConfigError):
            raise
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_USAGE


def _closed_pipe() -> int:
    """The reader of our output went away (``genstatus probe ... | head``): stop quietly, as other tools do.

    Python would otherwise print a traceback, and then another one when it flushes stdout at exit:
    stdout is pointed at /dev/null so that last flush has nowhere to fail.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_OK

