"""The single-region detection benchmark keeps working: one small cell, every detector scored."""

from __future__ import annotations

from benchmarks.bench_single_region import cell, kuma_counting_429, score
from benchmarks.tracegen import simulate
from monitor.detection.replay import replay
from monitor.enums import Outcome


def test_a_small_cell_scores_every_detector():
    scenario = cell(10, 0.03, days=2, seed=1)
    assert sum(e.real for e in scenario.events) == 8 and any(e.kind == "burst" for e in scenario.events)
    observations = simulate(scenario, confirmations=True)
    assert any(o.outcome is Outcome.RATE_LIMITED for o in observations)  # the bursts reach the trace
    ours = score(scenario, replay(observations, scenario.detector_config()), observations, ours=True)
    eager = score(scenario, kuma_counting_429(observations, 1), observations, ours=False)
    patient = score(scenario, kuma_counting_429(observations, 3), observations, ours=False)
    assert eager["recall"] == 1.0 and ours["recall"] == 1.0
    assert eager["false"] > patient["false"]  # one failure is not an outage: N=1 pays for it in false alarms
    assert ours["false"] == 0 and eager["false"] > 0
    # live: a run and its confirmation burst (20 s, 20 s, 20 s, 20 s, 40 s) settle a hard outage within about 2 minutes
    assert ours["ttd_max_min"] is not None and ours["ttd_max_min"] <= 2.5
