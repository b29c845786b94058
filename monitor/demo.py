"""``genstatus demo``: a temporary SQLite database, the emulators, the monitor and the status page."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from monitor.config import parse_config
from monitor.durations import format_duration, parse_duration

DEMO_CONFIG = """\
site: {{title: "genstatus demo"}}
database: sqlite:///{db}
region: demo
canaries:
  - id: still-life
    prompt: "a red apple on a wooden table, soft daylight, photograph"
    size: 1024x1024
    seed: 1234
services:
  - id: dalle3
    name: "DALL·E 3 (emulated)"
    group: OpenAI
    provider: openai
    base_url: {base_url}
    api_key: sk-demo
    model: dall-e-3
    canaries: [still-life]
    interval: {interval}
    timeout: 20s
    cost_per_image: 0.04
    allow_private_network: true
  - id: gpt-image
    name: "GPT Image 1 (emulated)"
    group: OpenAI
    provider: openai
    base_url: {base_url}
    api_key: sk-demo
    model: gpt-image-1
    canaries: [still-life]
    interval: {interval}
    timeout: 20s
    cost_per_image: 0.04
    allow_private_network: true
"""


def demo_config_text(db_path: Path, base_url: str, interval: str) -> str:
    return DEMO_CONFIG.format(db=db_path, base_url=base_url, interval=interval)


def run_demo(host: str, port: int, interval: str) -> int:
    from monitor.cli import UsageError, _start_web, _wait_for_signal
    from monitor.runtime import MonitorRuntime
    from probes.emulator.server import EmulatorServer

    try:
        interval = format_duration(parse_duration(interval))
    except ValueError as exc:
        raise UsageError(f"--interval: {exc}") from None
    workdir = Path(tempfile.mkdtemp(prefix="genstatus-demo-"))
    emulator = EmulatorServer(host="127.0.0.1", port=0)
    runtime = web = None
    try:
        emulator.start()
        config = parse_config(demo_config_text(workdir / "demo.db", emulator.base_url("openai"), interval), "demo.yaml")
        runtime = MonitorRuntime(config, spool_path=str(workdir / "spool.jsonl"))
        web = _start_web(config, runtime.engine, host, port)
        runtime.start()
        print(f"genstatus demo: status page at {web.url}/", flush=True)
        print(f"emulator at {emulator.url}: services are probed every {interval}", flush=True)
        print(f"force an outage:  curl -X POST '{emulator.url}/_faults/openai?fault=server_error'", flush=True)
        print(f"end it:           curl -X DELETE '{emulator.url}/_faults/openai'", flush=True)
        print("Ctrl-C stops the demo and deletes its temporary database.", flush=True)
        _wait_for_signal()
    finally:
        print("stopping the demo...", file=sys.stderr, flush=True)
        if web:
            web.shutdown()
        emulator.stop()  # wakes hung requests so in-flight probes end quickly
        if runtime:
            runtime.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0
