"""`genstatus run` and the starter config, as a user runs them."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest

from monitor.cli import main
from probes.emulator.server import EmulatorServer

STARTER_PORT = 8765


@pytest.fixture
def starter_emulator():
    """The emulator where the starter config expects it (127.0.0.1:8765), when that port is free."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", STARTER_PORT)) == 0:
            pytest.skip(f"port {STARTER_PORT} is taken on this machine; the starter config points there")
    server = EmulatorServer(port=STARTER_PORT).start()
    yield server
    server.stop()


def test_starter_config_runs_as_is_against_the_emulator(tmp_path, starter_emulator, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["init"]) == 0
    assert main(["probe", "dalle3"]) == 0
    assert "dalle3 still-life [local]: ok" in capsys.readouterr().out
    assert sqlite3.connect(tmp_path / "genstatus.db").execute("select count(*) from probe_results").fetchone() == (1,)


@pytest.mark.slow
def test_run_probes_stores_serves_and_stops_cleanly(tmp_path, emulator):
    config = tmp_path / "genstatus.yaml"
    config.write_text(f"""\
database: sqlite:///{tmp_path / 'gs.db'}
canaries:
  - {{id: apple, prompt: "a red apple", size: 1024x1024, seed: random}}
services:
  - id: svc
    name: "Emulated <DALL·E>"
    provider: openai
    base_url: {emulator.base_url('openai')}
    api_key: sk-run-test-secret-0000
    model: dall-e-3
    canaries: [apple]
    interval: 1s
    health_interval: 1s
    timeout: 5s
    allow_private_network: true
""")
    process = subprocess.Popen([sys.executable, "-m", "monitor.cli", "run", "-c", str(config), "--port", "0",
                                "--region", "eu-test"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = process.stdout.readline()
        url = re.search(r"status page: (http://\S+?)/?$", line.strip())
        assert url, (line, process.stderr.read() if process.poll() is not None else "")
        time.sleep(3.5)
        page = httpx.get(url.group(1) + "/", timeout=5).text
        assert 'data-status="operational"' in page and "Emulated &lt;DALL·E&gt;" in page
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    db = sqlite3.connect(tmp_path / "gs.db")
    kinds = dict(db.execute("select kind, count(*) from probe_results group by kind").fetchall())
    assert kinds.get("canary", 0) >= 2 and kinds.get("health", 0) >= 1
    assert db.execute("select distinct region from probe_results").fetchall() == [("eu-test",)]
    seeds = {row[0] for row in db.execute("select seed from probe_results where kind = 'canary'")}
    assert seeds == {None}  # OpenAI takes no seed, so none is recorded
    assert "sk-run-test-secret-0000" not in stderr
    dump = "\n".join(db.iterdump())
    assert "sk-run-test-secret-0000" not in dump  # secrets never reach the database
