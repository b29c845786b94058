"""Scenario files: validation with file:line errors, and the timeline run on an injected clock."""

from __future__ import annotations

import pytest

from monitor.config import ConfigError
from probes.emulator.faults import FAULTS, FaultBoard
from probes.emulator.registry import EMULATORS
from probes.emulator.scenario import ScenarioRunner, builtin_scenario_text, load_scenario, parse_scenario

SCENARIO = """\
# times are offsets from the emulator's start
events:
  - {at: 20s, provider: openai, fault: server_error, for: 1m}
  - {at: 2m, provider: openai, service: dalle3, fault: blank_image, for: 1m}
  - {at: 4m, provider: openai, fault: slow, params: {seconds: 8}, for: 1m}
repeat: 6m
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_scenario(text, "s.yaml")
    return caught.value.lines


def test_valid_scenario():
    scenario = parse_scenario(SCENARIO)
    assert [e.at.total_seconds() for e in scenario.events] == [20, 120, 240]
    assert scenario.events[1].service == "dalle3" and scenario.events[2].params == {"seconds": 8}
    assert scenario.repeat.total_seconds() == 360 and scenario.events[0].end == 80


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("for: 1m}\n  - {at: 2m", "fro: 1m}\n  - {at: 2m", "s.yaml:3 events[0].fro: unknown key 'fro'"),
        ("provider: openai, service", "provider: opena, service", "s.yaml:4 events[1].provider: no emulator for provider 'opena'"),
        ("fault: blank_image", "fault: blank", "s.yaml:4 events[1].fault: unknown fault 'blank'"),
        ("{seconds: 8}", "{secs: 8}", "s.yaml:5 events[2]: params: fault 'slow' does not take secs"),
        ("{seconds: 8}", "{seconds: -1}", "s.yaml:5 events[2]: params: seconds must be a non-negative float"),
        ("at: 2m,", "at: 2 minutes,", "s.yaml:4 events[1].at: invalid duration '2 minutes'"),
        ("for: 1m}\n  - {at: 4m", "for: 0s}\n  - {at: 4m", "s.yaml:4 events[1].for: must be longer than 0s"),
        ("repeat: 6m", "repeat: 4m30s", "s.yaml:6 repeat: event 2 (openai: slow seconds=8 for 1m at 4m) does not end within a cycle of 4m30s"),
        ("repeat: 6m", "repaet: 6m", "s.yaml:6 repaet: unknown key 'repaet'"),
        ("at: 20s, ", "", "s.yaml:3 events[0].at: required key is missing"),
    ],
)
def test_errors_are_one_line_with_file_line_and_key(old, new, expected):
    assert old in SCENARIO
    lines = errors_of(SCENARIO.replace(old, new, 1))
    assert any(line.startswith(expected) for line in lines), lines


def test_missing_file_and_empty_events(tmp_path):
    with pytest.raises(ConfigError, match="cannot read scenario"):
        load_scenario(tmp_path / "nope.yaml")
    assert errors_of("events: []\n")[0].startswith("s.yaml:1 events: List should have at least 1 item")


def test_builtin_demo_scenario_names_only_existing_providers_and_faults():
    scenario = parse_scenario(builtin_scenario_text(), "demo.yaml")
    kinds = {event.fault for event in scenario.events}
    assert {event.provider for event in scenario.events} <= set(EMULATORS)
    assert kinds <= set(FAULTS) and len(kinds) >= 4  # several kinds of incident
    # a cycle, and each incident in it ends well before the cycle starts over (the page returns to green)
    assert scenario.repeat is not None
    assert all(e.end is not None and e.end <= scenario.repeat.total_seconds() - 120 for e in scenario.events)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_timeline_sets_and_clears_on_time_and_repeats():
    board, clock = FaultBoard(), FakeClock()
    runner = ScenarioRunner(board, parse_scenario(SCENARIO), clock=clock)
    runner.begin()

    def at(seconds: float) -> dict:
        runner.run_due(1000.0 + seconds)
        return {key: value["fault"] for key, value in board.snapshot().items()}

    assert at(19) == {}
    assert at(20) == {"openai": "server_error"}
    assert at(79.9) == {"openai": "server_error"}
    assert at(80) == {}
    assert at(150) == {"openai/dalle3": "blank_image"}
    assert at(250) == {"openai": "slow"} and board.active("openai").params == {"seconds": 8.0}
    assert at(300) == {}
    assert at(360 + 25) == {"openai": "server_error"}  # second cycle
    assert runner.run_due(1000.0 + 385) == 1000.0 + 360 + 80  # the next change


def test_ending_a_provider_wide_fault_keeps_service_and_hand_set_faults():
    board = FaultBoard()
    scenario = parse_scenario("events:\n  - {at: 0s, provider: openai, fault: server_error, for: 10s}\n")
    runner = ScenarioRunner(board, scenario, clock=FakeClock())
    runner.begin(0.0)
    runner.run_due(0.0)
    board.set("openai", "blank_image", service="dalle3", count=2)
    runner.run_due(10.0)
    assert board.snapshot() == {"openai/dalle3": {"fault": "blank_image", "remaining": 2}}
    # a fault someone set by hand in the meantime is not the scenario's to clear
    runner.begin(0.0)
    runner.run_due(0.0)
    board.set("openai", "hang")
    assert runner.run_due(10.0) is None
    assert board.active("openai").name == "hang"


def test_event_without_for_lasts_until_the_cycle_ends():
    board = FaultBoard()
    scenario = parse_scenario("events:\n  - {at: 5s, provider: openai, fault: hang}\nrepeat: 1m\n")
    runner = ScenarioRunner(board, scenario, clock=FakeClock())
    runner.begin(0.0)
    runner.run_due(59.0)
    assert board.active("openai").name == "hang"
    runner.run_due(61.0)
    assert board.active("openai") is None


def test_thread_follows_the_clock_and_stop_clears_its_faults():
    board, clock = FaultBoard(), FakeClock()
    seen: list[tuple[float, dict]] = []

    def sleep(seconds: float) -> None:  # time passes only when the runner sleeps
        clock.now += seconds
        seen.append((clock.now - 1000.0, board.snapshot()))
        if clock.now - 1000.0 >= 2 * 360:
            runner.stop()  # from the timeline's own thread: ends it after this wake-up

    runner = ScenarioRunner(board, parse_scenario(SCENARIO), clock=clock, sleep=sleep)
    assert runner.start().join(timeout=5)
    wake_ups = [t for t, _ in seen]
    assert wake_ups[:6] == [20, 80, 120, 180, 240, 300] and 360 + 20 in wake_ups
    assert dict(seen)[80] == {"openai": {"fault": "server_error", "remaining": None}}
    runner.begin(0.0)
    runner.run_due(250.0)  # the scenario has set the slow fault (at 4m)...
    assert board.snapshot()["openai"]["fault"] == "slow"
    runner.stop()  # ...and stop clears it
    assert board.snapshot() == {}


def test_discard_clears_exactly_one_fault():
    board = FaultBoard()
    board.set("openai", "server_error")
    board.set("openai", "hang", service="svc")
    board.discard("openai", None, "rate_limited")  # not the fault set there: stays
    board.discard("openai")
    assert board.snapshot() == {"openai/svc": {"fault": "hang", "remaining": None}}
