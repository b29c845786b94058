"""Config loading: every error names file, line and key path; the documented example validates."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import ConfigError, load_config, parse_config
from probes.registry import provider_issues

CONTRACT_EXAMPLE = Path(__file__).parent / "data" / "design_example.yaml"

BASE = """\
site: {title: "Status"}
database: sqlite:///x.db
canaries:
  - id: still-life
    prompt: "a red apple"
    size: 1024x1024
    seed: 1234
services:
  - id: dalle3
    provider: openai
    api_key: ${OPENAI_API_KEY}
    model: dall-e-3
    canaries: [still-life]
    interval: 10m
"""
ENV = {"OPENAI_API_KEY": "sk-test-123456789"}


def errors_of(text: str, env=ENV) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "genstatus.yaml", env=env, checks=[provider_issues])
    return caught.value.lines


def test_valid_config_parses_with_defaults():
    config = parse_config(BASE, env=ENV, checks=[provider_issues])
    service = config.services[0]
    assert service.interval == timedelta(minutes=10)
    assert service.timeout == timedelta(seconds=180)
    assert service.api_key.get_secret_value() == "sk-test-123456789"
    assert "sk-test" not in repr(config)  # secrets never show in reprs or logs
    assert config.canaries_of(service)[0].dimensions == (1024, 1024)


@pytest.mark.parametrize(
    "text, expected",
    [
        (BASE.replace("interval: 10m", "interval: 5 minutes"),
         "genstatus.yaml:14 services[0].interval: invalid duration '5 minutes' (use e.g. 30s, 5m, 1h)"),
        (BASE.replace("    model: dall-e-3\n", "    model: dall-e-3\n    modle: x\n"),
         "genstatus.yaml:13 services[0].modle: unknown key 'modle'"),
        (BASE.replace("provider: openai", "provider: openia"),
         "genstatus.yaml:10 services[0].provider: unknown provider 'openia'"),
        (BASE + "  - id: dalle3\n    provider: openai\n    canaries: [still-life]\n",
         "genstatus.yaml:15 services[1].id: duplicate service id 'dalle3'"),
        (BASE.replace("canaries: [still-life]", "canaries: [still-life, sunset]"),
         "genstatus.yaml:13 services[0].canaries[1]: canary 'sunset' is not defined under canaries"),
        (BASE.replace("size: 1024x1024", "size: huge"),
         "genstatus.yaml:6 canaries[0].size: invalid size 'huge'"),
        (BASE.replace("site: {title: \"Status\"}", "site: {title: \"Status\", colour: red}"),
         "genstatus.yaml:1 site.colour: unknown key 'colour'"),
        (BASE.replace("    provider: openai\n", ""),
         "genstatus.yaml:9 services[0].provider: required key is missing"),
    ],
)
def test_errors_name_file_line_and_path(text, expected):
    lines = errors_of(text)
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected), lines[0]


def test_missing_environment_variable_is_named():
    lines = errors_of(BASE, env={})
    assert lines == ["genstatus.yaml:11 services[0].api_key: environment variable OPENAI_API_KEY is not set"]


def test_env_default_and_database_override():
    text = BASE.replace("${OPENAI_API_KEY}", "${OPENAI_API_KEY:-sk-fallback}")
    config = parse_config(text, env={"GENSTATUS_DATABASE_URL": "postgresql://db/x"})
    assert config.services[0].api_key.get_secret_value() == "sk-fallback"
    assert config.database == "postgresql://db/x"


def test_duplicate_yaml_key_and_syntax_error_have_lines():
    lines = errors_of(BASE.replace("    interval: 10m\n", "    interval: 10m\n    interval: 5m\n"))
    assert lines == ["genstatus.yaml:15 services[0].interval: duplicate key 'interval'"]
    lines = errors_of(BASE + "  - id: [unclosed\n")
    assert re.match(r"genstatus\.yaml:1[56] ", lines[0]), lines


def test_several_problems_are_all_reported():
    text = BASE.replace("interval: 10m", "interval: soon").replace("size: 1024x1024", "size: big")
    lines = errors_of(text)
    assert len(lines) == 2 and any("interval" in line for line in lines) and any("size" in line for line in lines)


def test_provider_options_are_validated_by_the_adapter():
    text = BASE + "    options: {response_format: b64_json, qualty: hd}\n"
    lines = errors_of(text)
    assert lines[0].startswith("genstatus.yaml:15 services[0].options.qualty: unknown key 'qualty'"), lines


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert "no such config file" in str(caught.value)


def test_design_example_validates():
    """The documented example config (docs/contracts.md) is a contract: it must keep validating."""
    source = CONTRACT_EXAMPLE
    text = source.read_text()
    if source.suffix == ".md":
        text = text.split("```yaml", 1)[1].split("```", 1)[0]
    env = {"OPENAI_API_KEY": "sk-x", "SLACK_WEBHOOK_URL": "https://hooks.example/x", "SMTP_USER": "u", "SMTP_PASSWORD": "p"}
    config = parse_config(text, source.name, env=env, checks=[provider_issues])
    assert config.services[0].slo.latency_p95 == timedelta(seconds=45)
    assert config.alerts.channels[1].smtp.port == 587


def test_starter_config_validates():
    from importlib import resources

    text = resources.files("monitor.cli").joinpath("starter.yaml").read_text()
    config = parse_config(text, "starter.yaml", env={}, checks=[provider_issues])
    assert config.services[0].allow_private_network is True
