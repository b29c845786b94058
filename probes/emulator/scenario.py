"""Scripted incidents: a YAML timeline of faults the emulator sets and clears by itself.

::

    # times are offsets from the emulator's start
    events:
      - {at: 20s, provider: openai, fault: server_error, for: 1m}
      - {at: 2m, provider: openai, service: dalle3, fault: blank_image, for: 1m}
      - {at: 4m, provider: openai, fault: slow, params: {seconds: 8}, for: 1m}
    repeat: 6m        # optional: start over after this long

An event without ``for`` lasts until the scenario starts over (or for good without
``repeat``).  ``service`` targets one service, addressed as ``/s/<service>/<provider>/...``.
``genstatus emulator --scenario FILE`` runs one; ``genstatus demo`` runs ``scenarios/demo.yaml``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from monitor.config import ConfigError, Duration, Slug, parse_yaml_model
from monitor.config.durations import format_duration
from probes.emulator.faults import FAULTS, FaultBoard
from probes.emulator.registry import EMULATORS

log = logging.getLogger("genstatus.emulator")

BUILTIN_DEMO = "demo.yaml"


class ScenarioEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    at: Duration
    provider: str
    service: Slug | None = None
    fault: str
    params: dict[str, Any] = {}
    duration: Duration | None = Field(None, alias="for")

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in EMULATORS:
            raise ValueError(f"no emulator for provider {value!r} (known: {', '.join(sorted(EMULATORS))})")
        return value

    @field_validator("fault")
    @classmethod
    def _known_fault(cls, value: str) -> str:
        if value not in FAULTS:
            raise ValueError(f"unknown fault {value!r} (known: {', '.join(FAULTS)})")
        return value

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value.total_seconds() <= 0:
            raise ValueError("must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _params_fit_the_fault(self) -> ScenarioEvent:
        try:
            FaultBoard().set(self.provider, self.fault, **self.params)
        except ValueError as exc:
            raise ValueError(f"params: {exc}") from None
        return self

    @property
    def end(self) -> float | None:
        return None if self.duration is None else (self.at + self.duration).total_seconds()

    def describe(self) -> str:
        target = f"{self.provider}/{self.service}" if self.service else self.provider
        params = "".join(f" {k}={v}" for k, v in self.params.items())
        span = f" for {format_duration(self.duration)}" if self.duration else ""
        return f"{target}: {self.fault}{params}{span}"


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[ScenarioEvent] = Field(min_length=1)
    repeat: Duration | None = None

    @field_validator("repeat")
    @classmethod
    def _events_fit_in_a_cycle(cls, value: timedelta | None, info: ValidationInfo) -> timedelta | None:
        if value is None:
            return value
        cycle = value.total_seconds()
        if cycle <= 0:
            raise ValueError("must be longer than 0s")
        for i, event in enumerate(info.data.get("events") or []):
            if event.at.total_seconds() >= cycle or (event.end or 0) > cycle:
                raise ValueError(f"event {i} ({event.describe()} at {format_duration(event.at)}) "
                                 f"does not end within a cycle of {format_duration(value)}")
        return value


def parse_scenario(text: str, file: str = "scenario.yaml") -> Scenario:
    """Validate a scenario; errors are ``ConfigError`` lines ``FILE:LINE key.path: message``."""
    return parse_yaml_model(text, file, Scenario, env={})


def load_scenario(path: str | Path) -> Scenario:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"{path}: cannot read scenario: {exc}"]) from None
    return parse_scenario(text, str(path))


def builtin_scenario_text(name: str = BUILTIN_DEMO) -> str:
    return resources.files("probes.emulator").joinpath("scenarios", name).read_text(encoding="utf-8")


# -- running --------------------------------------------------------------------------------


class ScenarioRunner:
    """Sets and clears the scenario's faults on time, from a daemon thread.

    ``clock`` and ``sleep`` are injectable so tests run minutes of scenario in milliseconds;
    ``run_due(now)`` is the whole schedule logic and can be driven directly.
    """

    def __init__(
        self,
        faults: FaultBoard,
        scenario: Scenario,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.faults = faults
        self.scenario = scenario
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._timeline = _timeline(scenario)
        self._cycle_start: float | None = None
        self._index = 0
        self._active: set[tuple[str, str | None, str]] = set()
        self._thread: threading.Thread | None = None

    def begin(self, now: float | None = None) -> None:
        """Offset 0 of the scenario is ``now`` (default: the clock)."""
        self._cycle_start = self._clock() if now is None else now
        self._index = 0

    def run_due(self, now: float) -> float | None:
        """Apply every change due by ``now``; return when the next one is due (None: no more)."""
        assert self._cycle_start is not None, "call begin() first"
        while True:
            if self._index == len(self._timeline):
                if self.scenario.repeat is None:
                    return None
                self._cycle_start += self.scenario.repeat.total_seconds()
                self._index = 0
            offset, starts, event = self._timeline[self._index]
            due = self._cycle_start + offset
            if due > now:
                return due
            self._set(event) if starts else self._clear(event)
            self._index += 1

    def start(self) -> ScenarioRunner:
        self.begin()
        self._thread = threading.Thread(target=self._run, name="genstatus-scenario", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the timeline and clear the faults it set (from any thread, the timeline's own included)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
            self._thread = None
        for provider, service, fault in list(self._active):
            self.faults.discard(provider, service, fault)
        self._active.clear()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the timeline to end (a scenario without ``repeat`` ends after its last change, or
        at ``stop``); True when it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            due = self.run_due(self._clock())
            if due is None:
                return
            self._sleep(max(0.0, due - self._clock()))

    def _set(self, event: ScenarioEvent) -> None:
        self.faults.set(event.provider, event.fault, service=event.service, **event.params)
        self._active.add((event.provider, event.service, event.fault))
        log.info("scenario: %s", event.describe())

    def _clear(self, event: ScenarioEvent) -> None:
        self.faults.discard(event.provider, event.service, event.fault)
        self._active.discard((event.provider, event.service, event.fault))
        log.info("scenario: %s%s: %s over", event.provider, f"/{event.service}" if event.service else "", event.fault)


def _timeline(scenario: Scenario) -> list[tuple[float, bool, ScenarioEvent]]:
    """``(offset s, True = set / False = clear, event)`` in order; at the same moment clears go first."""
    changes: list[tuple[float, bool, ScenarioEvent]] = []
    for event in scenario.events:
        changes.append((event.at.total_seconds(), True, event))
        end = event.end if event.end is not None else (scenario.repeat.total_seconds() if scenario.repeat else None)
        if end is not None:
            changes.append((end, False, event))
    return sorted(changes, key=lambda change: (change[0], change[1]))
