"""SLO burn-rate alerts: the multiwindow rule with minimum evidence, from stored results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.config import parse_config
from monitor.detection.slo import TIERS, Counts, burning, check_burn_rates, dedupe_key
from monitor.enums import Outcome, ProbeKind
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.models import AlertOutbox
from monitor.store.record import ResultRecord
from monitor.store.results import ResultStore

FAST, MEDIUM, SLOW = TIERS
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "tier, long, short, expected",
    [
        (FAST, Counts(6, 12), Counts(1, 1), True),     # 50 % errors vs 0.5 % budget: 100x
        (FAST, Counts(6, 12), Counts(0, 1), False),    # the short window has recovered
        (FAST, Counts(1, 12), Counts(1, 1), False),    # one failure is not enough evidence
        (FAST, Counts(3, 6), Counts(1, 1), False),     # too few results in the long window
        (SLOW, Counts(10, 864), Counts(3, 72), True),  # 1.2 % errors: 2.3x over three days
        (SLOW, Counts(3, 864), Counts(1, 72), False),  # 0.35 %: within budget
    ],
)
def test_burning(tier, long, short, expected):
    assert burning(tier, long, short, slo_percent=99.5) is expected


def result(at: datetime, outcome: Outcome) -> ResultRecord:
    return ResultRecord(service="svc", canary="c", region="eu", kind=ProbeKind.CANARY, started_at=at, finished_at=at,
                       outcome=outcome, latency_ms={"total": 1000.0})


def one_service(tmp_path):
    """A service with a 99.5 % SLO in a fresh SQLite store: (config, engine, store)."""
    config = parse_config("canaries: [{id: c, prompt: x}]\nservices: [{id: svc, name: Svc, provider: openai, canaries: [c],"
                          " interval: 1m, slo: {availability: 99.5}}]\n", env={})
    engine = make_engine(f"sqlite:///{tmp_path / 'slo.db'}")
    upgrade(engine)
    store = ResultStore(engine)
    store.sync_catalog(config)
    return config, engine, store


def test_alert_written_once_per_long_window(tmp_path):
    config, engine, store = one_service(tmp_path)
    for minute in range(60):  # a run a minute for an hour, failing for the last 20 minutes
        outcome = Outcome.SERVER_ERROR if minute >= 40 else Outcome.OK
        store.record(result(NOW - timedelta(minutes=60 - minute), outcome))
    first = check_burn_rates(engine, config, NOW)
    # a third of the runs failed: every tier burns (the long ones see only this hour of history)
    assert {a.event: a.impact for a in first} == {"slo_burn:fast": "major", "slo_burn:medium": "major", "slo_burn:slow": "minor"}
    assert all(a.audience == "operator" and "Svc: error budget burning" in a.title for a in first)
    # two page tiers fire together: each line names its window pair, so they never read the same
    titles = {a.event: a.title for a in first}
    assert "over 1h and" in titles["slo_burn:fast"] and "over 5m (fast page)" in titles["slo_burn:fast"]
    assert "over 6h and" in titles["slo_burn:medium"] and "over 30m (medium page)" in titles["slo_burn:medium"]
    assert len(set(titles.values())) == 3
    assert {a.dedupe_key for a in first} == {"slo_burn:fast:svc:2026-11-02T12:00Z", "slo_burn:medium:svc:2026-11-02T12:00Z",
                                              "slo_burn:slow:svc:2026-10-31T00:00Z"}  # 3-day buckets from the epoch
    assert check_burn_rates(engine, config, NOW + timedelta(minutes=1)) == []  # no storm
    with Session(engine) as session, session.begin():  # in the caller's transaction (the coordinator's)
        assert check_burn_rates(session, config, NOW + timedelta(minutes=2)) == []
    with Session(engine) as session:
        assert len(session.scalars(select(AlertOutbox)).all()) == 3
    engine.dispose()


def test_dedupe_key_never_refuses_what_the_window_allows():
    """An earlier alert with the same key lies in the same bucket, hence inside the sliding long window."""
    for tier in TIERS:
        key = dedupe_key("svc", tier, NOW)
        assert dedupe_key("svc", tier, NOW + tier.long) != key
        for step in range(1, 50):
            later = NOW + step * tier.long / 7
            if dedupe_key("svc", tier, later) == key:
                assert later - NOW < tier.long


def test_confirmation_runs_are_not_counted_as_samples(tmp_path):
    """A failed canary followed by its burst of failing confirmations is one failure, not six."""
    config, engine, store = one_service(tmp_path)
    for minute in range(60):  # one failing canary in the hour, the rest good
        at = NOW - timedelta(minutes=60 - minute)
        store.record(result(at, Outcome.SERVER_ERROR if minute == 58 else Outcome.OK))
        if minute == 58:
            for i in range(1, 6):
                store.record(ResultRecord(service="svc", canary="c", region="eu", kind=ProbeKind.CONFIRMATION,
                                          started_at=at + timedelta(seconds=5 * i), finished_at=at + timedelta(seconds=5 * i),
                                          outcome=Outcome.SERVER_ERROR, latency_ms={"total": 1000.0}))
    assert check_burn_rates(engine, config, NOW) == []  # 1 failure < MIN_FAILURES; with confirmations it was 6
    engine.dispose()
