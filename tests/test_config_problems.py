"""``check-config`` reports every independent problem of a file in one run, in line order; a problem
hides only what depends on it (a reference to an entry refused for its own reasons, a check of a
value that stands in for an unset variable)."""

from __future__ import annotations

import pytest

from monitor.cli import main
from monitor.config import ConfigError, parse_config, parse_yaml_model
from probes.emulator.scenario import Scenario
from probes.registry import provider_issues

#: one problem of each kind, each on its own line (the line numbers are the file's, counted from 1)
MANY_PROBLEMS = """\
site: {title: "Status"}
canaries:
  - id: still-life
    prompt: "a red apple"
    size: 1024x1024
services:
  - id: dalle3
    provider: openia
    api_key: ${GENSTATUS_TEST_UNSET_KEY}
    canaries: [still-life, sunset]
    interval: 5 minutes
    concurrency: many
    modle: dall-e-3
alerts:
  channels:
    - {id: ops, type: console}
  routes:
    - {channels: [ops, pager]}
reports:
  weekly: {channels: [mail]}
"""

MANY_PROBLEMS_REPORTED = [
    "services[0].provider: unknown provider 'openia'",
    "services[0].api_key: environment variable GENSTATUS_TEST_UNSET_KEY is not set",
    "services[0].canaries[1]: canary 'sunset' is not defined under canaries",
    "services[0].interval: invalid duration '5 minutes' (use e.g. 30s, 5m, 1h)",
    "services[0].concurrency: Input should be a valid integer",
    "services[0].modle: unknown key 'modle'",
    "alerts.routes[0].channels[1]: channel 'pager' is not defined",
    "reports.weekly.channels[0]: channel 'mail' is not defined",
]
MANY_PROBLEMS_LINES = [8, 9, 10, 11, 12, 13, 18, 20]


def errors_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "genstatus.yaml", env=env or {}, checks=[provider_issues])
    return caught.value.lines


def test_check_config_reports_every_kind_of_problem_at_once_in_line_order(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GENSTATUS_TEST_UNSET_KEY", raising=False)
    path = tmp_path / "many.yaml"
    path.write_text(MANY_PROBLEMS)
    assert main(["check-config", "-c", str(path)]) == 2  # the config-error exit code, as before
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == ""
    assert len(lines) == len(MANY_PROBLEMS_REPORTED), lines
    for line, number, expected in zip(lines, MANY_PROBLEMS_LINES, MANY_PROBLEMS_REPORTED, strict=True):
        assert line.startswith(f"{path}:{number} {expected}"), (line, number, expected)


def test_problems_are_sorted_by_line_whatever_stage_found_them():
    """A cross-reference problem above a schema problem comes first."""
    text = MANY_PROBLEMS.replace("    interval: 5 minutes\n", "").replace("    concurrency: many\n", "") \
        .replace("    modle: dall-e-3\n", "") + "retention: {raw_results: forever}\n"
    lines = errors_of(text, env={"GENSTATUS_TEST_UNSET_KEY": "sk-x"})
    numbers = [int(line.split()[0].rsplit(":", 1)[1]) for line in lines]
    assert numbers == sorted(numbers) and len(lines) == 5, lines
    assert lines[-1].startswith("genstatus.yaml:18 retention.raw_results:"), lines


def test_entries_refused_by_the_schema_leave_the_rest_checked_at_their_own_lines():
    """A refused entry is left out of the later checks; the entries after it keep their index and line,
    and references to a refused entry are not a second problem."""
    text = """\
canaries:
  - id: "bad id!"
    prompt: "x"
  - id: ok
    prompt: "y"
services:
  - id: first
    canaries: ["bad id!"]
    group: G1
  - id: second
    provider: nope
    canaries: [ok, missing]
alerts:
  channels:
    - {id: pager, type: pagerdutyy}
  routes:
    - {channels: [pager, nope], groups: [G1, G2], services: [first, zz]}
"""
    lines = errors_of(text)
    assert [line.split(" ", 2)[:2] for line in lines] == [
        ["genstatus.yaml:2", "canaries[0].id:"],
        ["genstatus.yaml:7", "services[0].provider:"],  # required key is missing
        ["genstatus.yaml:11", "services[1].provider:"],  # unknown provider, found although services[0] was refused
        ["genstatus.yaml:12", "services[1].canaries[1]:"],
        ["genstatus.yaml:15", "alerts.channels[0]:"],
        ["genstatus.yaml:17", "alerts.routes[0].channels[1]:"],
        ["genstatus.yaml:17", "alerts.routes[0].services[1]:"],
        ["genstatus.yaml:17", "alerts.routes[0].groups[1]:"],
    ], lines
    assert "required key is missing" in lines[1] and "unknown provider 'nope'" in lines[2]
    assert not any("'bad id!'" in line or "'pager'" in line or "'first'" in line or "'G1'" in line for line in lines)


def test_a_value_standing_in_for_an_unset_variable_is_not_checked_again():
    """``provider: ${P}`` unset is one problem, not also "unknown provider ''"; a base_url built from an
    unset variable is not also "not a URL"; the other services' problems are still found."""
    text = """\
canaries:
  - {id: c, prompt: "x"}
services:
  - id: a
    provider: ${GENSTATUS_TEST_UNSET_PROVIDER}
    base_url: ${GENSTATUS_TEST_UNSET_URL}/v1
    canaries: [c]
  - id: b
    provider: openai
    canaries: [c]
    timeout: 0s
"""
    assert errors_of(text) == [
        "genstatus.yaml:5 services[0].provider: environment variable GENSTATUS_TEST_UNSET_PROVIDER is not set",
        "genstatus.yaml:6 services[0].base_url: environment variable GENSTATUS_TEST_UNSET_URL is not set",
        "genstatus.yaml:11 services[1].timeout: must be at least 1s, got 0s",
    ]


def test_a_yaml_problem_and_a_schema_problem_are_reported_together():
    text = "canaries:\n  - {id: c, prompt: x, prompt: y}\nservices: []\nregion: [a]\n"
    assert errors_of(text) == [
        "genstatus.yaml:2 canaries[0].prompt: duplicate key 'prompt'",
        "genstatus.yaml:4 region: Input should be a valid string",
    ]


def test_a_valid_file_still_parses_and_other_models_still_report_all_problems():
    config = parse_config("canaries: [{id: c, prompt: x}]\nservices: [{id: s, provider: openai, canaries: [c]}]\n",
                          env={}, checks=[provider_issues])
    assert config.services[0].canaries == ["c"]
    with pytest.raises(ConfigError) as caught:  # no cross-checks here: the schema's problems, in line order
        parse_yaml_model("events:\n  - {at: soon, provider: openai, fault: server_error}\n"
                         "  - {at: 1s, provider: openai, fault: server_error, for: \"${GENSTATUS_TEST_UNSET}\"}\n",
                         "s.yaml", Scenario, env={})
    lines = caught.value.lines
    assert lines[0].startswith("s.yaml:2 events[0].at: invalid duration 'soon'"), lines
    assert lines[-1] == "s.yaml:3 events[1].for: environment variable GENSTATUS_TEST_UNSET is not set", lines
