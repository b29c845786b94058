"""``genstatus init --example all``: one service per emulated provider, valid, and ok against the emulator."""

from __future__ import annotations

import re

import pytest

from monitor.cli import main
from monitor.cli.demo import demo_config
from monitor.cli.examples import example, example_config
from monitor.engine.runner import ProbeRunner
from monitor.enums import Outcome
from probes.emulator.registry import EMULATORS


def test_one_service_per_emulated_provider_with_a_comment_each():
    text = example_config()
    config = example()
    assert sorted(s.provider for s in config.services) == sorted(EMULATORS)
    for service in config.services:
        assert service.base_url.startswith(f"http://127.0.0.1:8765/{service.provider}")
        assert service.allow_private_network and service.canaries == ["still-life"]
    assert text.count("# real service: base_url:") == len(EMULATORS)
    assert "# real service: base_url: https://api.openai.com/v1, api_key: ${OPENAI_API_KEY}" in text


def test_demo_config_addresses_each_service_on_its_own(tmp_path, emulator):
    config = demo_config(tmp_path / "d.db", emulator.url, "5s")
    assert config.database == f"sqlite:///{tmp_path / 'd.db'}"
    runner = ProbeRunner(config, region="test")
    try:
        for service in config.services:
            assert f"{emulator.url}/s/{service.id}/{service.provider}" in service.base_url
            assert service.interval.total_seconds() == 5 and service.latency_threshold.total_seconds() == 3  # slow spell 4 s
            result = runner.run(service, config.canaries[0])
            assert result.outcome is Outcome.OK, (service.id, result.error_detail)
    finally:
        runner.close()


def test_init_example_all_checks_and_every_service_probes_ok(tmp_path, emulator, capsys, monkeypatch):
    assert main(["init", str(tmp_path), "--example", "all"]) == 0
    path = tmp_path / "genstatus.yaml"
    assert main(["check-config", "-c", str(path)]) == 0
    assert f"({len(EMULATORS)} services, 1 canaries)" in capsys.readouterr().out
    monkeypatch.setenv("GENSTATUS_EMULATOR", emulator.url)  # the file names the emulator by this variable
    monkeypatch.chdir(tmp_path)
    failures = {}
    for service_id in re.findall(r"^  - id: (\S+)$", path.read_text(), re.M):
        if service_id == "still-life":
            continue
        code = main(["probe", service_id, "-c", str(path), "--dry-run"])
        out = capsys.readouterr().out
        if code != 0 or ": ok in" not in out:
            failures[service_id] = out
    assert not failures


def test_unknown_example_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as caught:
        main(["init", str(tmp_path), "--example", "some"])
    assert caught.value.code == 2
