"""The report benchmark keeps working: tiny 1-, 5- and 7-week databases, the older weeks really added,
the same week's figures read from both, and a ratio with a verdict."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import timedelta

from benchmarks.bench_reports import QUICK, figures, make_long, make_short
from benchmarks.bench_reports import run_benchmark as bench
from benchmarks.sitegen import SiteSpec

TINY = SiteSpec(services=3, regions=2, days=7.25, cadence=timedelta(minutes=30), raw_days=7.25, seed=3)


def _one(path, sql: str):
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(sql).fetchone()


def test_the_long_database_holds_older_weeks_of_rollups_and_incidents(tmp_path):
    short, _ = make_short(tmp_path / "short.db", TINY)
    long = make_long(short, tmp_path / "long.db", 4)
    week_rows = _one(short.path, "SELECT count(*) FROM rollup_hourly WHERE bucket_start < '2026-03-02'")[0]
    assert long.rows["rollup_hourly"] == short.rows["rollup_hourly"] + 3 * week_rows
    oldest = _one(long.path, "SELECT min(bucket_start) FROM rollup_hourly")[0]
    assert oldest == "2026-02-02 00:00:00.000000"  # three weeks before the report week's Monday
    assert _one(long.path, "SELECT count(*) FROM incidents WHERE resolved_at IS NULL")[0] == \
        _one(short.path, "SELECT count(*) FROM incidents WHERE resolved_at IS NULL")[0]  # old copies are resolved
    # the raw rows of the week before keep their microseconds and model versions
    assert _one(long.path, "SELECT count(*) FROM probe_results WHERE started_at < '2026-02-23' "
                           "AND model_version IS NOT NULL AND length(started_at) = 26")[0] > 0


def test_a_tiny_run_times_both_and_gives_a_verdict():
    result = bench(TINY, weeks=7, repeats=2)
    assert len(result.short.times) == len(result.long.times) == 2
    rows = figures(result)
    assert [r["unit"] for r in rows] == ["ms (median)"] * 4 + ["x", "x"]
    assert all(r["value"] > 0 for r in rows)
    assert all("PASS" in r["note"] or "FAIL" in r["note"] for r in rows[-2:])
    long_report = result.reports[result.long.label]
    assert long_report.services[0].availability_previous_pct is not None  # the older weeks were read
    assert result.reports[result.short.label].services[0].availability_previous_pct is None
    assert QUICK.services < 10  # the quick mode stays small
