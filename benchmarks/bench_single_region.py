"""Detection in the default deployment: one region, noisy providers, at 1-, 5- and 10-minute cadence.

Each cell is 6 services in one region with independent transient failures at 0.5 %, 3 % or 8 %,
plus correlated noise that is not an outage: short blips (30 s - 3 min of 5xx/timeouts) and bursts
of rate limiting (1 - 5 min of 429).  On top, 8 real outages of 5 - 240 minutes.  Two ways of
seeing the same world:

* ``replay``: the scheduled runs only (a trace from elsewhere, ``genstatus replay``);
* ``live``: closed loop, a failed scheduled run followed by the scheduler's confirmation runs
  (a burst 20, 20, 20, 20, 40 s apart while they fail, when it starts a streak; one otherwise),
  as ``genstatus run`` does.

A blip is a real failure, only short: an incident opened on one is not counted as false but
reported apart ("on blips"), beside the same figure for the baselines.

Beside ours, the Uptime Kuma-like baselines (``bench_detection.kuma_baseline``: down after N
failed scheduled runs in a row, up on the first success), which -- as a real HTTP monitor
would -- count a 429 as a failure.  Figures: false incidents per service-month, recall of
outages lasting at least three intervals, and the median / max time to detect them.
"""

from __future__ import annotations

import random
import statistics
from datetime import timedelta

from benchmarks.bench_detection import _first_affected, _matches, kuma_baseline
from benchmarks.tracegen import T0, Event, Scenario, simulate
from monitor.detection.detect import Observation
from monitor.detection.replay import IncidentRecord, replay
from monitor.enums import Outcome

SERVICES = ("dalle3", "gpt-image", "sd3", "flux-pro", "imagen", "comfy")
CADENCES = (1, 5, 10)  # minutes
NOISE = (0.005, 0.03, 0.08)
OUTAGES = 8
MONTH = timedelta(days=30)


def cell(minutes: int, noise: float, days: float, seed: int) -> Scenario:
    rng = random.Random(seed)
    scenario = Scenario(f"{minutes}m {noise:.1%}", services=SERVICES, groups={}, regions=("eu-west",),
                        interval=timedelta(minutes=minutes), days=days, noise_rate=noise, slow_rate=0.0,
                        seed=rng.randrange(1 << 30))
    span = days * 86400
    for _ in range(int(2 * days)):  # blips: 2 a day across the services
        start = T0 + timedelta(seconds=rng.uniform(0, span))
        scenario.events.append(Event("blip", rng.choice(SERVICES), ("eu-west",), start,
                                     start + timedelta(seconds=rng.uniform(30, 180)), real=False))
    bursts = []
    for _ in range(int(2 * days)):  # rate-limit bursts: 2 a day
        start = T0 + timedelta(seconds=rng.uniform(0, span))
        bursts.append(Event("burst", rng.choice(SERVICES), ("eu-west",), start,
                            start + timedelta(seconds=rng.uniform(60, 300)), real=False))
    slot = span / OUTAGES
    for i in range(OUTAGES):  # one outage in each eighth of the trace, 5 - 240 min long
        start = T0 + timedelta(seconds=slot * i + rng.uniform(0.1, 0.5) * slot)
        scenario.events.append(Event("outage", rng.choice(SERVICES), ("eu-west",), start,
                                     start + timedelta(minutes=rng.uniform(5, 240))))
    scenario.events.extend(bursts)
    return scenario


def kuma_counting_429(observations: list[Observation], n: int) -> list[IncidentRecord]:
    """The baseline sees a 429 as a failed check, as an HTTP monitor does."""
    as_failures = [Observation(o.ts, o.service, o.region, Outcome.SERVER_ERROR, canary=o.canary, confirmation=o.confirmation)
                   if o.outcome is Outcome.RATE_LIMITED else o for o in observations]
    return kuma_baseline(as_failures, n)


def score(scenario: Scenario, incidents: list[IncidentRecord], observations: list[Observation], ours: bool) -> dict:
    real = [e for e in scenario.events if e.real]
    grace = 2 * scenario.interval + scenario.confirm_delay
    blips = [e for e in scenario.events if e.kind == "blip"]
    public = [i for i in incidents if i.audience == "public"]
    unexplained = [i for i in public if not any(_matches(i, e, grace, scenario.end, ours) for e in real)]
    # a blip is a real failure, just short (30 s - 3 min): an opening on one is counted apart from pure noise
    short = sum(1 for i in unexplained if any(_matches(i, e, grace, scenario.end, False) for e in blips))
    false = len(unexplained) - short
    countable = [e for e in real if e.duration >= 3 * scenario.interval]
    ttd, caught = [], 0
    for event in countable:
        mine = [i for i in public if _matches(i, event, grace, scenario.end, ours)]
        first = _first_affected(event, observations)
        if mine:
            caught += 1
            if first is not None:
                ttd.append(max(0.0, (min(i.detected_at for i in mine) - first).total_seconds()))
    months = len(scenario.services) * (scenario.end - T0) / MONTH
    return {"false_per_service_month": false / months, "false": false, "short": short,
            "short_per_service_month": short / months,
            "recall": caught / len(countable) if countable else None,
            "ttd_median_min": statistics.median(ttd) / 60 if ttd else None,
            "ttd_max_min": max(ttd) / 60 if ttd else None}


def _note(result: dict) -> str:
    def minutes(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}m"
    recall = "-" if result["recall"] is None else f"{result['recall']:.0%}"
    return (f"{result['false']} false, {result['short']} on blips ({result['short_per_service_month']:.2f}/svc-month); "
            f"recall {recall} (outages >= 3 intervals); "
            f"TTD median {minutes(result['ttd_median_min'])} max {minutes(result['ttd_max_min'])}")


def run(quick: bool = False) -> list[dict]:
    figures = []
    days = 7 if quick else 30
    for i, (minutes, noise) in enumerate((m, p) for m in CADENCES for p in NOISE):
        scenario = cell(minutes, noise, days, seed=100 + i)
        for mode, confirmations in (("replay", False), ("live", True)):
            observations = simulate(scenario, confirmations=confirmations)
            detectors = {
                "ours": (replay(observations, scenario.detector_config()), True),
                "kuma N=1": (kuma_counting_429(observations, 1), False),
                "kuma N=3": (kuma_counting_429(observations, 3), False),
            }
            for name, (incidents, ours) in detectors.items():
                result = score(scenario, incidents, observations, ours)
                figures.append({"name": f"1 region {scenario.name} {mode}: {name}",
                                "value": round(result["false_per_service_month"], 2),
                                "unit": "false/svc-month", "note": _note(result)})
    return figures
