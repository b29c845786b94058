"""The configs ``genstatus init`` writes run as written: no budget stretches their interval, the
emulator's address comes from ``GENSTATUS_EMULATOR``, and ``check-config`` says OK."""

from __future__ import annotations

from importlib import resources

import pytest

from monitor.cli import main
from monitor.cli.examples import example, example_config
from monitor.config import ConfigError, parse_config
from monitor.engine.scheduler import plan_interval
from probes.registry import provider_issues

STARTER = resources.files("monitor.cli").joinpath("starter.yaml").read_text(encoding="utf-8")


def starter(env: dict[str, str] | None = None):
    return parse_config(STARTER, "starter.yaml", env=env or {}, checks=[provider_issues])


def test_starter_probes_at_the_interval_it_writes():
    """The emulator is free: ``cost_per_image: 0`` with the real price in a comment, so the budget
    does not stretch ``interval: 1m`` (at 0.04 USD it would, to ~19 minutes)."""
    config = starter()
    for service in config.services:
        plan = plan_interval(service)
        assert plan.effective == plan.configured == service.interval, plan.reason
        assert service.cost_per_image == 0
    assert "real API: 0.04 USD" in STARTER
    priced = config.services[0].model_copy(update={"cost_per_image": 0.04})
    assert plan_interval(priced).effective > 10 * priced.interval  # what the comment warns of


def test_every_example_probes_at_the_interval_it_writes(emulator):
    for config in (example(), example(emulator.url), example(emulator.url, per_service=True, interval="5s")):
        for service in config.services:
            plan = plan_interval(service)
            assert plan.effective == service.interval, (service.id, plan.reason)


@pytest.mark.parametrize("env, expected", [
    ({}, "http://127.0.0.1:8765/openai/v1"),  # the default when unset
    ({"GENSTATUS_EMULATOR": ""}, "http://127.0.0.1:8765/openai/v1"),  # or empty, as in the shell
    ({"GENSTATUS_EMULATOR": "http://127.0.0.1:9100"}, "http://127.0.0.1:9100/openai/v1"),
])
def test_starter_and_examples_take_the_emulator_address_from_one_variable(env, expected):
    assert starter(env).services[0].base_url == expected
    root = expected.removesuffix("/openai/v1")
    text = example_config()
    config = parse_config(text, "example.yaml", env=env, checks=[provider_issues])
    assert all(service.base_url.startswith(f"{root}/{service.provider}") for service in config.services)
    assert text.count("${GENSTATUS_EMULATOR:-http://127.0.0.1:8765}/") == len(config.services)


def test_variable_defaults():
    text = "canaries:\n  - id: c\n    prompt: \"${GENSTATUS_T_PROMPT:-a red apple}\"\n" \
           "    negative_prompt: \"${GENSTATUS_T_EMPTY:-}\"\nsite: {title: \"${GENSTATUS_T_TITLE}\"}\n"
    config = parse_config(text, env={"GENSTATUS_T_TITLE": "Ours"})
    assert (config.canaries[0].prompt, config.canaries[0].negative_prompt, config.site.title) == ("a red apple", "", "Ours")
    config = parse_config(text, env={"GENSTATUS_T_TITLE": "Ours", "GENSTATUS_T_PROMPT": "a pear"})
    assert config.canaries[0].prompt == "a pear"
    with pytest.raises(ConfigError) as caught:  # a plain ${VAR} must be set: the error names file, line and key
        parse_config(text, "mine.yaml", env={})
    assert caught.value.lines == ["mine.yaml:5 site.title: environment variable GENSTATUS_T_TITLE is not set"]


def test_init_then_check_config_says_ok_and_the_starter_probes_the_emulator(tmp_path, capsys, monkeypatch, emulator):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENSTATUS_CONFIG", raising=False)
    monkeypatch.delenv("GENSTATUS_EMULATOR", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["init"]) == 0
    assert "wrote genstatus.yaml" in capsys.readouterr().out
    assert main(["check-config"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "genstatus.yaml: OK (1 services, 1 canaries)\n" and captured.err == ""
    monkeypatch.setenv("GENSTATUS_EMULATOR", emulator.url)  # an emulator on another port: one variable
    assert main(["probe", "dalle3", "--dry-run"]) == 0
    assert ": ok in" in capsys.readouterr().out
