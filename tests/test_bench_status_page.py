"""The status-page benchmark keeps working: its generated history is what production would hold, and a
tiny run measures every endpoint, the static twin and both modes through both transports."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from benchmarks.bench_status_page import ENDPOINTS, STATIC_TARGETS, figures, ours, run_benchmark
from benchmarks.sitegen import RAW_COLUMNS, SiteSpec, bucket_indexes, generate
from monitor.enums import Outcome, ProbeKind
from monitor.store.db import make_engine
from monitor.store.histogram import UPPER_BOUNDS_MS, bucket_index
from monitor.store.migrate import upgrade
from monitor.store.record import ResultRecord
from monitor.store.results import ResultStore

TINY = SiteSpec(services=3, regions=2, days=3, cadence=timedelta(minutes=10), raw_days=1, open_incidents=2, seed=5)
NOW = datetime(2026, 3, 4, 15, 30, tzinfo=UTC)


def _rows(path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(path) as connection:
        return connection.execute(sql, args).fetchall()


def test_histogram_buckets_are_the_stores():
    edges = [0.0, 99.9, *UPPER_BOUNDS_MS, *(b - 1e-6 for b in UPPER_BOUNDS_MS), 9e9]
    assert bucket_indexes(np.array(edges)).tolist() == [bucket_index(v) for v in edges]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("site") / "site.db", TINY, now=NOW)


def test_rollups_count_every_run_and_raw_rows_stop_at_the_raw_window(site):
    [(daily,)] = _rows(site.path, "SELECT sum(n_total) FROM rollup_daily")
    [(hourly,)] = _rows(site.path, "SELECT sum(n_total) FROM rollup_hourly")
    assert daily == hourly == site.runs > 3 * 2 * 3 * 144 * 0.99  # every scheduled run of 3 days, plus confirmations
    [(oldest, count)] = _rows(site.path, "SELECT min(started_at), count(*) FROM probe_results")
    assert count == site.rows["probe_results"] < site.runs / 2  # older days are rollups only
    assert oldest >= (NOW - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    assert _rows(site.path, "SELECT min(bucket_start) FROM rollup_daily")[0][0] == "2026-03-01 00:00:00.000000"
    open_public = _rows(site.path, "SELECT count(*) FROM incidents WHERE resolved_at IS NULL AND audience = 'public'")
    assert open_public == [(2,)]
    assert _rows(site.path, "SELECT count(*) FROM result_images")[0][0] == 3 * 2 * 12  # 12 per (service, canary)


def test_hourly_rollups_equal_what_the_store_makes_of_the_raw_rows(site, tmp_path):
    """Written again through ``ResultStore`` (the production rollup statements), the raw rows of an hour
    give the generated rollup row, every column."""
    columns = ", ".join(RAW_COLUMNS)
    rows = _rows(site.path, f"SELECT {columns} FROM probe_results WHERE started_at >= ? ORDER BY id",
                 (NOW - timedelta(hours=6)).strftime("%Y-%m-%d %H:00:00"))
    assert len(rows) > 100
    engine = make_engine(f"sqlite:///{tmp_path / 'again.db'}")
    upgrade(engine)
    store = ResultStore(engine)
    store.sync_catalog(site.config)

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    records = []
    for row in rows:
        r = dict(zip(RAW_COLUMNS, row, strict=True))
        records.append(ResultRecord(
            service=r["service_id"], canary=r["canary_id"], region=r["region"], kind=ProbeKind(r["kind"]),
            started_at=at(r["started_at"]), finished_at=at(r["finished_at"]), outcome=Outcome(r["outcome"]),
            latency_ms={"total": r["total_ms"]}, quality_score=r["quality_score"], cost=r["cost"]))
    store.record_many(records)
    engine.dispose()
    hour = (NOW - timedelta(hours=2)).strftime("%Y-%m-%d %H:00:00.000000")
    query = "SELECT * FROM rollup_hourly WHERE bucket_start = ? ORDER BY service_id, region"
    generated, stored = _rows(site.path, query, hour), _rows(tmp_path / "again.db", query, hour)
    assert len(generated) == 3 * 2
    assert [[pytest.approx(v) if isinstance(v, float) else v for v in row] for row in generated] == [list(row) for row in stored]


def test_the_same_seed_makes_the_same_site(site, tmp_path):
    again = generate(tmp_path / "again.db", TINY, now=NOW)
    query = "SELECT * FROM rollup_daily ORDER BY service_id, region, bucket_start"
    assert _rows(again.path, query) == _rows(site.path, query)
    incidents = "SELECT service_id, kind, impact, audience, started_at, resolved_at FROM incidents ORDER BY id"
    assert _rows(again.path, incidents) == _rows(site.path, incidents)


def test_a_tiny_run_measures_every_endpoint_against_one_day_and_the_static_file():
    spec = SiteSpec(services=3, regions=2, days=3, cadence=timedelta(minutes=30), seed=3)
    report = run_benchmark(spec, requests=2, warmup=1, profile=2)
    measured = [name for name in ENDPOINTS if name not in report.missing]
    assert {"index", "service"} <= set(measured)  # only the summary route may not exist (yet)
    for case in report.cases:
        assert not case.failures, case.failures
        assert {key: len(times) for key, times in case.times.items()} == {
            (transport, mode): 2 for transport in ("client", "http") for mode in ("cold", "live", "warm")}
    assert sorted(c.label for c in report.cases) == sorted(
        [f"{name} {days}" for name in measured for days in ("3d", "1d")] + [f"static {name}" for name in measured])
    for name in measured:  # each static twin has its endpoint's size, and is compressed alike
        copy, endpoint = report.weights[f"static {name}"], report.weights[name]
        assert copy.bytes == endpoint.bytes > 0 and copy.served_encoding == endpoint.served_encoding
    # cold and live requests stored a new result first: one per request to a database (warm-up included), plus the profile's
    per_site = len(measured) * (1 + 2) * 2 * 2  # cases x rounds x transports x the two modes that write
    assert report.writes == {"3d": per_site + 2, "1d": per_site}
    assert any(ours(where) and "index" in where for where, *_ in report.profile)
    rows = figures(report)
    for name in measured:
        for where in (f"{t}, {m}" for t in ("test client", "HTTP") for m in ("cold", "live", "warm")):
            row = next(r for r in rows if r["name"] == f"{name} 3d ({where})")
            assert row["value"] > 0 and ("PASS" in row["note"] or "FAIL" in row["note"])
            against = next(r for r in rows if r["name"] == f"{name} 3d / static twin ({where})")
            assert against["value"] > 0 and ("PASS" in against["note"] or "FAIL" in against["note"]) == (name in STATIC_TARGETS)
    assert any(row["name"] == "page weight / (3d)" and row["value"] > 0 for row in rows)
