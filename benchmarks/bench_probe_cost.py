"""What one probe costs the monitor: CPU outside scoring, scoring against a bare decode, memory per service.

The provider emulators run in a subprocess, so their CPU (rendering, encoding, serving) is not
counted as the monitor's; it is reported apart.

* **CPU per probe outside scoring**: the real ``ProbeRunner`` (adapter, HTTP client, reference
  lookup) and ``ResultStore`` (row, rollups, thumbnail row) on SQLite, one probe after another
  against every emulated provider; process CPU time less the CPU spent in ``score_image``.
  Split into the adapter's HTTP exchange, the reference lookup and the store.  Target <= 5 ms.
* **scoring / bare decode**: ``score_image`` as the runner calls it, against
  ``Image.open(...).load()`` of the same image, without and with a reference profile (with one,
  BRISQUE and the statistics are measured because the profile's checks read them).  Target
  <= 2.5x on a natural 1024 x 1024 picture as providers send it (PNG at zlib's default level).
  The same picture as JPEG q90 and each emulated provider's real output (synthetic renders: PNG,
  JPEG, WebP) are listed too: they decode 5-10x faster, so the fixed work on the 256 px analysis
  copy and BRISQUE's 384 px copy weighs more there.
* **resident memory per service**: the real ``MonitorRuntime`` (scheduler, thread pool, store,
  detection) run in a fresh process for a small and a large number of services; after a warm-up
  in which every service has been probed, VmRSS is read.  The slope between the two sizes is the
  memory each service adds (the interpreter, libraries and caches are the intercept).  Target
  <= 2 MB per service.  Threads are counted too.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE_TARGET_MS = 5.0
RATIO_TARGET = 2.5
MB_PER_SERVICE_TARGET = 2.0

_EMULATOR = ("import sys\nfrom probes.emulator.server import EmulatorServer\n"
             "server = EmulatorServer().start()\nprint(server.url, flush=True)\nsys.stdin.read()\nserver.stop()\n")


# -- the emulator, in its own process ---------------------------------------------------


@contextmanager
def emulator_process():
    """(url, pid) of the emulators served by a child process, stopped on exit."""
    process = subprocess.Popen([sys.executable, "-c", _EMULATOR], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=_child_env())
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError("the emulator process did not start")
        yield url, process.pid
    finally:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``); 0.0 where that cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def status_figures() -> dict[str, float]:
    """VmRSS, VmHWM (MB) and Threads of this process, from ``/proc/self/status``."""
    out: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
            elif key == "Threads":
                out[key] = int(value)
    except OSError:
        pass
    return out


# -- configs ------------------------------------------------------------------------------


def services_config(url: str, count: int, database: str, interval: str = "10s"):
    """``count`` services cycling through every emulated provider (ids ``<provider>-<n>``)."""
    from monitor.cli.examples import example

    base = example(url, per_service=True, interval=interval, database=database)
    services = [s.model_copy(update={"id": f"{s.id}-{n}", "cost_per_image": 0.0, "monthly_budget": None})
                for n in range(-(-count // len(base.services))) for s in base.services][:count]
    return base.model_copy(update={"services": services})


# -- CPU per probe ----------------------------------------------------------------------------


class _Clock:
    """Thread CPU time spent inside wrapped callables, by name."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def wrap(self, name: str, function):
        def timed(*args, **kwargs):
            began = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + time.thread_time() - began
        return timed


class _RequestCounter:
    """Counts the HTTP requests the adapters send while active (``httpx.Client.send``)."""

    def __init__(self) -> None:
        self.count = 0

    def __enter__(self) -> _RequestCounter:
        import httpx

        self._original = original = httpx.Client.send

        def counted(client, *args, **kwargs):
            self.count += 1
            return original(client, *args, **kwargs)

        httpx.Client.send = counted  # type: ignore[method-assign, assignment]
        return self

    def __exit__(self, *exc_info: object) -> None:
        import httpx

        httpx.Client.send = self._original  # type: ignore[method-assign]


def probe_cpu(url: str, emulator_pid: int, rounds: int) -> tuple[dict[str, float], dict[str, bytes]]:
    """CPU per probe (ms) through the real runner and store, and one output image per provider."""
    import monitor.engine.runner as runner_module
    from monitor.cli.examples import emulated_providers
    from monitor.store.db import make_engine
    from monitor.store.migrate import upgrade
    from monitor.store.references import ReferenceSource
    from monitor.store.results import ResultStore

    clock = _Clock()
    with tempfile.TemporaryDirectory() as tmp:
        config = services_config(url, len(emulated_providers()), f"sqlite:///{tmp}/bench.db")
        engine = make_engine(config.database)
        upgrade(engine)
        store = ResultStore(engine)
        store.sync_catalog(config)
        runner = runner_module.ProbeRunner(config, references=clock.wrap("references", ReferenceSource(engine)))
        record = clock.wrap("store", store.record)
        requests = _RequestCounter()
        original_score = runner_module.score_image
        runner_module.score_image = clock.wrap("scoring", original_score)
        images: dict[str, bytes] = {}
        try:
            for service in config.services:  # warm-up: connections, statement caches, first imports
                for canary in config.canaries_of(service):
                    result = runner.run(service, canary, keep_image=True)
                    record(result)
                    if result.image:
                        images[service.provider] = result.image
            clock.spent.clear()
            probes = 0
            began, emulator_began = time.process_time(), cpu_seconds_of(emulator_pid)
            with requests:
                for _ in range(rounds):
                    for service in config.services:
                        for canary in config.canaries_of(service):
                            record(runner.run(service, canary))
                            probes += 1
            total = time.process_time() - began
            emulator = cpu_seconds_of(emulator_pid) - emulator_began
        finally:
            runner_module.score_image = original_score
            runner.close()
            engine.dispose()
    per_probe = {name: 1000 * seconds / probes for name, seconds in clock.spent.items()}
    figures = {
        "total": 1000 * total / probes,
        "scoring": per_probe.get("scoring", 0.0),
        "references": per_probe.get("references", 0.0),
        "store": per_probe.get("store", 0.0),
        "emulator": 1000 * emulator / probes,
        "probes": probes,
        "requests": requests.count / probes,
    }
    figures["outside"] = figures["total"] - figures["scoring"]
    figures["adapter"] = figures["outside"] - figures["references"] - figures["store"]
    return figures, images


# -- scoring against decoding --------------------------------------------------------------


def _cpu_ms(function, repeat: int) -> float:
    """Median thread CPU time of ``function`` in ms (after one warm-up call)."""
    function()
    samples = []
    for _ in range(repeat):
        began = time.thread_time()
        function()
        samples.append(time.thread_time() - began)
    return 1000 * statistics.median(samples)


def _profile_for(data: bytes):
    """A reference profile of three re-encodes of ``data`` (enough samples for the statistics checks)."""
    from monitor.scoring.pipeline import reference_entry
    from monitor.scoring.profile import ReferenceProfile

    image = Image.open(io.BytesIO(data)).convert("RGB")
    entries = []
    for quality in (95, 90, 85):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        entry = reference_entry(buffer.getvalue(), seed=1234, with_thumbnail=False)
        assert entry is not None
        entries.append(entry)
    return ReferenceProfile(images=entries, seed=1234)


def natural_pictures(side: int = 1024) -> dict[str, bytes]:
    """A photograph (a fractal landscape without scikit-image's samples) as providers send it: PNG at
    zlib's default level, and JPEG at quality 90."""
    from benchmarks.quality_set import PHOTO, encode, photos_available, picture, picture_name

    family = PHOTO if photos_available() else "landscape"
    image = picture(family, 0, side)
    name = picture_name(family, 0)
    return {f"{name} PNG": encode(image), f"{name} JPEG": encode(image, "JPEG", quality=90)}


def scoring_ratios(images: dict[str, bytes], repeat: int) -> list[dict[str, Any]]:
    """Per image: bare decode, scoring as the runner calls it without and with a profile (ms)."""
    from monitor.config import QualityConfig
    from monitor.scoring import score_image

    rows = []
    for provider, data in sorted(images.items()):
        with Image.open(io.BytesIO(data)) as probe:
            size, kind = probe.size, probe.format

        def score(profile=None, data=data, size=size):
            return score_image(data, requested_size=size, quality=QualityConfig(), profile=profile, seed=1234,
                               want_thumbnail=True, all_metrics=False)

        profile = _profile_for(data)
        decode = _cpu_ms(lambda data=data: Image.open(io.BytesIO(data)).load(), repeat)
        plain = _cpu_ms(score, repeat)
        profiled = _cpu_ms(lambda profile=profile: score(profile), repeat)
        rows.append({"provider": provider, "format": kind, "decode": decode, "scoring": plain,
                     "scoring_profile": profiled})
    return rows


# -- memory per service ---------------------------------------------------------------------


def runtime_child(url: str, count: int, seconds: float, interval: str) -> dict[str, float]:
    """Run the real monitor for ``seconds`` with ``count`` services; VmRSS, VmHWM, threads, probes."""
    import logging

    from monitor.engine.runtime import MonitorRuntime
    from monitor.store.db import make_engine

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        config = services_config(url, count, f"sqlite:///{tmp}/bench.db", interval)
        runtime = MonitorRuntime(config)
        began = time.process_time()
        runtime.start()
        try:
            time.sleep(seconds)
            figures = status_figures()
        finally:
            runtime.stop()
        cpu = time.process_time() - began
        engine = make_engine(config.database)
        with engine.connect() as connection:
            probes = connection.exec_driver_sql("SELECT count(*) FROM probe_results").scalar_one()
        engine.dispose()
    return {**figures, "probes": probes, "cpu": cpu, "services": count}


def measure_runtime(url: str, count: int, seconds: float, interval: str) -> dict[str, float]:
    """``runtime_child`` in a fresh process (resident memory never shrinks back within one)."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_probe_cost", "--runtime-child", url, str(count),
                          str(seconds), interval], cwd=ROOT, capture_output=True, text=True, env=_child_env(),
                         timeout=seconds + 120, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"runtime child with {count} services failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the benchmark --------------------------------------------------------------------------


def _ratio_row(name: str, r: dict[str, Any]) -> dict[str, Any]:
    """A table row: one picture's scoring / bare decode, with both times and the profiled scoring time."""
    return dict(name=name, value=r["scoring"] / r["decode"], unit="x",
                note=f"decode {r['decode']:.1f} ms, scoring {r['scoring']:.1f} ms, with profile {r['scoring_profile']:.1f} ms")


def run(quick: bool = False) -> list[dict[str, Any]]:
    rounds, repeat = (1, 3) if quick else (6, 15)
    sizes, seconds, interval = ((3, 12), 12.0, "4s") if quick else ((20, 200), 60.0, "10s")
    with emulator_process() as (url, pid):
        cpu, images = probe_cpu(url, pid, rounds)
        natural = scoring_ratios(natural_pictures(512 if quick else 1024), repeat)
        ratios = scoring_ratios(images, repeat)
        small, large = (measure_runtime(url, n, seconds, interval) for n in sizes)
    png = next(r for r in natural if r["format"] == "PNG")
    plain, profiled = png["scoring"] / png["decode"], png["scoring_profile"] / png["decode"]
    emulated = statistics.median(r["scoring"] / r["decode"] for r in ratios)
    emulated_profiled = statistics.median(r["scoring_profile"] / r["decode"] for r in ratios)
    slope = (large["VmRSS"] - small["VmRSS"]) / (large["services"] - small["services"])
    rows: list[dict[str, Any]] = [
        dict(name="CPU per probe outside scoring", value=cpu["outside"], unit="ms",
             note=f"target <= {OUTSIDE_TARGET_MS:g} ms: {'PASS' if cpu['outside'] <= OUTSIDE_TARGET_MS else 'FAIL'}; "
                  f"{cpu['probes']} probes"),
        dict(name="  adapter + HTTP client", value=cpu["adapter"], unit="ms",
             note=f"{cpu['requests']:.1f} requests per probe over kept-alive connections, as to a provider; "
                  "httpx's own work is most of it"),
        dict(name="  reference lookup", value=cpu["references"], unit="ms"),
        dict(name="  store (row, rollups, thumbnail)", value=cpu["store"], unit="ms"),
        dict(name="CPU per probe in scoring", value=cpu["scoring"], unit="ms"),
        dict(name="emulator CPU per probe (its own process)", value=cpu["emulator"], unit="ms", note="not counted"),
        dict(name="scoring / bare decode, natural picture", value=plain, unit="x",
             note=f"target <= {RATIO_TARGET:g}x: {'PASS' if plain <= RATIO_TARGET else 'FAIL'}; PNG as providers "
                  "send it, no reference profile"),
        dict(name="  with a reference profile", value=profiled, unit="x",
             note=f"target <= {RATIO_TARGET:g}x: {'PASS' if profiled <= RATIO_TARGET else 'FAIL'}; "
                  "BRISQUE and the statistics measured"),
    ]
    rows += [_ratio_row(f"  {r['provider']}", r) for r in natural]
    rows += [
        dict(name="scoring / bare decode, emulator outputs", value=emulated, unit="x",
             note="median; synthetic renders at zlib level 1 decode in a few ms, so the fixed work on the "
                  "256 px analysis copy weighs more"),
        dict(name="  with a reference profile", value=emulated_profiled, unit="x", note="median"),
    ]
    rows += [_ratio_row(f"  {r['provider']} ({r['format']})", r) for r in ratios]
    rows += [
        dict(name="resident memory per service", value=slope, unit="MB",
             note=f"target <= {MB_PER_SERVICE_TARGET:g} MB: {'PASS' if slope <= MB_PER_SERVICE_TARGET else 'FAIL'}; "
                  f"slope {small['services']} -> {large['services']} services"),
    ]
    for figures in (small, large):
        rows.append(dict(name=f"  {figures['services']} services: VmRSS / VmHWM", value=figures["VmRSS"], unit="MB",
                         note=f"peak {figures['VmHWM']:.0f} MB, {figures['Threads']:.0f} threads, "
                              f"{figures['probes']} probes in {seconds:g}s at {interval}, "
                              f"{figures['cpu'] / seconds:.0%} of a core"))
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--runtime-child":
        _, _, child_url, child_count, child_seconds, child_interval = sys.argv
        print(json.dumps(runtime_child(child_url, int(child_count), float(child_seconds), child_interval)))
    else:
        from benchmarks.__main__ import main

        raise SystemExit(main(["--only", "probe_cost", *sys.argv[1:]]))
