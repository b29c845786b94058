"""CLI start-up: what a one-shot ``genstatus`` command costs beyond the work it does.

Each command runs as a fresh process, as a user runs it, several times after a warm-up; the figure is
the median of the process's own wall time and CPU time (user + system, from ``wait4``).  Beside them,
baselines measured in the same run on the same machine, so the targets are ratios that hold when the
machine is slower or busier:

* ``python -c pass``: the interpreter alone;
* ``python -c 'import PIL.Image'``: the least any image command must load;
* the work itself, in a warm process: ``score_image`` of the same file (decode, detectors, hashes,
  BRISQUE), and one probe of the emulated service (HTTP to the loopback emulator, scoring, storing).

Commands: ``genstatus --help``, ``genstatus check-config``, ``genstatus score IMG`` (a 1024 x 1024
render) and ``genstatus probe SERVICE --json`` against the emulator served by this process (its CPU
is not the child's), with the database at head after the warm-up run (as a user's is).

Targets (when this benchmark came, on a busy 2-core machine, before -> after making the commands
import only what they use, scoring without scipy and skipping Alembic at head: ``--help`` 33x -> 2.6x
the bare interpreter, ``check-config`` 34x -> 22x, ``score`` overhead 29x -> 12x and ``probe``
overhead 41x -> 19x ``import PIL.Image``):

* ``--help`` CPU <= 4x ``python -c pass``: building the parser needs argparse and our own modules only.
* ``check-config`` CPU <= 12x ``python -c pass``: validating needs the config schema (pydantic), the
  YAML reader and the provider adapters' option models (with httpx), together about 0.3 s; no
  SQLAlchemy (the database URL is checked with urllib), no numpy or Pillow.
* ``score`` start-up overhead (process CPU minus the in-process ``score_image`` CPU) <= 12x
  ``python -c 'import PIL.Image'``: beyond Pillow, scoring needs numpy, the config schema (its
  quality settings) and imagehash, about 0.4 s; scipy alone (~0.25 s) is over the line.
* ``probe`` start-up overhead (process CPU minus the in-process probe's) <= 20x ``python -c 'import
  PIL.Image'``: a probe adds httpx and the database layer (SQLAlchemy ORM) to what ``score`` needs; no
  Alembic when the schema is at head.

Run: ``python -m benchmarks --only cli_startup`` (or ``python -m benchmarks.bench_cli_startup --quick``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

HELP_TARGET = 4.0  # x python -c pass (CPU)
CHECK_CONFIG_TARGET = 12.0  # x python -c pass (CPU)
SCORE_OVERHEAD_TARGET = 12.0  # x python -c 'import PIL.Image' (CPU)
PROBE_OVERHEAD_TARGET = 20.0  # x python -c 'import PIL.Image' (CPU)


@dataclass
class Timing:
    wall: float  # median seconds
    cpu: float  # median seconds, user + system of the process itself
    codes: set[int]


def time_process(argv: list[str], *, cwd: Path, runs: int, warmup: int = 1) -> Timing:
    """Median wall and CPU seconds of ``argv`` run as a fresh process ``runs`` times (after ``warmup``)."""
    walls, cpus, codes = [], [], set()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for i in range(warmup + runs):
        began = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - began
        process.returncode = os.waitstatus_to_exitcode(status)
        if i >= warmup:
            walls.append(wall)
            cpus.append(usage.ru_utime + usage.ru_stime)
            codes.add(process.returncode)
    return Timing(statistics.median(walls), statistics.median(cpus), codes)


def in_process(work, runs: int) -> Timing:
    """Median wall and CPU seconds of ``work()`` in this (warm) process, after one warm-up call."""
    work()
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return Timing(statistics.median(walls), statistics.median(cpus), {0})


def write_workdir(workdir: Path, emulator_url: str) -> Path:
    """A config probing the emulated OpenAI service (SQLite in ``workdir``) and a 1024 x 1024 render to score."""
    from probes.emulator.images import encode_png, render_image

    (workdir / "genstatus.yaml").write_text(
        f"database: sqlite:///{workdir / 'genstatus.db'}\n"
        "canaries:\n  - {id: apple, prompt: a red apple on a wooden table, size: 1024x1024, seed: 1234}\n"
        "services:\n"
        f"  - {{id: dalle3, provider: openai, base_url: '{emulator_url}', api_key: sk-emulator, model: dall-e-3,\n"
        "     canaries: [apple], allow_private_network: true, options: {response_format: b64_json}}\n")
    image = workdir / "img.png"
    image.write_bytes(encode_png(render_image("a red apple on a wooden table", 1234, "dall-e-3", 1024, 1024)))
    return image


def verdict(ratio: float, target: float) -> str:
    return f"{'PASS' if ratio <= target else 'FAIL'} (target <= {target:g}x)"


def run_benchmark(runs: int = 7, in_process_runs: int = 9) -> dict[str, Timing]:
    from monitor.cli.common import load
    from monitor.scoring import score_image
    from probes.emulator.server import EmulatorServer

    python = sys.executable
    cli = [python, "-m", "monitor.cli"]
    timings: dict[str, Timing] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp, EmulatorServer() as emulator:
        workdir = Path(tmp)
        image = write_workdir(workdir, emulator.base_url("openai"))
        timings["python -c pass"] = time_process([python, "-c", "pass"], cwd=workdir, runs=runs)
        timings["python -c 'import PIL.Image'"] = time_process([python, "-c", "import PIL.Image"], cwd=workdir, runs=runs)
        timings["genstatus --help"] = time_process([*cli, "--help"], cwd=workdir, runs=runs)
        timings["genstatus check-config"] = time_process([*cli, "check-config"], cwd=workdir, runs=runs)
        timings["genstatus score IMG"] = time_process([*cli, "score", str(image)], cwd=workdir, runs=runs)
        # the warm-up run creates and migrates the database; the counted runs find it at head
        timings["genstatus probe dalle3 --json"] = time_process([*cli, "probe", "dalle3", "--json"], cwd=workdir, runs=runs)
        data = image.read_bytes()
        timings["score_image in process"] = in_process(lambda: score_image(data, noise_check=True), in_process_runs)
        timings["probe in process"] = _probe_in_process(load(argparse.Namespace(config=str(workdir / "genstatus.yaml"))),
                                                        in_process_runs)
    return timings


def _probe_in_process(config, runs: int) -> Timing:
    """One probe as ``genstatus probe`` runs it (runner, references, store), in a warm process."""
    from monitor.engine.runner import ProbeRunner
    from monitor.enums import ProbeKind
    from monitor.store.db import make_engine
    from monitor.store.references import ReferenceSource
    from monitor.store.results import ResultStore

    service = config.service("dalle3")
    canary = config.canary(service.canaries[0])
    engine = make_engine(config.database)
    store = ResultStore(engine)
    runner = ProbeRunner(config, region=config.region, references=ReferenceSource(engine))
    try:
        return in_process(lambda: store.record(runner.run(service, canary, ProbeKind.CANARY)), runs)
    finally:
        runner.close()
        engine.dispose()


def figures(timings: dict[str, Timing]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, timing in timings.items():
        note = "" if timing.codes <= {0} else f"exit codes {sorted(timing.codes)}"
        rows.append({"name": f"{name}: wall", "value": timing.wall * 1000, "unit": "ms (median)", "note": note})
        rows.append({"name": f"{name}: cpu", "value": timing.cpu * 1000, "unit": "ms (median)", "note": note})
    bare = timings["python -c pass"].cpu
    pil = timings["python -c 'import PIL.Image'"].cpu
    help_ratio = timings["genstatus --help"].cpu / bare
    check_ratio = timings["genstatus check-config"].cpu / bare
    score_overhead = timings["genstatus score IMG"].cpu - timings["score_image in process"].cpu
    probe_overhead = timings["genstatus probe dalle3 --json"].cpu - timings["probe in process"].cpu
    rows += [
        {"name": "--help cpu / python -c pass", "value": help_ratio, "unit": "x", "note": verdict(help_ratio, HELP_TARGET)},
        {"name": "check-config cpu / python -c pass", "value": check_ratio, "unit": "x",
         "note": verdict(check_ratio, CHECK_CONFIG_TARGET)},
        {"name": "score start-up overhead (process - in-process cpu)", "value": score_overhead * 1000, "unit": "ms"},
        {"name": "score overhead / python -c 'import PIL.Image'", "value": score_overhead / pil, "unit": "x",
         "note": verdict(score_overhead / pil, SCORE_OVERHEAD_TARGET)},
        {"name": "probe start-up overhead (process - in-process cpu)", "value": probe_overhead * 1000, "unit": "ms"},
        {"name": "probe overhead / python -c 'import PIL.Image'", "value": probe_overhead / pil, "unit": "x",
         "note": verdict(probe_overhead / pil, PROBE_OVERHEAD_TARGET)},
    ]
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    return figures(run_benchmark(runs=2 if quick else 7, in_process_runs=2 if quick else 9))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_cli_startup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 runs of each command (a smoke run)")
    parser.add_argument("--runs", type=int, default=None, help="counted runs of each command (default 7)")
    args = parser.parse_args(argv)
    runs = args.runs or (2 if args.quick else 7)
    from benchmarks.__main__ import print_table

    print_table([{"bench": "cli_startup", **row} for row in figures(run_benchmark(runs=runs, in_process_runs=max(2, runs)))])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
