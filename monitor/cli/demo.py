"""``genstatus demo``: a temporary SQLite database, every emulated provider, a scripted incident
scenario, the monitor and the status page."""

from __future__ import annotations

import shutil
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.cli.examples import example_config
from monitor.config import AlertsConfig, Config, ConsoleChannel, RouteConfig, parse_config
from monitor.config.durations import format_duration, parse_duration
from probes.registry import provider_issues

if TYPE_CHECKING:  # pragma: no cover
    from probes.emulator.scenario import Scenario

DEMO_TIMEOUT = "20s"
#: above this a good answer is "slow"; the built-in scenario's slow spell takes 8 s
DEMO_LATENCY_THRESHOLD = "5s"
DEMO_CONFIRM_DELAY = timedelta(seconds=1)
DEMO_FALSE_INCIDENT_BUDGET = 10_000.0  # the most the config allows: the demo shows reactions, not a quiet week


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
    config.detection = config.detection.model_copy(update={"confirm_delay": DEMO_CONFIRM_DELAY,
                                                           "false_incident_budget": DEMO_FALSE_INCIDENT_BUDGET})
    # every alert goes to the log, so a newcomer sees them fire without configuring a channel
    config.alerts = AlertsConfig(channels=[ConsoleChannel(id="console", type="console")],
                                 routes=[RouteConfig(channels=["console"])])
    return config


#: the demo service whose reference profile is captured at start, so the scenario's model swap is drift
DEMO_BASELINE_SERVICE = "automatic1111"


def _baseline_in_background(config: Config, engine) -> None:
    """``genstatus baseline`` for one service, off the main thread (the page is up meanwhile)."""
    import threading

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
            print(f"genstatus demo: baseline of {DEMO_BASELINE_SERVICE} failed: {exc}", file=sys.stderr, flush=True)
        finally:
            runner.close()

    threading.Thread(target=work, name="demo-baseline", daemon=True).start()


def demo_scenario(choice: str | None) -> tuple[Scenario | None, str]:
    """The scenario for ``--scenario`` (None: the built-in one, ``none``: no scenario) and its name."""
    from probes.emulator.scenario import BUILTIN_DEMO, builtin_scenario_text, load_scenario, parse_scenario

    if choice is None:
        return parse_scenario(builtin_scenario_text(), f"built-in {BUILTIN_DEMO}"), f"the built-in {BUILTIN_DEMO}"
    if choice.lower() == "none":
        return None, "none"
    return load_scenario(choice), choice


def run_demo(host: str, port: int, interval: str, scenario: str | None = None) -> int:
    from monitor.cli.common import UsageError, start_web, wait_for_signal
    from monitor.engine.runtime import MonitorRuntime
    from probes.emulator.server import EmulatorServer

    try:
        interval = format_duration(parse_duration(interval))
    except ValueError as exc:
        raise UsageError(f"--interval: {exc}") from None
    timeline, timeline_name = demo_scenario(scenario)
    workdir = Path(tempfile.mkdtemp(prefix="genstatus-demo-"))
    emulator = EmulatorServer(host="127.0.0.1", port=0, scenario=timeline)
    runtime = web = None
    try:
        config = demo_config(workdir / "demo.db", emulator.url, interval)
        runtime = MonitorRuntime(config, spool_path=str(workdir / "spool.jsonl"), detect_every=1.0)
        web = start_web(config, runtime.engine, host, port)
        emulator.start()
        runtime.start()
        _baseline_in_background(config, runtime.engine)
        print(f"genstatus demo: status page at {web.url}/", flush=True)
        print(f"emulator at {emulator.url}: {len(config.services)} services "
              f"({', '.join(s.id for s in config.services)}) probed every {interval}", flush=True)
        if timeline is not None:
            cycle = f", repeating every {format_duration(timeline.repeat)}" if timeline.repeat else ""
            print(f"incident scenario: {timeline_name} ({len(timeline.events)} incidents{cycle})", flush=True)
            for event in timeline.events:
                print(f"  at {format_duration(event.at):>6}  {event.describe()}", flush=True)
        print(f"force an outage:  curl -X POST '{emulator.url}/_faults/openai?fault=server_error'", flush=True)
        print(f"end it:           curl -X DELETE '{emulator.url}/_faults/openai'", flush=True)
        print("Ctrl-C stops the demo and deletes its temporary database.", flush=True)
        wait_for_signal()
    finally:
        print("stopping the demo...", file=sys.stderr, flush=True)
        if web:
            web.shutdown()
        emulator.stop()  # wakes hung requests so in-flight probes end quickly
        if runtime:
            runtime.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0
