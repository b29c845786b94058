"""``genstatus demo``: a temporary SQLite database, every emulated provider, a scripted incident
scenario, the monitor and the status page."""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.cli.examples import example_config
from monitor.config import AlertsConfig, Config, ConsoleChannel, RouteConfig, parse_config
from monitor.config.durations import format_duration, parse_duration
from probes.registry import provider_issues

if TYPE_CHECKING:  # pragma: no cover
    from monitor.engine.runtime import MonitorRuntime
    from probes.emulator.scenario import Scenario

DEMO_TIMEOUT = "20s"
#: above this a good answer is "slow"; the emulators answer within 1 s, the built-in scenario's slow
#: spell after 4 s: slow, yet within the default 5 s interval, so no scheduled run is skipped
DEMO_LATENCY_THRESHOLD = "3s"
DEMO_CONFIRM_DELAY = timedelta(seconds=1)
DEMO_FALSE_INCIDENT_BUDGET = 10_000.0  # the most the config allows: the demo shows reactions, not a quiet week
#: the latency window spans this many intervals (at least DEMO_MIN_LATENCY_WINDOW): a slow spell leaves
#: it, and its incident resolves, a couple of minutes after it ends instead of an hour
DEMO_LATENCY_WINDOW_RUNS = 24
DEMO_MIN_LATENCY_WINDOW = timedelta(minutes=2)
#: the scenario plays each service's incident once per cycle: the next one is a new incident, not a reopening
DEMO_REOPEN_WINDOW = timedelta(minutes=5)
#: the service the README's and the demo's own curl example break by hand; the built-in scenario leaves it alone
CURL_EXAMPLE_PROVIDER = "openai"


def demo_config(db_path: Path, emulator_url: str, interval: str) -> Config:
    """One service per emulated provider, each addressed as ``/s/<service>/<provider>``."""
    text = example_config(
        emulator_url, per_service=True, interval=interval, timeout=DEMO_TIMEOUT,
        latency_threshold=DEMO_LATENCY_THRESHOLD, database=f"sqlite:///{db_path}", title="genstatus demo", region="demo",
    )
    config = parse_config(text, "demo.yaml", env={}, checks=[provider_issues])
    # Incidents open after confirmation runs and resolve after a recovery period: keep both short so
    # the demo reacts within seconds; the demo's services have no history, so the loosest false-incident
    # budget lets a run and a few confirmations open an outage (a real deployment keeps the defaults:
    # 20 s, one interval, and evidence sized to each service's week of history).
    # The scenario compresses a day into minutes, so the windows shrink with it: latency over a couple of
    # minutes (an hour by default) and reopening within five (thirty by default).
    latency_window = max(DEMO_MIN_LATENCY_WINDOW, DEMO_LATENCY_WINDOW_RUNS * parse_duration(interval))
    config.detection = config.detection.model_copy(update={"confirm_delay": DEMO_CONFIRM_DELAY,
                                                           "false_incident_budget": DEMO_FALSE_INCIDENT_BUDGET,
                                                           "latency_window": latency_window,
                                                           "reopen_window": DEMO_REOPEN_WINDOW})
    # every alert goes to the log, so a newcomer sees them fire without configuring a channel
    config.alerts = AlertsConfig(channels=[ConsoleChannel(id="console", type="console")],
                                 routes=[RouteConfig(channels=["console"])])
    return config


#: the demo service whose reference profile is captured at start, so the scenario's model swap is drift
DEMO_BASELINE_SERVICE = "automatic1111"


def _baseline_in_background(config: Config, engine, stopping: threading.Event) -> threading.Thread:
    """``genstatus baseline`` for one service, off the main thread (the page is up meanwhile)."""
    from monitor.engine.baseline import capture
    from monitor.engine.runner import ProbeRunner

    def work() -> None:
        service = next((s for s in config.services if s.id == DEMO_BASELINE_SERVICE), None)
        if service is None:
            return
        runner = ProbeRunner(config, region=config.region)
        try:
            for canary in config.canaries_of(service):
                capture(config, service, canary, lambda s, c: runner.run(s, c, keep_image=True), engine,
                        samples=3, region=config.region)
        except Exception as exc:  # noqa: BLE001 - the demo goes on without references
            if not stopping.is_set():  # cut short by Ctrl-C: nothing to report
                print(f"genstatus demo: baseline of {DEMO_BASELINE_SERVICE} failed: {exc}", file=sys.stderr, flush=True)
        finally:
            runner.close()

    thread = threading.Thread(target=work, name="demo-baseline", daemon=True)
    thread.start()
    return thread


def demo_scenario(choice: str | None) -> tuple[Scenario | None, str]:
    """The scenario for ``--scenario`` (None: the built-in one, ``none``: no scenario) and its name."""
    from probes.emulator.scenario import BUILTIN_DEMO, builtin_scenario_text, load_scenario, parse_scenario

    if choice is None:
        return parse_scenario(builtin_scenario_text(), f"built-in {BUILTIN_DEMO}"), f"the built-in {BUILTIN_DEMO}"
    if choice.lower() == "none":
        return None, "none"
    return load_scenario(choice), choice


class Demo:
    """The demo's parts: emulator, monitor and page on a temporary database (``workdir``, deleted at
    ``stop`` unless given).  ``emulator_port`` 0 takes any free port."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, interval: str = "5s", scenario: str | None = None,
                 emulator_port: int = 0, workdir: Path | None = None) -> None:
        from monitor.cli.common import UsageError
        from probes.emulator.server import EmulatorServer

        try:
            self.interval = format_duration(parse_duration(interval))
        except ValueError as exc:
            raise UsageError(f"--interval: {exc}") from None
        if not 0 <= emulator_port <= 65535:
            raise UsageError(f"--emulator-port: {emulator_port} is not a port number (0-65535; 0: any free port)")
        self.host, self.port = host, port
        self.timeline, self.timeline_name = demo_scenario(scenario)
        try:
            self.emulator = EmulatorServer(host="127.0.0.1", port=emulator_port, scenario=self.timeline)
        except (OSError, SystemExit) as exc:  # werkzeug exits when the port is taken, after saying why on stderr
            reason = getattr(exc, "strerror", None) or "the address is in use"
            raise UsageError(f"cannot serve the emulator on 127.0.0.1:{emulator_port}: {reason} "
                             "(choose another with --emulator-port, or 0 for any free port)") from None
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="genstatus-demo-")) if workdir is None else workdir
        try:
            self.config = demo_config(self.workdir / "demo.db", self.emulator.url, self.interval)
        except BaseException:
            self.emulator.stop()
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        self.runtime: MonitorRuntime | None = None
        self.web: Any = None  # the page's server once started
        self._stopping = threading.Event()
        self._baseline: threading.Thread | None = None

    def start(self) -> Demo:
        from monitor.cli.common import start_web
        from monitor.engine.runtime import MonitorRuntime

        runtime = self.runtime = MonitorRuntime(self.config, spool_path=str(self.workdir / "spool.jsonl"),
                                                detect_every=1.0)
        self.web = start_web(self.config, runtime.engine, self.host, self.port)
        self.emulator.start()
        runtime.start()
        self._baseline = _baseline_in_background(self.config, runtime.engine, self._stopping)
        return self

    def stop(self) -> None:
        """Probes first, keeping nothing that finishes from now on (a run cut short by the emulator's stop
        would record a connection error the services never had); then the page; then the emulator, which
        wakes any probe still waiting on it; then wait for the probes and close the monitor."""
        self._stopping.set()
        try:
            if self.runtime is not None:
                self.runtime.stop_probing(keep_in_flight=False)
            if self.web is not None:
                self.web.shutdown()
            self.emulator.stop()
            if self._baseline is not None:
                self._baseline.join(timeout=10)
            if self.runtime is not None:
                self.runtime.stop()
        finally:
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def describe(self) -> list[str]:
        """What the demo prints at start: where things are, the scenario, how to force an outage."""
        lines = [f"genstatus demo: status page at {self.web.url if self.web else '(not started)'}/",
                 f"emulator at {self.emulator.url}: {len(self.config.services)} services "
                 f"({', '.join(s.id for s in self.config.services)}) probed every {self.interval}"]
        if self.timeline is not None:
            cycle = f", repeating every {format_duration(self.timeline.repeat)}" if self.timeline.repeat else ""
            lines.append(f"incident scenario: {self.timeline_name} ({len(self.timeline.events)} incidents{cycle})")
            lines += [f"  at {format_duration(event.at):>6}  {event.describe()}" for event in self.timeline.events]
        url = f"{self.emulator.url}/_faults/{CURL_EXAMPLE_PROVIDER}"
        lines += [f"force an outage:  curl -X POST '{url}?fault=server_error'",
                  f"end it:           curl -X DELETE '{url}'",
                  "Ctrl-C stops the demo and deletes its temporary database."]
        return lines


def run_demo(host: str, port: int, interval: str, scenario: str | None = None, emulator_port: int = 0) -> int:
    from monitor.cli.common import wait_for_signal

    demo = Demo(host=host, port=port, interval=interval, scenario=scenario, emulator_port=emulator_port)
    try:
        demo.start()
        for line in demo.describe():
            print(line, flush=True)
        wait_for_signal()
    finally:
        print("stopping the demo...", file=sys.stderr, flush=True)
        demo.stop()
    return 0
