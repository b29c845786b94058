"""The alert benchmark keeps working: a few deliveries through the dispatcher and straight, and the delay."""

from __future__ import annotations

from benchmarks.bench_alerts import delay, throughput


def test_the_alert_benchmark_measures_something_real():
    dispatched, direct = throughput(channels=2, events=5)
    assert dispatched > 0 and direct > 0
    median, p99 = delay(channels=1, events=3)
    assert 0 < median <= p99 < 30  # every message arrived (a lost one would time out at 30 s)
