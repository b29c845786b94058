"""Evidence sized to each service's own noise: the background counts, the judgement of a bad
streak, and what it does to openings in a replay."""

from __future__ import annotations

import itertools
import math
import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from monitor.config import DetectionSettings, parse_config
from monitor.detection.background import Background, BackgroundCounter, classes_of, judge
from monitor.detection.detect import DetectorConfig, Observation, ServiceRules
from monitor.detection.incidents import background_counts
from monitor.detection.replay import replay
from monitor.engine.coordinator import Coordinator
from monitor.engine.scheduler import confirmation_delays, keeps_confirming
from monitor.enums import IncidentKind, Outcome, ProbeKind
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.models import Incident as IncidentRow
from monitor.store.record import ResultRecord
from monitor.store.results import ResultStore

T0 = datetime(2026, 11, 2, tzinfo=UTC)
LOOSE = 10_000  # a false-incident budget so loose that failure_threshold alone decides
FIVE = timedelta(minutes=5)
OUTAGE = IncidentKind.OUTAGE
ERR, TIMEOUT, OK = Outcome.SERVER_ERROR, Outcome.TIMEOUT, Outcome.OK


def config(**settings) -> DetectorConfig:
    return DetectorConfig(settings=DetectionSettings(**settings), services={"s": ServiceRules(interval=FIVE)})


def history(failure_rate: float, days: float, outcome: Outcome = ERR, seed: int = 1, start: datetime = T0) -> list[Observation]:
    """Scheduled runs every 5 minutes failing independently at ``failure_rate``."""
    rng = random.Random(seed)
    runs = int(days * 288)
    return [Observation(start + i * FIVE, "s", "eu", outcome if rng.random() < failure_rate else OK, canary="c")
            for i in range(runs)]


def counted(trace: list[Observation]) -> Background:
    counter = BackgroundCounter(config())
    for obs in trace:
        counter.add(obs)
    return counter.of("s", "eu", OUTAGE)


def needed(background: Background, outcome: Outcome = ERR, budget: float = 0.25) -> int:
    """How many bad results in a row (a run and its confirmations) open an incident on this background."""
    for length in range(1, 30):
        streak = [Observation(T0 + timedelta(seconds=20 * i), "s", "eu", outcome, confirmation=i > 0) for i in range(length)]
        if judge(OUTAGE, streak, background, interval=FIVE, canaries=1, regions=1, budget=budget).chance \
                <= budget / (timedelta(days=90) / FIVE):
            return length
    raise AssertionError("never significant")


def test_a_new_service_is_judged_on_the_prior():
    fresh = Background()
    # the prior (1 % failures, 5 % repeats) taken one standard deviation up: about 2.4 % and 12 %
    assert fresh.failure_rate == pytest.approx(0.024, abs=0.001)
    assert fresh.overall_repeat_rate(True) == fresh.overall_repeat_rate(False) == pytest.approx(0.116, abs=0.001)
    assert needed(fresh) > needed(counted(history(0.0, days=7)))  # a quiet week earns a quicker opening


def test_a_noisy_service_needs_more_evidence_than_a_clean_one():
    clean, noisy, very = (counted(history(rate, days=7)) for rate in (0.0, 0.03, 0.08))
    assert noisy.failure_rate == pytest.approx(0.03, abs=0.01)
    assert needed(clean) < needed(noisy) < needed(very)
    assert needed(clean) <= 4  # a service that never fails opens fast
    # a larger budget asks for less evidence
    assert needed(noisy, budget=5) < needed(noisy, budget=0.05)


def test_the_repeat_rate_is_never_below_the_failure_rate():
    noise = counted(history(0.05, days=2))
    assert noise.overall_repeat_rate(False) >= noise.failure_rate
    bursty = Background(runs=1000, bad=Counter({"other": 20}), after_bad=Counter({True: 20}),
                        repeats=Counter({(True, "other"): 10}))
    assert bursty.overall_repeat_rate(True) >= (10 + 0.5) / (20 + 10)  # at least the estimate
    independent = Background(runs=1000, bad=Counter({"other": 20}), after_bad=Counter({True: 20}))
    assert needed(bursty) > needed(independent)
    # the confirmations repeat, the scheduled runs do not: a streak of scheduled runs is not judged by the bursts
    assert bursty.overall_repeat_rate(False) < bursty.overall_repeat_rate(True)


def test_the_chance_is_a_bound_however_the_classes_split():
    """Under noise the likelihood ratio has mean 1: the chances of every class sequence, weighed by how
    likely noise makes them, add up to at most one (Markov's inequality makes the chance a bound)."""
    for bad in (Counter({"other": 50}), Counter({"timeout": 50}), Counter({"other": 25, "timeout": 25}), Counter()):
        bg = Background(runs=1000, bad=bad, after_bad=Counter({True: 50}), repeats=Counter({(True, "timeout"): 5}))
        classes = classes_of(OUTAGE)
        assert sum(bg.share(c, classes) for c in classes) == pytest.approx(1.0)
        for length in (1, 2, 3):
            total = 0.0
            for sequence in itertools.product(classes, repeat=length):
                noise = bg.rate(sequence[0], classes) * math.prod(bg.repeat_rate(c, classes, True) for c in sequence[1:])
                chance = math.prod([bg.rate(sequence[0], classes) / bg.share(sequence[0], classes)]
                                   + [bg.repeat_rate(c, classes, True) / bg.share(c, classes) for c in sequence[1:]])
                total += noise / chance
            assert total <= 1.0 + 1e-9


def test_timeouts_are_weighed_by_their_own_rate():
    timeouts = counted(history(0.05, days=7, outcome=TIMEOUT))
    assert needed(timeouts, TIMEOUT) > needed(timeouts, ERR)


def test_the_counter_leaves_out_incident_time_and_forgets_old_results():
    counter = BackgroundCounter(config())
    for i, outcome in enumerate((ERR, ERR, OK, ERR, OK)):
        counter.add(Observation(T0 + i * FIVE, "s", "eu", outcome), excluded={OUTAGE} if i < 2 else ())
    counts = counter.of("s", "eu", OUTAGE)
    assert (counts.runs, sum(counts.bad.values()), counts.after_bad[False]) == (3, 1, 1)  # no pair across the incident
    counter.forget_before(T0 + 3 * FIVE)
    counts = counter.of("s", "eu", OUTAGE)
    assert (counts.runs, sum(counts.bad.values()), counts.after_bad[False]) == (2, 1, 1)
    assert counter.of("other", "eu", OUTAGE).runs == 0


def test_explanation_gives_the_evidence_and_the_odds():
    noisy = counted(history(0.03, days=7))
    streak = [Observation(T0 + timedelta(seconds=20 * i), "s", "eu", ERR, confirmation=i > 0) for i in range(4)]
    text = judge(OUTAGE, streak, noisy, interval=FIVE, canaries=1, regions=1, budget=0.25).explain()
    assert text.startswith("4 failures in 1m (server_error 4), against a background of up to 3.")
    assert "open anyway" not in text
    assert "by chance" in text and "1 in 10^" in text and "results in the last 7 days" in text


def test_replay_on_a_noisy_service_opens_only_the_outage_and_says_how_many_runs_it_took():
    noise = history(0.08, days=5, seed=3)
    outage_start = noise[-1].ts + FIVE
    outage = [Observation(outage_start + i * FIVE, "s", "eu", ERR, canary="c") for i in range(12)]
    after = history(0.0, days=0.2, start=outage[-1].ts + FIVE)
    opened = replay(noise + outage + after, config())
    assert len(opened) == 1, [i.to_dict() for i in opened]
    incident = opened[0].to_dict(with_updates=True)
    assert incident["started_at"] == outage_start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert incident["evidence_results"] >= 4  # 8 % noise: two or three failures in a row are common
    assert 8 <= float(re.search(r"background of up to ([\d.]+)%", incident["updates"][0]["body"]).group(1)) <= 10
    # the same trace with two failures in a row as the fixed rule (a budget so loose it always allows it)
    eager = replay(noise + outage + after, config(false_incident_budget=LOOSE))
    assert len(eager) > 1


def test_background_from_the_database_matches_the_replay_count(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'bg.db'}")
    upgrade(engine)
    store = ResultStore(engine)
    store.sync_catalog(parse_config("canaries: [{id: c, prompt: x}]\n"
                                    "services: [{id: s, name: S, provider: openai, canaries: [c], interval: 5m}]\n", env={}))
    trace = history(0.05, days=2, seed=5)
    for obs in trace:
        store.record(ResultRecord(service="s", canary="c", region="eu", kind=ProbeKind.CANARY, started_at=obs.ts,
                                  finished_at=obs.ts, outcome=obs.outcome, latency_ms={"total": 1000.0}))
    incident = (T0 + 100 * FIVE, T0 + 120 * FIVE)
    with Session(engine) as session, session.begin():
        session.add(IncidentRow(service_id="s", kind="outage", audience="public", impact="major", status="resolved",
                                regions=["eu"], started_at=incident[0], detected_at=incident[0], resolved_at=incident[1],
                                title="t"))
    now = trace[-1].ts
    detector = config()
    with Session(engine) as session:
        live = background_counts(session, detector, now).of("s", "eu", OUTAGE)
    expected = BackgroundCounter(detector)
    for obs in trace:
        if obs.ts < now - detector.lookback():
            expected.add(obs, {OUTAGE} if incident[0] <= obs.ts <= incident[1] else ())
    wanted = expected.of("s", "eu", OUTAGE)
    assert (live.runs, live.bad, live.after_bad, live.repeats) == (wanted.runs, wanted.bad, wanted.after_bad, wanted.repeats)
    assert live.runs < len(trace) - 30  # the incident and the lookback were left out
    engine.dispose()


def test_confirmation_bursts_start_a_streak_and_stop_on_429():
    delay = timedelta(seconds=20)
    assert confirmation_delays(delay, 5, streak_start=True) == [delay * k for k in (1, 1, 1, 1, 2)]
    assert confirmation_delays(delay, 5, streak_start=False) == [delay]
    assert confirmation_delays(delay, 0, streak_start=True) == []
    assert sum(confirmation_delays(delay, 5, streak_start=True)[:4], timedelta()) <= timedelta(minutes=2)
    assert keeps_confirming(ERR) and keeps_confirming(TIMEOUT)
    assert not keeps_confirming(Outcome.RATE_LIMITED) and not keeps_confirming(OK) and not keeps_confirming(Outcome.AUTH_ERROR)


def test_failed_health_checks_add_evidence_but_never_open_alone():
    week = history(0.0, days=7, start=T0 - timedelta(days=7))
    start = T0 + timedelta(minutes=30)
    canary = [Observation(start + i * FIVE, "s", "eu", ERR, canary="c") for i in range(4)]
    health = [Observation(start + timedelta(seconds=30 * (i + 1)), "s", "eu", Outcome.CONNECTION_ERROR, health=True)
              for i in range(8)]
    tail = history(0.0, days=0.1, start=start + 4 * FIVE)
    (alone,) = replay(week + canary + tail, config())
    (helped,) = replay(week + canary + health + tail, config())
    assert helped.detected_at < alone.detected_at and helped.detected_at <= start + timedelta(minutes=2)
    # passing health checks say nothing: they neither break a canary streak nor resolve anything
    passing = [Observation(o.ts, "s", "eu", OK, health=True) for o in health]
    (same,) = replay(week + canary + passing + tail, config())
    assert same.detected_at == alone.detected_at
    # a health endpoint failing for a whole interval while generations succeed opens nothing
    generating = history(0.0, days=0.1, start=start)
    assert replay(week + generating + health, config()) == []


@pytest.mark.parametrize("failure_rate, opens", [(0.0, True), (0.08, False)])
def test_the_coordinator_judges_a_streak_against_the_week_in_its_database(tmp_path, failure_rate, opens):
    engine = make_engine(f"sqlite:///{tmp_path / 'coordinator.db'}")
    upgrade(engine)
    config = parse_config("canaries: [{id: c, prompt: x}]\nregion: eu\n"
                          "services: [{id: s, name: S, provider: openai, canaries: [c], interval: 5m}]\n", env={})
    store = ResultStore(engine)
    store.sync_catalog(config)

    def stored(ts: datetime, outcome: Outcome, kind: ProbeKind = ProbeKind.CANARY) -> ResultRecord:
        return ResultRecord(service="s", canary="c", region="eu", kind=kind, started_at=ts, finished_at=ts, outcome=outcome,
                            latency_ms={"total": 1000.0})

    store.record_many(stored(o.ts, o.outcome) for o in history(failure_rate, days=7, start=T0 - timedelta(days=7), seed=11))
    store.record_many([stored(T0, ERR)] + [stored(T0 + timedelta(seconds=20 * i), ERR, ProbeKind.CONFIRMATION)
                                           for i in (1, 2, 3)])
    transitions = Coordinator(engine, config).tick(T0 + timedelta(seconds=61))
    assert [t.action.value for t in transitions] == (["open"] if opens else [])
    if opens:
        assert "4 failures in 1m" in transitions[0].message and "results in the last 7 days" in transitions[0].message
    engine.dispose()


def test_a_long_run_of_failures_counts_once_as_a_repeat():
    """An outage that was never posted must not teach the detector that failures always repeat."""
    counter = BackgroundCounter(config())
    outcomes = [OK] * 20 + [ERR] * 8 + [OK] * 20 + [ERR, OK] * 3
    for i, outcome in enumerate(outcomes):
        counter.add(Observation(T0 + i * FIVE, "s", "eu", outcome))
    counts = counter.of("s", "eu", OUTAGE)
    assert sum(counts.bad.values()) == 11  # every failure counts in the failure rate
    assert counts.after_bad[False] == 4 and sum(counts.repeats.values()) == 1  # four runs of failures, one repeated


def test_the_coordinator_tops_its_background_up_instead_of_recounting_the_week(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'topup.db'}")
    upgrade(engine)
    config = parse_config("canaries: [{id: c, prompt: x}]\nregion: eu\n"
                          "services: [{id: s, name: S, provider: openai, canaries: [c], interval: 5m}]\n", env={})
    store = ResultStore(engine)
    store.sync_catalog(config)
    trace = history(0.05, days=8, start=T0 - timedelta(days=8), seed=21)
    store.record_many(ResultRecord(service="s", canary="c", region="eu", kind=ProbeKind.CANARY, started_at=o.ts,
                                   finished_at=o.ts, outcome=o.outcome, latency_ms={"total": 1000.0}) for o in trace)
    coordinator = Coordinator(engine, config)
    coordinator.tick(T0 - timedelta(hours=3))
    kept = coordinator._background
    coordinator.tick(T0 - timedelta(hours=3) + timedelta(minutes=5))  # too soon: nothing read
    assert coordinator._background is kept and coordinator._counted_until == T0 - timedelta(hours=3) - coordinator.detector.lookback()
    coordinator.tick(T0)  # three hours later: topped up, and the oldest three hours forgotten
    assert coordinator._background is kept
    with Session(engine) as session:
        fresh = background_counts(session, coordinator.detector, T0).of("s", "eu", OUTAGE)
    topped = kept.of("s", "eu", OUTAGE)
    assert (topped.runs, topped.bad) == (fresh.runs, fresh.bad)
    assert abs(topped.after_bad[False] - fresh.after_bad[False]) <= 1  # the window's first result may follow a failure
    engine.dispose()
