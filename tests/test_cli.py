"""The command line contract (docs/contracts.md, command line): commands, --help, exit codes 0/1/2, probe output."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from monitor.cli import main

COMMANDS = [["init"], ["check-config"], ["db", "upgrade"], ["run"], ["serve"], ["probe"], ["emulator"], ["demo"], ["replay"]]


def genstatus(*args: str, timeout: float = 60, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: genstatus" in capsys.readouterr().out


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("init", "check-config", "db", "run", "probe", "emulator", "demo"):
        assert command in out


def test_unknown_command_is_usage_error():
    assert genstatus("frobnicate").returncode == 2


def test_init_then_check_config(tmp_path, capsys):
    assert main(["init", str(tmp_path)]) == 0
    config = tmp_path / "genstatus.yaml"
    assert config.exists()
    assert main(["check-config", "-c", str(config)]) == 0
    assert "OK (1 services, 1 canaries)" in capsys.readouterr().out
    assert main(["init", str(tmp_path)]) == 2  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err


def test_check_config_error_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "genstatus.yaml"
    config.write_text("canaries:\n  - {id: a, prompt: x}\nservices:\n  - id: s\n    provider: openai\n"
                      "    canaries: [a]\n    interval: 5 minutes\n")
    done = genstatus("check-config", "-c", str(config))
    assert done.returncode == 2
    assert done.stderr.strip() == f"{config}:7 services[0].interval: invalid duration '5 minutes' (use e.g. 30s, 5m, 1h)"
    missing = genstatus("check-config", "-c", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 2 and "no such config file" in missing.stderr


def test_config_from_environment_variable(tmp_path, monkeypatch, capsys):
    main(["init", str(tmp_path)])
    monkeypatch.setenv("GENSTATUS_CONFIG", str(tmp_path / "genstatus.yaml"))
    assert main(["check-config"]) == 0


def write_emulator_config(tmp_path, emulator, model="dall-e-3", extra="") -> str:
    config = tmp_path / "genstatus.yaml"
    config.write_text(f"""\
database: sqlite:///{tmp_path / 'gs.db'}
region: test
canaries:
  - {{id: apple, prompt: "a red apple on a table", size: 1024x1024, seed: 7}}
services:
  - id: svc
    provider: openai
    base_url: {emulator.base_url('openai')}
    api_key: sk-secret-test-key-123456
    model: {model}
    canaries: [apple]
    timeout: 4s
    cost_per_image: 0.04
    allow_private_network: true
{extra}""")
    return str(config)


def test_probe_json_prints_full_record_and_stores_it(tmp_path, emulator, capsys):
    config = write_emulator_config(tmp_path, emulator)
    assert main(["probe", "svc", "-c", config, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["outcome"] == "ok" and record["service"] == "svc" and record["canary"] == "apple"
    assert record["region"] == "test" and record["http_status"] == 200
    assert record["image_width"] == 1024 and record["image_format"] == "PNG" and len(record["image_sha256"]) == 64
    assert set(record["latency_ms"]) == {"submit", "queue", "generation", "download", "total"}
    assert record["latency_ms"]["total"] > 0 and record["hashes"]["phash"]
    assert record["model_version"] and record["request_id"] and record["cost"] == 0.04
    assert record["quality_verdict"] == "pass"
    rows = sqlite3.connect(tmp_path / "gs.db").execute("select outcome, region from probe_results").fetchall()
    assert rows == [("ok", "test")]


@pytest.mark.parametrize(
    "fault, outcome",
    [
        ("server_error", "server_error"),
        ("rate_limited", "rate_limited"),
        ("quota_exhausted", "auth_error"),
        ("invalid_key", "auth_error"),
        ("content_policy", "content_filtered"),
        ("malformed_json", "bad_output"),
        ("truncated_image", "bad_output"),
        ("undecodable_image", "bad_output"),
        ("wrong_size", "bad_output"),
        ("blank_image", "degraded_quality"),
        ("bad_request", "client_error"),
        ("hang", "timeout"),
    ],
)
def test_probe_outcome_per_fault(tmp_path, emulator, capsys, fault, outcome):
    config = write_emulator_config(tmp_path, emulator)
    emulator.faults.set("openai", fault)
    assert main(["probe", "svc", "-c", config, "--json", "--dry-run"]) == 1
    record = json.loads(capsys.readouterr().out)
    assert record["outcome"] == outcome, record
    assert "sk-secret-test-key-123456" not in json.dumps(record)
    assert not (tmp_path / "gs.db").exists()  # --dry-run stores nothing


def test_probe_connection_refused_and_unknown_service(tmp_path, capsys):
    config = tmp_path / "genstatus.yaml"
    config.write_text("canaries:\n  - {id: a, prompt: x}\nservices:\n  - id: s\n    provider: openai\n"
                      "    base_url: http://127.0.0.1:9/v1\n    api_key: sk-x\n    canaries: [a]\n"
                      "    allow_private_network: true\n    timeout: 3s\n")
    assert main(["probe", "s", "-c", str(config), "--dry-run"]) == 1
    assert "connection_error" in capsys.readouterr().out
    assert main(["probe", "nope", "-c", str(config), "--dry-run"]) == 2
    assert "no service 'nope'" in capsys.readouterr().err


def test_health_probe(tmp_path, emulator, capsys):
    config = write_emulator_config(tmp_path, emulator)
    assert main(["probe", "svc", "-c", config, "--health", "--dry-run"]) == 0
    assert "svc health" in capsys.readouterr().out


def test_db_upgrade_creates_schema(tmp_path, capsys):
    main(["init", str(tmp_path)])
    config = tmp_path / "genstatus.yaml"
    config.write_text(config.read_text().replace("sqlite:///genstatus.db", f"sqlite:///{tmp_path / 'x.db'}"))
    assert main(["db", "upgrade", "-c", str(config)]) == 0
    assert "database at revision" in capsys.readouterr().out
    tables = {r[0] for r in sqlite3.connect(tmp_path / "x.db").execute("select name from sqlite_master where type='table'")}
    assert {"services", "probe_results", "rollup_hourly", "rollup_daily", "incidents", "alembic_version"} <= tables


def test_serve_on_a_taken_port_is_a_usage_error(tmp_path, capsys):
    import socket

    main(["init", str(tmp_path)])
    config = tmp_path / "genstatus.yaml"
    config.write_text(config.read_text().replace("sqlite:///genstatus.db", f"sqlite:///{tmp_path / 'x.db'}"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "-c", str(config), "--port", str(port)]) == 2
    assert "address is in use" in capsys.readouterr().err


def test_emulator_and_demo_reject_a_bad_scenario_with_exit_2(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("events:\n  - {at: 5s, provider: openai, fault: sever_error}\n")
    for command in (["emulator", "--port", "0"], ["demo", "--port", "0"]):
        done = genstatus(*command, "--scenario", str(scenario))
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().startswith(f"{scenario}:2 events[0].fault: unknown fault 'sever_error'")


def test_emulator_help_documents_scenarios(capsys):
    with pytest.raises(SystemExit):
        main(["emulator", "--help"])
    out = capsys.readouterr().out
    assert "--scenario FILE" in out and "repeat: 6m" in out and "blank_image" in out


def test_emulator_plays_a_scenario(tmp_path):
    import re
    import signal
    import time

    import httpx

    scenario = tmp_path / "s.yaml"
    scenario.write_text("events:\n  - {at: 0s, provider: openai, service: dalle3, fault: blank_image, for: 1h}\n")
    process = subprocess.Popen([sys.executable, "-m", "monitor.cli", "emulator", "--port", "0", "--scenario", str(scenario)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"emulator: (http://\S+)", process.stdout.readline()).group(1)
        faults = {}
        for _ in range(50):
            faults = httpx.get(f"{url}/_faults", timeout=5).json()["faults"]
            if faults:
                break
            time.sleep(0.05)
        assert faults == {"openai/dalle3": {"fault": "blank_image", "remaining": None}}
        assert "http" in httpx.get(f"{url}/nowhere/", timeout=5).text  # every emulator is served
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


TRACE = [
    ("2026-11-02T10:00:00Z", "ok"), ("2026-11-02T10:05:00Z", "timeout"), ("2026-11-02T10:05:20Z", "timeout"),
    ("2026-11-02T10:05:40Z", "server_error"), ("2026-11-02T10:06:00Z", "timeout"), ("2026-11-02T10:06:20Z", "timeout"),
    ("2026-11-02T10:10:00Z", "timeout"), ("2026-11-02T10:15:00Z", "ok"), ("2026-11-02T10:20:00Z", "ok"),
]


def write_trace(tmp_path, rows=TRACE):
    path = tmp_path / "trace.jsonl"
    path.write_text("".join(json.dumps({"ts": ts, "service": "dalle3", "region": "eu-west", "canary": "still-life",
                                        "outcome": outcome, "latency_ms": 9000 if outcome == "ok" else None,
                                        "quality": None, "http_status": None}) + "\n" for ts, outcome in rows))
    return path


def test_replay_json_contract(tmp_path, capsys):
    assert main(["replay", str(write_trace(tmp_path)), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"incidents": [{
        "service": "dalle3", "kind": "outage", "audience": "public", "impact": "major", "regions": ["eu-west"],
        "started_at": "2026-11-02T10:05:00Z", "detected_at": "2026-11-02T10:06:20Z", "resolved_at": "2026-11-02T10:20:00Z",
        "evidence_results": 5,  # a new service (no history in the trace): five bad results against the prior
    }]}
    assert main(["replay", str(write_trace(tmp_path))]) == 0
    text = capsys.readouterr().out
    assert "1 incident\n" in text and "detected 2026-11-02T10:06:20Z after 5 bad results in a row" in text


def test_replay_takes_detector_settings_from_the_config(tmp_path, capsys):
    config = tmp_path / "genstatus.yaml"
    config.write_text("detection: {failure_threshold: 7}\ncanaries: [{id: still-life, prompt: x}]\n"
                      "services: [{id: dalle3, provider: openai, canaries: [still-life], interval: 5m}]\n")
    assert main(["replay", str(write_trace(tmp_path)), "--json", "-c", str(config)]) == 0
    assert json.loads(capsys.readouterr().out) == {"incidents": []}  # six failures in a row are not seven


def test_replay_bad_trace_names_file_and_line(tmp_path, capsys):
    path = write_trace(tmp_path)
    path.write_text(path.read_text() + '{"ts": "2026-11-02T10:25:00Z", "service": "dalle3", "region": "eu", "outcome": "exploded"}\n')
    assert main(["replay", str(path)]) == 2
    assert f"{path}:10: unknown outcome 'exploded'" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing.jsonl")]) == 2


def _commands(parser, prefix=()):
    """Every command path (``("db", "upgrade")``, ...) with placeholders for its required positionals."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
                if nested:
                    yield from _commands(sub, (*prefix, name))
                else:
                    needed = [a for a in sub._actions if not a.option_strings and a.nargs not in ("?", "*")
                              and not isinstance(a, argparse._HelpAction)]
                    yield (*prefix, name), ["x"] * len(needed)


def test_c_and_v_mean_the_same_before_or_after_every_command():
    from monitor.cli import build_parser

    parser = build_parser()
    commands = list(_commands(parser))
    assert len(commands) >= 15
    for path, positionals in commands:
        argv = [*path, *positionals]
        before = parser.parse_args(["-c", "other.yaml", "-v", *argv])
        after = parser.parse_args([*argv, "-c", "other.yaml", "-v"])
        neither = parser.parse_args(argv)
        assert (before.config, before.verbose) == (after.config, after.verbose) == ("other.yaml", True), path
        assert (neither.config, neither.verbose) == (None, False), path


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path, monkeypatch, capsys):
    """``genstatus ... | head``: the reader has gone, the next write fails with EPIPE; no traceback, exit 0."""
    import io
    import os
    import sys

    from monitor.cli import main

    services = "".join(f"  - {{id: svc-{n}, provider: openai, canaries: [c]}}\n" for n in range(3))
    (tmp_path / "genstatus.yaml").write_text(f"canaries:\n  - {{id: c, prompt: a red apple}}\nservices:\n{services}")
    monkeypatch.chdir(tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write
    closed = io.TextIOWrapper(io.FileIO(write_end, "w"), write_through=True)
    with capsys.disabled():
        monkeypatch.setattr(sys, "stdout", closed)
        assert main(["report", "--format", "json"]) == 0
        closed.write("after the fix, writes go nowhere instead of failing\n")
        closed.flush()
