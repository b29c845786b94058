"""Seeded synthetic traces for judging detection, with the ground truth that produced them.

A trace is simulated closed-loop, the way the scheduler probes: every (service, region)
runs its canary every ``interval`` from a random phase, and a scheduled run that fails is
followed by confirmation runs, as the scheduler spaces them (``confirmation_delays``).  What each run sees comes from the
injected events (outages, regional outages, latency and quality degradations, flapping, a
blind probe agent) plus independent transient failures and short single-region blips
(noise that must never open an incident).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from monitor.detection.detect import DetectorConfig, Observation, ServiceRules
from monitor.engine.scheduler import confirmation_delays, keeps_confirming
from monitor.enums import HEALTHY_OUTCOMES, Outcome

T0 = datetime(2026, 10, 1, tzinfo=UTC)
REGIONS = ("eu-west", "us-east", "ap-south")
LATENCY_THRESHOLD_MS = 45_000.0
NORMAL_LATENCY_MS = 8_000.0


@dataclass(frozen=True)
class Event:
    """Something that really happened (``real``), or noise (``real=False``: blips)."""

    kind: str  # outage | regional | latency | quality | flapping | agent | blip | burst
    service: str | None  # None for an agent event (it concerns a region)
    regions: tuple[str, ...]
    start: datetime
    end: datetime
    real: bool = True

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def covers(self, service: str, region: str, ts: datetime) -> bool:
        if not (self.start <= ts < self.end) or region not in self.regions:
            return False
        if self.service is not None and self.service != service:
            return False
        if self.kind == "flapping":  # down for 5-15 min, up for 5-15 min, and so on
            return _flap_down(self, ts)
        return True


def _flap_down(event: Event, ts: datetime) -> bool:
    rng = random.Random(zlib.crc32(f"{event.service}@{event.start.isoformat()}".encode()))
    t, down = event.start, True
    while t <= ts:
        step = timedelta(minutes=rng.uniform(5, 15))
        if ts < t + step:
            return down
        t, down = t + step, not down
    return down


@dataclass
class Scenario:
    name: str
    services: tuple[str, ...] = ("dalle3", "gpt-image", "sd3", "flux-pro", "imagen")
    groups: dict[str, str] = field(default_factory=lambda: {"dalle3": "OpenAI", "gpt-image": "OpenAI", "sd3": "Stability",
                                                             "flux-pro": "BFL", "imagen": "Google"})
    regions: tuple[str, ...] = REGIONS
    interval: timedelta = timedelta(minutes=5)
    confirm_delay: timedelta = timedelta(seconds=20)
    max_confirmations: int = 5
    days: float = 30
    noise_rate: float = 0.02   # transient failures
    slow_rate: float = 0.01    # latency outliers over the threshold
    events: list[Event] = field(default_factory=list)
    seed: int = 1

    @property
    def end(self) -> datetime:
        return T0 + timedelta(days=self.days)

    def detector_config(self) -> DetectorConfig:
        rules = {s: ServiceRules(interval=self.interval, group=self.groups.get(s, ""), latency_threshold_ms=LATENCY_THRESHOLD_MS)
                 for s in self.services}
        config = DetectorConfig(services=rules)
        config.settings = config.settings.model_copy(update={"confirm_delay": self.confirm_delay})
        return config


def simulate(scenario: Scenario, confirmations: bool = True) -> list[Observation]:
    """Every result the probes would record, in time order."""
    rng = random.Random(scenario.seed)
    results: list[Observation] = []
    for service in scenario.services:
        for region in scenario.regions:
            ts = T0 + timedelta(seconds=rng.uniform(0, scenario.interval.total_seconds()))
            failing = False
            while ts < scenario.end:
                result = _run(scenario, service, region, ts, rng, confirmation=False)
                results.append(result)
                if confirmations and result.outcome not in HEALTHY_OUTCOMES:
                    result = _confirm(scenario, service, region, ts, rng, result, not failing, results)
                failing = result.outcome not in HEALTHY_OUTCOMES
                ts += scenario.interval
    return sorted(results, key=lambda o: (o.ts, o.service, o.region))


def _confirm(scenario: Scenario, service: str, region: str, ts: datetime, rng: random.Random, failed: Observation,
             streak_start: bool, results: list[Observation]) -> Observation:
    """The scheduler's confirmation runs after a failed scheduled run (``confirmation_delays``); returns the last result."""
    at, last = ts, failed
    for gap in confirmation_delays(scenario.confirm_delay, scenario.max_confirmations, streak_start):
        at += gap
        if at >= ts + scenario.interval:
            break  # the next scheduled run comes first
        last = _run(scenario, service, region, at, rng, confirmation=True)
        results.append(last)
        if not keeps_confirming(last.outcome):
            break
    return last


def _run(scenario: Scenario, service: str, region: str, ts: datetime, rng: random.Random, confirmation: bool) -> Observation:
    latency = rng.lognormvariate(0, 0.25) * NORMAL_LATENCY_MS
    outcome = Outcome.OK
    for event in scenario.events:
        if not event.covers(service, region, ts):
            continue
        if event.kind in ("outage", "regional", "flapping", "blip"):
            outcome = rng.choice((Outcome.SERVER_ERROR, Outcome.TIMEOUT))
        elif event.kind == "agent":
            outcome = Outcome.CONNECTION_ERROR
        elif event.kind == "burst":  # noise: a few minutes of rate limiting
            outcome = Outcome.RATE_LIMITED
        elif event.kind == "quality":
            outcome = Outcome.DEGRADED_QUALITY
        elif event.kind == "latency":
            latency = LATENCY_THRESHOLD_MS * rng.uniform(1.5, 3)
            outcome = Outcome.SLOW
    if outcome in (Outcome.OK, Outcome.SLOW) and rng.random() < scenario.noise_rate:
        outcome = rng.choice((Outcome.SERVER_ERROR, Outcome.TIMEOUT))
    elif outcome is Outcome.OK and rng.random() < scenario.slow_rate:
        latency, outcome = LATENCY_THRESHOLD_MS * rng.uniform(1.05, 2), Outcome.SLOW
    answered = outcome in (Outcome.OK, Outcome.SLOW, Outcome.DEGRADED_QUALITY)
    return Observation(ts, service, region, outcome, canary="still-life", latency_ms=latency if answered else None,
                       quality=0.2 if outcome is Outcome.DEGRADED_QUALITY else (0.9 if answered else None),
                       confirmation=confirmation)


# -- scenarios -------------------------------------------------------------------------


def _spread(rng: random.Random, scenario: Scenario, count: int, durations: tuple[float, float]) -> list[tuple[datetime, datetime]]:
    """``count`` non-overlapping windows (minutes long within ``durations``), at least 6 h apart."""
    slots = int(scenario.days * 4) - 1  # one per 6 hours
    starts = sorted(rng.sample(range(1, slots), count))
    windows = []
    for slot in starts:
        start = T0 + timedelta(hours=6 * slot, minutes=rng.uniform(0, 60))
        windows.append((start, start + timedelta(minutes=rng.uniform(*durations))))
    return windows


def _blips(rng: random.Random, scenario: Scenario, per_day: float) -> list[Event]:
    """Short (30 s - 3 min) failures of one service in one region: noise."""
    events = []
    for _ in range(int(per_day * scenario.days)):
        start = T0 + timedelta(seconds=rng.uniform(0, scenario.days * 86400))
        events.append(Event("blip", rng.choice(scenario.services), (rng.choice(scenario.regions),), start,
                            start + timedelta(seconds=rng.uniform(30, 180)), real=False))
    return events


def scenarios(seed: int = 7, days: float = 30) -> list[Scenario]:
    """The evaluation set: noise only, then each kind of real event on top of the same noise."""
    rng = random.Random(seed)
    built = []

    def scenario(name: str, **kwargs) -> Scenario:
        made = Scenario(name, days=days, seed=rng.randrange(1 << 30), **kwargs)
        made.events.extend(_blips(rng, made, per_day=3))
        built.append(made)
        return made

    scenario("noise only")
    hard = scenario("hard outages (all regions)")
    for start, end in _spread(rng, hard, 20, (2, 120)):
        hard.events.append(Event("outage", rng.choice(hard.services), hard.regions, start, end))
    regional = scenario("regional outages")
    for start, end in _spread(rng, regional, 20, (10, 120)):
        regional.events.append(Event("regional", rng.choice(regional.services), (rng.choice(regional.regions),), start, end))
    latency = scenario("latency degradations")
    for start, end in _spread(rng, latency, 12, (30, 120)):
        latency.events.append(Event("latency", rng.choice(latency.services), latency.regions, start, end))
    quality = scenario("quality degradations")
    for start, end in _spread(rng, quality, 12, (15, 120)):
        quality.events.append(Event("quality", rng.choice(quality.services), quality.regions, start, end))
    flapping = scenario("flapping services")
    for start, end in _spread(rng, flapping, 8, (90, 180)):
        flapping.events.append(Event("flapping", rng.choice(flapping.services), flapping.regions, start, end))
    blind = scenario("agent goes blind")
    for start, end in _spread(rng, blind, 6, (20, 90)):
        blind.events.append(Event("agent", None, (rng.choice(blind.regions),), start, end))
    single = scenario("hard outages, single region", regions=("eu-west",))
    for start, end in _spread(rng, single, 20, (2, 120)):
        single.events.append(Event("outage", rng.choice(single.services), single.regions, start, end))
    return built
