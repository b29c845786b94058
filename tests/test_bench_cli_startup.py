"""The CLI start-up benchmark keeps working: every command runs and exits 0, and each ratio gets a verdict."""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.bench_cli_startup import figures, run_benchmark, time_process


def test_a_process_is_timed_by_its_own_cpu(tmp_path: Path):
    busy = time_process([sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.2: pass"],
                        cwd=tmp_path, runs=1, warmup=0)
    idle = time_process([sys.executable, "-c", "import time; time.sleep(0.3)"], cwd=tmp_path, runs=1, warmup=0)
    assert busy.cpu >= 0.2 and busy.codes == {0}
    assert idle.wall >= 0.3 and idle.cpu < 0.2  # sleeping costs wall time, not CPU
    failing = time_process([sys.executable, "-c", "raise SystemExit(3)"], cwd=tmp_path, runs=1, warmup=0)
    assert failing.codes == {3}


def test_a_quick_run_measures_every_command_and_gives_verdicts():
    timings = run_benchmark(runs=1, in_process_runs=1)
    assert list(timings) == ["python -c pass", "python -c 'import PIL.Image'", "genstatus --help", "genstatus check-config",
                             "genstatus score IMG", "genstatus probe dalle3 --json", "score_image in process",
                             "probe in process"]
    for name, timing in timings.items():
        assert timing.codes == {0}, (name, timing)  # the config is valid, the image passes, the probe is ok
        assert timing.wall > 0 and timing.cpu > 0, (name, timing)
    # a process does its work and more: the start-up is what it adds
    assert timings["genstatus score IMG"].cpu > timings["score_image in process"].cpu
    rows = figures(timings)
    verdicts = [r["note"] for r in rows if r["unit"] == "x"]
    assert len(verdicts) == 4 and all(v.startswith(("PASS", "FAIL")) for v in verdicts), verdicts
