"""Scheduler: budget stretching, per-service concurrency, no self-overlap, clean shutdown, confirmation bursts."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from monitor.config import parse_config
from monitor.engine.scheduler import BUDGET_MONTH, ProbeScheduler, plan_interval
from monitor.enums import Outcome, ProbeKind
from monitor.store.record import ResultRecord


def make_config(interval="1s", concurrency=1, canaries=1, cost=0.0, budget=None, detection=""):
    ids = [f"c{i}" for i in range(canaries)]
    canary_yaml = "".join(f"  - {{id: {cid}, prompt: p{cid}}}\n" for cid in ids)
    extra = f"    monthly_budget: {budget}\n" if budget else ""
    return parse_config(
        f"{detection}canaries:\n{canary_yaml}services:\n  - id: s1\n    provider: openai\n    canaries: [{', '.join(ids)}]\n"
        f"    interval: {interval}\n    concurrency: {concurrency}\n    cost_per_image: {cost}\n{extra}",
        env={},
    )


class SlowRunner:
    """Stands in for the probe runner: records concurrency, takes ``seconds`` per run."""

    region = "test"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.active = self.peak = self.calls = 0
        self.lock = threading.Lock()
        self.per_job: dict[str, list[tuple[float, float]]] = {}

    def run(self, service, canary, kind=ProbeKind.CANARY):
        began = time.monotonic()
        with self.lock:
            self.active += 1
            self.calls += 1
            self.peak = max(self.peak, self.active)
        time.sleep(self.seconds)
        with self.lock:
            self.active -= 1
            self.per_job.setdefault(canary.id, []).append((began, time.monotonic()))
        return ResultRecord(service=service.id, canary=canary.id, region="test", kind=kind,
                            started_at=datetime.now(UTC), outcome=Outcome.OK)


def test_budget_stretches_interval_and_never_overspends():
    config = make_config(interval="1m", canaries=2, cost=0.04, budget=40)
    plan = plan_interval(config.services[0])
    # 2 canaries every minute = 86,400 images a month = $3,456 > $40
    assert plan.effective > plan.configured
    assert plan.monthly_spend <= 40
    assert 0.04 * 2 * (BUDGET_MONTH / plan.effective) <= 40
    assert "over the $40 budget" in plan.reason


def test_within_budget_keeps_interval():
    plan = plan_interval(make_config(interval="10m", cost=0.04, budget=200).services[0])
    assert plan.effective == timedelta(minutes=10) and plan.reason is None
    assert plan.monthly_spend == round(0.04 * 4320, 4)


def test_concurrency_limit_per_service():
    for limit in (1, 2):
        runner = SlowRunner(0.4)
        results = []
        scheduler = ProbeScheduler(make_config(interval="1s", concurrency=limit, canaries=3), runner, results.append,
                                   jitter_fraction=0)
        scheduler.start()
        time.sleep(2.5)
        scheduler.shutdown()
        assert runner.peak == limit, (limit, runner.peak)
        assert len(results) == runner.calls > 3


def test_a_job_never_overlaps_itself():
    runner = SlowRunner(1.5)  # longer than the 1 s interval
    scheduler = ProbeScheduler(make_config(interval="1s"), runner, lambda r: None, jitter_fraction=0)
    scheduler.start()
    time.sleep(4)
    scheduler.shutdown()
    runs = runner.per_job["c0"]
    assert len(runs) >= 2
    for (_, end), (start, _) in zip(runs, runs[1:]):
        assert start >= end - 0.01


def test_shutdown_lets_in_flight_probes_finish_and_hand_over():
    runner = SlowRunner(1.0)
    results = []
    scheduler = ProbeScheduler(make_config(interval="1h"), runner, results.append, jitter_fraction=0)
    scheduler.start()
    time.sleep(0.3)  # the first run is in flight now
    scheduler.shutdown(wait=True)
    assert runner.calls == 1 and len(results) == 1


class ScriptedRunner:
    """Answers each run with the next outcome of a script (the last one repeats), recording kind and time."""

    region = "test"

    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes
        self.runs: list[tuple[ProbeKind, float]] = []

    def run(self, service, canary, kind=ProbeKind.CANARY):
        outcome = self.outcomes[min(len(self.runs), len(self.outcomes) - 1)]
        self.runs.append((kind, time.monotonic()))
        return ResultRecord(service=service.id, canary=canary.id, region="test", kind=kind,
                            started_at=datetime.now(UTC), outcome=outcome)


def run_for(outcomes: list[Outcome], seconds: float, max_confirmations: int = 5) -> ScriptedRunner:
    runner = ScriptedRunner(outcomes)
    config = make_config(interval="1h", detection=f"detection: {{confirm_delay: 100ms, max_confirmations: {max_confirmations}}}\n")
    scheduler = ProbeScheduler(config, runner, lambda r: None, jitter_fraction=0)
    scheduler.start()
    time.sleep(seconds)
    scheduler.shutdown()
    return runner


def test_a_failure_that_starts_a_streak_gets_a_burst_of_confirmations():
    runner = run_for([Outcome.SERVER_ERROR], seconds=2.0)
    kinds = [kind for kind, _ in runner.runs]
    assert kinds == [ProbeKind.CANARY] + [ProbeKind.CONFIRMATION] * 5  # the scheduled run, then the whole burst
    gaps = [b - a for (_, a), (_, b) in zip(runner.runs, runner.runs[1:])]
    # never sooner than planned (100 ms x 1, 1, 1, 1, 2); a busy machine may only make them later
    assert all(gap >= planned - 0.01 for gap, planned in zip(gaps, (0.1, 0.1, 0.1, 0.1, 0.2))), gaps


def test_a_burst_stops_at_the_first_good_result_or_a_429():
    recovered = run_for([Outcome.SERVER_ERROR, Outcome.SERVER_ERROR, Outcome.OK], seconds=1.5)
    assert [kind for kind, _ in recovered.runs] == [ProbeKind.CANARY, ProbeKind.CONFIRMATION, ProbeKind.CONFIRMATION]
    throttled = run_for([Outcome.TIMEOUT, Outcome.RATE_LIMITED], seconds=1.5)
    assert [kind for kind, _ in throttled.runs] == [ProbeKind.CANARY, ProbeKind.CONFIRMATION]
    none = run_for([Outcome.SERVER_ERROR], seconds=1.0, max_confirmations=0)
    assert [kind for kind, _ in none.runs] == [ProbeKind.CANARY]


class SteppedClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_skips_are_counted_and_logged_once_per_window(caplog):
    from monitor.engine.skips import SkipLedger

    clock = SteppedClock()
    ledger = SkipLedger(window_s=60, clock=clock)
    with caplog.at_level("WARNING", logger="genstatus.scheduler"):
        for second in range(0, 150, 5):  # a skip every 5 s for two and a half minutes
            clock.now = float(second)
            ledger.skipped("openai", lag_s=7.0 + second / 10, interval_s=5)
        ledger.skipped("bfl", lag_s=12.0, interval_s=10)
        lines = [r.getMessage() for r in caplog.records]
        # the first skip at once, then one summary per minute: at 60 s and 120 s; bfl's first on its own
        assert len(lines) == 4, lines
        assert lines[0].startswith("openai: a scheduled run was skipped, the previous one was still going after 7 s "
                                   "against a 5 s interval")
        assert lines[1].startswith("openai: 12 runs skipped in the last 60 s, scheduler lag 13 s")
        assert "probes take longer than the interval or the worker pool is too small" in lines[1]
        assert lines[2].startswith("openai: 12 runs skipped in the last 60 s, scheduler lag 19 s")
        assert lines[3].startswith("bfl: a scheduled run was skipped")
        assert ledger.counts() == {"openai": 30, "bfl": 1}
        clock.now = 150.0
        ledger.flush()  # the skips since the last summary are not lost at shutdown
        assert caplog.records[-1].getMessage().startswith("openai: 5 runs skipped in the last 30 s")
        assert len(caplog.records) == 5
        ledger.flush()
        assert len(caplog.records) == 5  # nothing new to say


def test_a_probe_longer_than_its_interval_is_a_counted_skip_logged_once(caplog):
    runner = SlowRunner(1.5)  # longer than the 1 s interval: every other due time finds it still running
    scheduler = ProbeScheduler(make_config(interval="1s"), runner, lambda r: None, jitter_fraction=0)
    with caplog.at_level("INFO"):
        scheduler.start()
        time.sleep(4.6)
        skipped = scheduler.skipped_runs.get("s1", 0)
        lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
        scheduler.shutdown()
    assert skipped >= 1, (skipped, runner.calls)
    # one line for the first skip (the next would come a minute later), none of APScheduler's own per skip
    assert len(lines) == 1 and lines[0].startswith("s1: a scheduled run was skipped"), lines
    assert "against a 1 s interval" in lines[0]
    assert not [r for r in caplog.records if "maximum number of running instances" in r.getMessage()]
    after = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(after) <= 2 and (len(after) == 1 or "skipped since start" in after[-1])


def test_a_probe_within_its_interval_is_never_skipped():
    runner = SlowRunner(0.2)
    scheduler = ProbeScheduler(make_config(interval="1s"), runner, lambda r: None, jitter_fraction=0)
    scheduler.start()
    time.sleep(3.2)
    scheduler.shutdown()
    assert runner.calls >= 3 and scheduler.skipped_runs == {}


def test_shutdown_without_keeping_in_flight_results_hands_over_nothing():
    runner = SlowRunner(1.0)
    results = []
    scheduler = ProbeScheduler(make_config(interval="1h"), runner, results.append, jitter_fraction=0)
    scheduler.start()
    time.sleep(0.3)  # the first run is in flight now
    scheduler.shutdown(wait=False, keep_in_flight=False)
    assert runner.calls == 1 and results == []  # not waited for...
    scheduler.shutdown(wait=True)  # ...until asked: the worker is joined, and its result dropped
    assert runner.active == 0 and results == []
