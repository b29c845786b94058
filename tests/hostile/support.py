"""Running the command line against hostile files: in-process, or in a subprocess with its peak
memory (``wait4``'s ``ru_maxrss`` of that one child, not of every child the test run had).

Time bounds are on CPU seconds, relative to a baseline taken in the same run: a busy machine
slows the wall clock of every run alike, not the work a run does.  A hang is caught by the
subprocess timeout (the child is killed and its exit code fails the test).
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from monitor.cli import main

SLACK_S = 3.0  # the CPU seconds a hostile file may take beyond the baseline of the same command
MB = 2**20
#: the address space a subprocess may map: a regression that reads ``/dev/zero`` whole fails with a
#: MemoryError here instead of growing until the kernel kills something (it reached 23 GB once)
ADDRESS_SPACE_CAP = 4096 * MB


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float  # CPU time (user + system) of the run
    wall: float
    peak_rss: int = 0  # bytes; subprocess runs only

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(capsys, *argv: str) -> Run:
    """``genstatus ARGV`` in this process (``main``), with its output and time."""
    capsys.readouterr()
    began, cpu = time.perf_counter(), time.process_time()
    code = main(list(argv))
    seconds, wall = time.process_time() - cpu, time.perf_counter() - began
    out, err = capsys.readouterr()
    return Run(code, out, err, seconds, wall)


def baseline(*argv: str, repeat: int = 3) -> float:
    """The fastest of a few in-process runs of a command on a good file (output discarded): what a
    hostile file's time is measured against.  The command must succeed."""
    times = []
    for _ in range(repeat):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            began = time.process_time()
            code = main(list(argv))
            times.append(time.process_time() - began)
        assert code == 0, argv
    return min(times)


def _cap_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))


#: the child's own peak, written at exit: ``ru_maxrss`` of a forked child also counts the pages it
#: shared with this (large, late in a test run) process before ``exec``, so it read ~600 MB for every
#: child of a long pytest run.  ``VmHWM`` belongs to the memory of the new program alone.
PEAK_LAUNCHER = """
import atexit, os, sys
def _peak():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                with open(os.environ["GENSTATUS_TEST_PEAK"], "w") as out:
                    out.write(line.split()[1])
atexit.register(_peak)
from monitor.cli import main
sys.argv[0] = "genstatus"
sys.exit(main())
"""


def run_measured(*argv: str, timeout: float = 120, env: dict[str, str] | None = None) -> Run:
    """``genstatus ARGV`` in a subprocess: exit code, output, CPU and wall-clock time, peak resident memory.

    The peak is the child's ``VmHWM`` (see ``PEAK_LAUNCHER``; ``wait4``'s ``ru_maxrss`` where there is
    no /proc).  A child still running after ``timeout`` is killed, and the test fails on its exit code;
    one mapping more than ``ADDRESS_SPACE_CAP`` fails inside.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as scratch:
        peak_file = os.path.join(scratch, "peak")
        began = time.monotonic()
        process = subprocess.Popen([sys.executable, "-c", PEAK_LAUNCHER, *argv], stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=err, env={**os.environ, **(env or {}), "GENSTATUS_TEST_PEAK": peak_file},
                                   preexec_fn=_cap_address_space)
        killer = threading.Timer(timeout, process.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        wall = time.monotonic() - began
        out.seek(0)
        err.seek(0)
        rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
        if os.path.exists(peak_file):
            with open(peak_file) as written:
                rss = int(written.read() or 0) * 1024 or rss
        return Run(process.returncode, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"),
                   usage.ru_utime + usage.ru_stime, wall, rss)


def assert_clean(run: Run) -> None:
    """No traceback, no Python exception name leaking to the user."""
    assert "Traceback" not in run.text, run.text[-3000:]
