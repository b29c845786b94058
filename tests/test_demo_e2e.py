"""`genstatus demo` end to end: green, red within one interval (plus the confirmation run) of a forced
5xx, green again after the recovery period, clean Ctrl-C that logs no result of the shutdown; the
emulator on the port ``--emulator-port`` names.

Run with ``--scenario none`` so only the fault forced here changes anything.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser

import httpx
import pytest

INTERVAL_S = 2.0
JITTER_S = INTERVAL_S * 0.1
CONFIRM_S = 1.0  # the demo's confirmation delay


class StatusOf(HTMLParser):
    """Finds the data-status of the element whose data-service is ``service``."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service, self.status = service, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("data-service") == self.service and "data-status" in attrs and self.status is None:
            self.status = attrs["data-status"]


def status_of(page_url: str, service: str) -> str | None:
    parser = StatusOf(service)
    parser.feed(httpx.get(page_url, timeout=5).text)
    return parser.status


def wait_for_status(page_url: str, service: str, wanted: str, within: float) -> float:
    began = time.monotonic()
    seen = None
    while time.monotonic() - began < within:
        seen = status_of(page_url, service)
        if seen == wanted:
            return time.monotonic() - began
        time.sleep(0.2)
    raise AssertionError(f"{service} still {seen!r} after {within:.1f}s, wanted {wanted!r}")


def curl(method: str, url: str) -> None:
    if shutil.which("curl"):
        subprocess.run(["curl", "-fsS", "-X", method, url], check=True, capture_output=True, timeout=10)
    else:  # pragma: no cover - curl is on every machine we run on
        httpx.request(method, url, timeout=10).raise_for_status()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_demo_turns_red_on_fault_and_green_when_cleared():
    emulator_port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "demo", "--port", "0", "--interval", f"{INTERVAL_S:g}s",
         "--scenario", "none", "--emulator-port", str(emulator_port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        page = emulator = None
        deadline = time.monotonic() + 30
        while (page is None or emulator is None) and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if m := re.search(r"status page at (http://\S+)", line):
                page = m.group(1)
            if m := re.search(r"emulator at (http://[\d.]+:\d+)", line):
                emulator = m.group(1)
        assert page and emulator, f"demo did not print its URLs; stderr: {process.stderr.read() if process.poll() is not None else ''}"
        assert emulator == f"http://127.0.0.1:{emulator_port}"

        wait_for_status(page, "openai", "operational", within=15)

        # red within two intervals and their confirmation runs (the demo confirms after 1 s; a new service
        # with no history needs a few bad results even with the demo's loose false-incident budget)
        curl("POST", f"{emulator}/_faults/openai?fault=server_error")
        red_within = 2 * (INTERVAL_S + JITTER_S) + CONFIRM_S + 2.0
        assert wait_for_status(page, "openai", "major_outage", within=red_within) <= red_within

        # green again after two good results in a row and a recovery period of one interval (hysteresis)
        curl("DELETE", f"{emulator}/_faults/openai")
        wait_for_status(page, "openai", "operational", within=3 * (INTERVAL_S + JITTER_S) + 3.0)

        process.send_signal(signal.SIGINT)
        _, log = process.communicate(timeout=20)
        assert process.returncode == 0
        # every probe reached the emulator, also those cut short by the stop (their results are dropped)
        assert "stopping the demo..." in log and "connection_error" not in log, log[-3000:]
        assert "maximum number of running instances" not in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
