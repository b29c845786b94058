"""The weekly report's figures, checked against values computed here from the raw results written.

Six weeks of history (three services, Europe/Berlin, a result every 30 minutes per region, with
confirmation runs and health checks) go through the real ``ResultStore``, so the rollups are written
exactly as in production; incidents are inserted as rows.  Every expectation below is computed in
this file from the generated records and the incident literals -- the outcome groups are spelled out
here on purpose -- never by the report's own code.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.config.retention import RetentionSettings
from monitor.enums import Outcome, ProbeKind
from monitor.reports.figures import build_report
from monitor.reports.model import WeeklyReportData
from monitor.reports.schema import JSON_SCHEMA, SCHEMA_ID, from_json, to_json
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.models import Incident
from monitor.store.record import ResultRecord
from monitor.store.results import ResultStore
from monitor.store.retention import run_retention
from tests.fixture_postgres import _database

TZ = "Europe/Berlin"
BERLIN = ZoneInfo(TZ)
WEEK = "2026-W47"
W_START = datetime(2026, 11, 15, 23, tzinfo=UTC)  # Monday 16 Nov 00:00 CET
W_END = datetime(2026, 11, 22, 23, tzinfo=UTC)
P_START = W_START - timedelta(days=7)  # the previous week (no DST change between)
NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)  # Monday 09:00 in Berlin: the scheduled report time
HISTORY = (datetime(2026, 10, 12, tzinfo=UTC), datetime(2026, 11, 23, 7, tzinfo=UTC))
CADENCE = timedelta(minutes=30)
OUTAGE = (datetime(2026, 11, 18, 10, tzinfo=UTC), datetime(2026, 11, 18, 11, 30, tzinfo=UTC))  # alpha, eu-west
VERSION_CHANGE = datetime(2026, 11, 19, 12, tzinfo=UTC)

# the outcome taxonomy, written out here (docs/contracts.md) rather than taken from monitor.enums
DOWN = {"bad_output", "server_error", "timeout", "connection_error", "client_error"}
DEGRADED = {"slow", "degraded_quality", "content_filtered", "rate_limited"}
OPERATOR = {"auth_error", "probe_error"}
IMAGE = {"ok", "slow", "degraded_quality"}
SUCCESS = {"ok", "slow"}
MIX = [("ok", 0.93), ("slow", 0.02), ("degraded_quality", 0.01), ("content_filtered", 0.01), ("rate_limited", 0.008),
       ("server_error", 0.006), ("timeout", 0.004), ("bad_output", 0.002), ("auth_error", 0.005), ("probe_error", 0.005)]

CONFIG = {
    "site": {"title": "Example status", "timezone": TZ},
    "canaries": [{"id": "cat", "prompt": "a photo of a cat"}],
    "services": [
        {"id": "alpha", "name": "Alpha", "group": "Text to image", "provider": "openai", "canaries": ["cat"],
         "cost_per_image": 0.02, "monthly_budget": 30,
         "slo": {"availability": 95, "latency_p95": "20s", "min_quality": 0.7}},
        {"id": "beta", "name": "Beta", "group": "Text to image", "provider": "stability", "canaries": ["cat"],
         "cost_per_image": 0.03, "slo": {"availability": 99.9}},
        {"id": "gamma", "name": "Gamma", "group": "Upscaling", "provider": "replicate", "canaries": ["cat"]},
    ],
}
REGIONS = {"alpha": ("eu-west", "us-east"), "beta": ("eu-west",)}
MEDIAN_MS = {"alpha": 8000.0, "beta": 5000.0}


def _median(service: str, at: datetime) -> float:
    # beta was slower before the report week: the report must show it got faster
    return 6500.0 if service == "beta" and at < W_START else MEDIAN_MS[service]


def _outcome(service: str, region: str, at: datetime, rng: random.Random) -> str:
    if service == "alpha" and region == "eu-west" and OUTAGE[0] <= at < OUTAGE[1]:
        return "server_error"
    draw, seen = rng.random(), 0.0
    for outcome, share in MIX:
        seen += share
        if draw < seen:
            return outcome
    return "ok"


def _record(service: str, region: str, at: datetime, outcome: str, kind: ProbeKind, rng: random.Random) -> ResultRecord:
    image = outcome in IMAGE
    if image:
        total = rng.lognormvariate(math.log(_median(service, at)), 0.35) * (3 if outcome == "slow" else 1)
    else:
        total = 180_000.0 if outcome == "timeout" else rng.uniform(200, 900)
    quality = None
    if image:
        quality = min(1.0, max(0.0, rng.gauss(0.42, 0.05) if outcome == "degraded_quality" else rng.gauss(0.86, 0.04)))
    version = None
    if image:
        version = ("alpha-2026-10" if at < VERSION_CHANGE else "alpha-2026-11") if service == "alpha" else "beta-v3"
    return ResultRecord(
        service=service, canary="cat", region=region, kind=kind, started_at=at,
        finished_at=at + timedelta(milliseconds=total), outcome=Outcome(outcome),
        latency_ms={"submit": 20.0, "queue": None, "generation": None, "download": None, "total": round(total, 3)},
        quality_score=quality, cost={"alpha": 0.02, "beta": 0.03}[service] if image else 0.0, model_version=version,
    )


def generate() -> list[ResultRecord]:
    rng = random.Random(47)
    records = []
    for s_no, (service, regions) in enumerate(REGIONS.items()):
        for r_no, region in enumerate(regions):
            at = HISTORY[0] + timedelta(minutes=7 * s_no + 11 * r_no, seconds=13 * r_no)
            while at < HISTORY[1]:
                outcome = _outcome(service, region, at, rng)
                records.append(_record(service, region, at, outcome, ProbeKind.CANARY, rng))
                if outcome in DOWN:  # a confirmation run, 20 s later
                    again = _outcome(service, region, at + timedelta(seconds=20), rng)
                    records.append(_record(service, region, at + timedelta(seconds=20), again, ProbeKind.CONFIRMATION, rng))
                if at.minute < 30 and at.hour % 2 == 0:  # health checks: raw rows only, never in a figure
                    records.append(ResultRecord(service=service, canary=None, region=region, kind=ProbeKind.HEALTH,
                                                started_at=at + timedelta(minutes=1), outcome=Outcome.SERVER_ERROR,
                                                latency_ms={"total": 50.0}, cost=0.0))
                at += CADENCE
    return records


def h(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@dataclass(frozen=True)
class Planned:
    key: str
    service: str
    kind: str
    audience: str
    started: datetime
    detected: datetime
    resolved: datetime | None
    regions: tuple[str, ...] = ("eu-west",)
    public_title: str | None = None


INCIDENTS = [
    Planned("alpha-outage", "alpha", "outage", "public", OUTAGE[0], OUTAGE[0] + timedelta(seconds=200),
            OUTAGE[1] + timedelta(minutes=5)),
    # began the evening before the week (CET Sunday 21:00) and ended inside it
    Planned("alpha-slow", "alpha", "latency", "public", W_START - timedelta(hours=3),
            W_START - timedelta(hours=2, minutes=50), W_START + timedelta(hours=2), ("eu-west", "us-east")),
    # two overlapping outages of beta: 08:00-09:00 and 08:30-10:00 are 2 h of downtime, not 2.5 h
    Planned("beta-outage-1", "beta", "outage", "public", h(19, 8), h(19, 8, 2), h(19, 9), public_title="Beta: generations failing"),
    Planned("beta-outage-2", "beta", "outage", "public", h(19, 8, 30), h(19, 8, 31), h(19, 10), ("us-east",)),
    Planned("beta-quality", "beta", "quality", "public", h(21, 6), h(21, 6, 30), None),  # still open at NOW
    Planned("alpha-operator", "alpha", "operator", "operator", h(17, 12), h(17, 12, 5), h(17, 13)),
    Planned("before", "alpha", "outage", "public", h(1, 10), h(1, 10, 5), h(1, 11)),  # a week earlier: not in the report
    Planned("after", "beta", "outage", "public", W_END + timedelta(hours=1), W_END + timedelta(hours=1, minutes=1),
            W_END + timedelta(hours=2)),  # after the week's end, before NOW: not in the report
]


@dataclass
class History:
    url: str
    config: Config
    records: list[ResultRecord]
    ids: dict[str, int]  # incident key -> id

    def report(self, week: str = WEEK, now: datetime = NOW, config: Config | None = None) -> WeeklyReportData:
        engine = make_engine(self.url)
        try:
            with Session(engine) as session:
                return build_report(session, config or self.config, week, now)
        finally:
            engine.dispose()

    @property
    def sqlite_path(self) -> Path | None:
        return Path(self.url.removeprefix("sqlite:///")) if self.url.startswith("sqlite:///") else None


def _write(url: str) -> History:
    config = Config.model_validate(CONFIG)
    engine = make_engine(url)
    upgrade(engine)
    store = ResultStore(engine)
    store.sync_catalog(config)
    records = generate()
    store.record_many(records)
    ids = {}
    with Session(engine) as session, session.begin():
        for p in INCIDENTS:
            row = Incident(service_id=p.service, kind=p.kind, audience=p.audience, impact="major",
                           status="resolved" if p.resolved else "investigating", title=f"{p.key} detected",
                           regions=list(p.regions), started_at=p.started, detected_at=p.detected, resolved_at=p.resolved,
                           source="manual" if p.public_title else "auto", public_title=p.public_title)
            session.add(row)
            session.flush()
            ids[p.key] = row.id
    engine.dispose()
    return History(url, config, records, ids)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def history(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[History]:
    """The same history in SQLite and (when its binaries exist) PostgreSQL: the report's SQL runs on both."""
    if request.param == "postgres":
        with _database(request.getfixturevalue("postgres_url")) as url:
            yield _write(url)
        return
    path = tmp_path_factory.mktemp("reports") / "history.db"
    history = _write(f"sqlite:///{path}")
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # one file: the retention test copies it
    yield history


@pytest.fixture(scope="module")
def report(history: History) -> WeeklyReportData:
    return history.report()


# -- independent figures from the records ---------------------------------------------------------------


def runs(history: History, service: str, start: datetime, end: datetime) -> list[ResultRecord]:
    """The canary runs of a service in [start, end): the samples rollups count (a confirmation run only
    repeats a failure the detector already saw, so it is not an independent sample)."""
    return [r for r in history.records if r.service == service and r.kind is ProbeKind.CANARY
            and start <= r.started_at < end]


def paid_runs(history: History, service: str, start: datetime, end: datetime) -> list[ResultRecord]:
    """The canary and confirmation runs: both cost money."""
    return [r for r in history.records if r.service == service and r.kind is not ProbeKind.HEALTH
            and start <= r.started_at < end]


def exact_availability(rows: list[ResultRecord]) -> float | None:
    counted = [r for r in rows if r.outcome.value not in OPERATOR]
    if not counted:
        return None
    return 100.0 * (1 - sum(r.outcome.value in DOWN for r in counted) / len(counted))


def latencies(rows: list[ResultRecord]) -> list[float]:
    return [r.latency_ms["total"] for r in rows if r.outcome.value in IMAGE and r.latency_ms.get("total") is not None]


def nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def bucket_of(latency_ms: float) -> tuple[float, float]:
    """The latency histogram bucket holding a value, from its documented definition: below 100 ms, then
    [100 * 2**((i-1)/3), 100 * 2**(i/3)) ms."""
    if latency_ms < 100:
        return 0.0, 100.0
    i = math.floor(math.log2(latency_ms / 100) * 3) + 1
    return 100 * 2 ** ((i - 1) / 3), 100 * 2 ** (i / 3)


def assert_same_bucket(reported: float | None, exact: float) -> None:
    """The report reads percentiles from the histogram: it must land in the bucket of the exact value."""
    low, high = bucket_of(exact)
    assert reported is not None
    assert low * (1 - 1e-9) <= reported <= high * (1 + 1e-9), (reported, exact, low, high)


def local_day(moment: datetime) -> date:
    return moment.astimezone(BERLIN).date()


# -- availability, SLO, error budget ---------------------------------------------------------------------


def test_availability_counts_and_slo_match_the_raw_results(history, report):
    assert [s.id for s in report.services] == ["alpha", "beta", "gamma"]
    for line in report.services[:2]:
        rows = runs(history, line.id, W_START, W_END)
        counted = [r for r in rows if r.outcome.value not in OPERATOR]
        assert line.probes == len(rows) > 300
        assert line.counted == len(counted)
        assert line.down == sum(r.outcome.value in DOWN for r in rows) > 0
        assert line.degraded == sum(r.outcome.value in DEGRADED for r in rows)
        assert line.operator_errors == sum(r.outcome.value in OPERATOR for r in rows) > 0
        assert line.availability_pct == pytest.approx(exact_availability(rows))
        assert line.slo_met is (exact_availability(rows) >= line.slo_target_pct)
        assert line.regions == sorted(REGIONS[line.id])
        assert line.safety_blocks == sum(r.outcome.value == "content_filtered" for r in rows) > 0
        assert line.degraded_share_pct == pytest.approx(100 * line.degraded / len(counted))
    alpha, beta, _ = report.services
    assert (alpha.slo_target_pct, alpha.slo_met) == (95, True)  # both branches are exercised
    assert (beta.slo_target_pct, beta.slo_met) == (99.9, False)


def test_the_outage_hour_is_the_worst_hour(history, report):
    hours: dict[tuple[str, datetime], list[ResultRecord]] = defaultdict(list)
    for service in ("alpha", "beta"):
        for r in runs(history, service, W_START, W_END):
            hours[(service, r.started_at.replace(minute=0, second=0, microsecond=0))].append(r)
    ranked = []
    for (service, hour), rows in hours.items():
        counted = [r for r in rows if r.outcome.value not in OPERATOR]
        down = sum(r.outcome.value in DOWN for r in counted)
        if down:
            ranked.append((-down / len(counted), -down, hour, service, down, len(counted)))
    _, _, hour, service, down, counted = min(ranked)
    worst = report.notable.worst_hour
    assert worst is not None
    assert (worst.service, worst.hour_start, worst.down, worst.counted) == (service, hour, down, counted)
    assert worst.service == "alpha" and OUTAGE[0] <= worst.hour_start < OUTAGE[1]


def test_error_budget_is_spent_over_the_30_days_ending_with_the_week(history, report):
    window = (W_END - timedelta(days=30), W_END)  # starts 23:00 UTC: whole days plus hourly edges
    assert report.budget_window_start == window[0]
    for line in report.services[:2]:
        rows = runs(history, line.id, *window)
        counted = [r for r in rows if r.outcome.value not in OPERATOR]
        down_share = sum(r.outcome.value in DOWN for r in counted) / len(counted)
        used = 100 * down_share / (1 - line.slo_target_pct / 100)
        assert line.budget_window_availability_pct == pytest.approx(100 * (1 - down_share))
        assert line.error_budget_used_pct == pytest.approx(used)
        assert line.error_budget_left_pct == pytest.approx(100 - used)
    alpha, beta, _ = report.services
    assert 0 < alpha.error_budget_used_pct < 100 < beta.error_budget_used_pct  # beta overspent: negative left
    assert beta.error_budget_left_pct < 0


def test_a_100_percent_target_has_no_error_budget(history):
    strict = Config.model_validate({**CONFIG, "services": [{**CONFIG["services"][1], "slo": {"availability": 100}}]})
    [beta] = history.report(config=strict).services
    assert beta.error_budget_used_pct is None and beta.error_budget_left_pct is None
    assert beta.slo_met is False and beta.budget_window_availability_pct is not None


def test_previous_week_availability(history, report):
    for line in report.services[:2]:
        assert line.availability_previous_pct == pytest.approx(exact_availability(runs(history, line.id, P_START, W_START)))


# -- latency -----------------------------------------------------------------------------------------------


def test_latency_percentiles_lie_in_the_bucket_of_the_exact_percentile(history, report):
    for line in report.services[:2]:
        values = latencies(runs(history, line.id, W_START, W_END))
        assert len(values) > 300
        assert_same_bucket(line.latency.p50_ms, nearest_rank(values, 0.50))
        assert_same_bucket(line.latency.p95_ms, nearest_rank(values, 0.95))
        assert_same_bucket(line.latency.p99_ms, nearest_rank(values, 0.99))
        before = latencies(runs(history, line.id, P_START, W_START))
        assert_same_bucket(line.latency_previous.p95_ms, nearest_rank(before, 0.95))


def test_latency_change_against_the_previous_week(history, report):
    alpha, beta, gamma = report.services
    change, now_, before = beta.latency_change, beta.latency, beta.latency_previous
    assert change.p50_ms == pytest.approx(now_.p50_ms - before.p50_ms)
    assert change.p95_pct == pytest.approx(100 * (now_.p95_ms - before.p95_ms) / before.p95_ms)
    # beta went from a 6.5 s median to 5 s: about -23 %, well beyond the histogram's resolution
    assert -35 < change.p50_pct < -12
    assert abs(alpha.latency_change.p50_pct) < 12  # alpha did not change
    assert gamma.latency_change.p50_ms is None and gamma.latency.p50_ms is None
    exact = nearest_rank(latencies(runs(history, "alpha", W_START, W_END)), 0.95)
    assert alpha.latency_slo_p95_ms == 20_000 and alpha.latency_slo_met is (exact <= 20_000)


# -- quality and cost --------------------------------------------------------------------------------------


def test_quality_and_cost(history, report):
    for line, per_image in zip(report.services[:2], (0.02, 0.03), strict=True):
        rows = runs(history, line.id, W_START, W_END)
        scores = [r.quality_score for r in rows if r.quality_score is not None]
        assert line.quality_scored == len(scores)
        assert line.quality_mean == pytest.approx(sum(scores) / len(scores))
        assert line.quality_min == pytest.approx(min(scores))
        images = sum(r.outcome.value in IMAGE for r in paid_runs(history, line.id, W_START, W_END))
        successes = sum(r.outcome.value in SUCCESS for r in rows)
        assert line.cost == pytest.approx(per_image * images)
        assert line.successful == successes
        assert line.cost_per_success == pytest.approx(per_image * images / successes)
    alpha, beta, _ = report.services
    assert alpha.quality_slo_met is True and alpha.quality_slo_min == 0.7
    # 30 USD a month per region, a 168-hour week, 2 regions
    assert alpha.cost_budget == pytest.approx(30 * 168 / 720 * 2)
    assert alpha.cost_budget_used_pct == pytest.approx(100 * alpha.cost / alpha.cost_budget)
    assert beta.cost_budget is None and beta.cost_budget_used_pct is None


# -- incidents --------------------------------------------------------------------------------------------


def test_incident_list_durations_and_time_to_detect(history, report):
    by_key = {p.key: p for p in INCIDENTS}
    expected_public = ["alpha-slow", "alpha-outage", "beta-outage-1", "beta-outage-2", "beta-quality"]
    assert [i.id for i in report.incidents] == [history.ids[k] for k in expected_public]
    assert [i.id for i in report.operator_incidents] == [history.ids["alpha-operator"]]
    for row in report.incidents + report.operator_incidents:
        p = by_key[next(k for k, v in history.ids.items() if v == row.id)]
        assert row.time_to_detect_s == (p.detected - p.started).total_seconds()
        if p.resolved is None:
            assert row.resolved_at is None and row.duration_s is None and row.time_to_resolve_s is None
        else:
            assert row.duration_s == (p.resolved - p.started).total_seconds()
            assert row.time_to_resolve_s == (p.resolved - p.detected).total_seconds()
        assert row.regions == sorted(p.regions)
    rows = {next(k for k, v in history.ids.items() if v == i.id): i for i in report.incidents}
    assert rows["alpha-outage"].time_to_detect_s == 200
    assert rows["alpha-outage"].duration_s == 95 * 60
    assert rows["alpha-slow"].in_week_s == 2 * 3600  # only the part after Monday 00:00 local
    assert rows["beta-quality"].in_week_s == (W_END - h(21, 6)).total_seconds()
    assert rows["beta-outage-1"].title == "Beta: generations failing"  # the public title wins
    assert rows["beta-outage-2"].title == "beta-outage-2 detected"


def test_incident_figures_per_service(report):
    alpha, beta, gamma = report.services
    assert alpha.incidents == 2  # the operator incident is not counted
    assert alpha.downtime_s == 95 * 60  # outages only: the latency incident is no downtime
    assert alpha.longest_incident_s == 5 * 3600  # the latency incident, whole (it began before the week)
    assert beta.incidents == 3
    assert beta.downtime_s == 2 * 3600  # overlapping outages merged
    assert beta.longest_incident_s == (NOW - h(21, 6)).total_seconds()  # the open one, up to the report's now
    assert beta.drift_events == 1 and alpha.drift_events == 0
    assert (gamma.incidents, gamma.downtime_s, gamma.longest_incident_s) == (0, 0, None)


# -- groups, comparison, daily figures, notable ---------------------------------------------------------


def test_groups_and_the_provider_comparison(history, report):
    [text, upscaling] = report.groups
    assert (text.group, text.services, upscaling.group, upscaling.services) == (
        "Text to image", ["alpha", "beta"], "Upscaling", ["gamma"])
    rows = runs(history, "alpha", W_START, W_END) + runs(history, "beta", W_START, W_END)
    assert text.availability_pct == pytest.approx(exact_availability(rows))
    assert (text.slo_met, text.slo_missed, upscaling.slo_met, upscaling.slo_missed) == (1, 1, 0, 0)
    assert text.incidents == 5 and text.downtime_s == 95 * 60 + 2 * 3600
    [comparison] = report.comparisons  # a group of one is not compared
    by_availability = sorted(report.services[:2], key=lambda s: -s.availability_pct)
    assert [r.service for r in comparison.rows] == [s.id for s in by_availability]
    for row in comparison.rows:
        line = next(s for s in report.services if s.id == row.service)
        assert (row.availability_pct, row.latency_p95_ms, row.cost_per_success) == (
            line.availability_pct, line.latency.p95_ms, line.cost_per_success)


def test_daily_figures_follow_local_days(history, report):
    days = [date(2026, 11, 16) + timedelta(days=i) for i in range(7)]
    for service in ("alpha", "beta"):
        daily = report.daily[service]
        assert [d.day for d in daily] == days
        rows = runs(history, service, W_START, W_END)
        for figures in daily:
            of_day = [r for r in rows if local_day(r.started_at) == figures.day]
            assert figures.probes == len(of_day)
            assert figures.availability_pct == pytest.approx(exact_availability(of_day))
            assert_same_bucket(figures.latency.p50_ms, nearest_rank(latencies(of_day), 0.5))
            scores = [r.quality_score for r in of_day if r.quality_score is not None]
            assert figures.quality_mean == pytest.approx(sum(scores) / len(scores))
        assert sum(d.probes for d in daily) == report.services[0 if service == "alpha" else 1].probes
    outage_day = report.daily["alpha"][2]  # Wednesday 18 Nov
    assert outage_day.availability_pct == min(d.availability_pct for d in report.daily["alpha"])
    assert all(d.probes == 0 and d.availability_pct is None for d in report.daily["gamma"])


def test_model_versions_from_the_raw_results(history, report):
    notable = report.notable
    assert notable.model_versions_known
    [change] = notable.model_versions
    first = min(r.started_at for r in runs(history, "alpha", W_START, W_END) if r.model_version == "alpha-2026-11")
    assert (change.service, change.version, change.previous, change.first_seen) == (
        "alpha", "alpha-2026-11", "alpha-2026-10", first)
    assert notable.budget_overruns_avoided == [] and not notable.budget_overruns_recorded
    assert any("not recorded" in note for note in notable.notes)
    assert report.complete


# -- other weeks -----------------------------------------------------------------------------------------


def test_the_week_summer_time_ends(history):
    """2026-W43 in Berlin is 169 hours long; its Sunday is a 25-hour local day."""
    dst = history.report("2026-W43")
    start, end = datetime(2026, 10, 18, 22, tzinfo=UTC), datetime(2026, 10, 25, 23, tzinfo=UTC)
    assert (dst.start, dst.end) == (start, end)
    alpha = dst.services[0]
    rows = runs(history, "alpha", start, end)
    assert alpha.probes == len(rows) and alpha.availability_pct == pytest.approx(exact_availability(rows))
    sunday = dst.daily["alpha"][6]
    assert (sunday.day, sunday.end - sunday.start) == (date(2026, 10, 25), timedelta(hours=25))
    assert sunday.probes == sum(1 for r in rows if local_day(r.started_at) == date(2026, 10, 25))
    assert sum(d.probes for d in dst.daily["alpha"]) == alpha.probes
    validate(to_json(dst))


def test_a_week_without_data(history):
    empty = history.report("2026-W30")
    for line in empty.services:
        assert (line.probes, line.availability_pct, line.slo_met, line.error_budget_used_pct) == (0, None, None, None)
        assert line.latency.p95_ms is None and line.quality_mean is None and line.cost == 0
        assert line.cost_budget is None  # no region probed
    assert empty.incidents == [] and empty.operator_incidents == [] and empty.notable.worst_hour is None
    assert not empty.notable.model_versions_known  # retention has deleted that week's raw results
    assert [len(days) for days in empty.daily.values()] == [7, 7, 7]
    validate(to_json(empty))


def test_a_week_in_progress_is_partial_and_a_future_week_is_refused(history):
    partial = history.report("2026-W48")
    assert not partial.complete and any("not over" in note for note in partial.notable.notes)
    assert partial.services[0].probes == len(runs(history, "alpha", W_END, NOW))
    with pytest.raises(ValueError):
        history.report("2026-W49")


@pytest.mark.parametrize("history", ["sqlite"], indirect=True)  # it works on a copy of the SQLite file
def test_an_old_week_is_reported_from_rollups_once_raw_results_are_gone(history, tmp_path, report):
    """Retention deletes the raw results; every figure but the model versions stays the same."""
    assert history.sqlite_path is not None
    copy = tmp_path / "old.db"
    shutil.copy(history.sqlite_path, copy)
    later = NOW + timedelta(days=70)
    engine = make_engine(f"sqlite:///{copy}")
    deleted = run_retention(engine, RetentionSettings(), later)
    engine.dispose()
    assert deleted["probe_results"] == len(history.records)
    old = History(f"sqlite:///{copy}", history.config, [], {}).report(now=later)
    assert not old.notable.model_versions_known and old.notable.model_versions == []
    for before, after in zip(report.services, old.services, strict=True):
        assert (after.availability_pct, after.latency, after.error_budget_used_pct, after.quality_mean, after.cost) == (
            before.availability_pct, before.latency, before.error_budget_used_pct, before.quality_mean, before.cost)
    assert old.daily == report.daily


# -- the JSON ----------------------------------------------------------------------------------------------


def validate(document: dict) -> None:
    jsonschema.Draft202012Validator.check_schema(JSON_SCHEMA)
    validator = jsonschema.Draft202012Validator(JSON_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    validator.validate(document)


def test_the_json_validates_and_is_stable(history, report):
    document = to_json(report)
    validate(document)
    assert document["schema"] == SCHEMA_ID == "genstatus.weekly-report/v1"
    assert (document["week"], document["start"], document["end"]) == (WEEK, "2026-11-15T23:00:00Z", "2026-11-22T23:00:00Z")
    again = to_json(history.report())
    assert json.dumps(again, sort_keys=True) == json.dumps(document, sort_keys=True)  # same input, same output
    assert json.loads(json.dumps(document)) == document  # plain JSON types only
    assert to_json(from_json(document)) == document
    alpha = document["services"][0]
    assert alpha["availability_pct"] == round(report.services[0].availability_pct, 6)
    assert document["daily"]["alpha"][0]["day"] == "2026-11-16"


def test_the_schema_refuses_what_is_not_a_report(report):
    document = to_json(report)
    broken = json.loads(json.dumps(document))
    del broken["services"][0]["availability_pct"]
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    wrong = json.loads(json.dumps(document))
    wrong["incidents"][0]["started_at"] = "2026-11-18 10:00"
    with pytest.raises(jsonschema.ValidationError):
        validate(wrong)
    with pytest.raises(ValueError):
        from_json({**document, "schema": "genstatus.weekly-report/v0"})
