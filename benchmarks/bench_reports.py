"""Weekly report time: a database holding 1 week of history against one holding 90 weeks.

The report week is simulated run by run by ``benchmarks.sitegen`` (by default 50 services x 3 regions
at a 1-minute cadence: ~1.5 M runs, with confirmation runs, incidents and raw rows for the week; the
raw rows get model versions, changed mid-week).  That is the 1-week database.  The longer ones are
copies of it with older weeks added the way production keeps them: the week's hourly and daily
rollups and its incidents copied 1..N-1 weeks back (rollups are kept forever), and raw results for
the week before the report week only (retention keeps ~30 days; ``build_report`` reads raw rows of
the report week and, per service, the newest one before it).  Copying in SQL keeps the generation to
about a minute.  Besides 1 and 90 weeks, a 5-week database: the least history in which every window
a report reads (the week, the week before, the 30-day error-budget window) is full.

Timed: ``monitor.reports.figures.build_report`` for the week, each in a new session, the databases in
turn, after one untimed run each; the figure is the median.  Target: 90-week time <= 1.3 x the 1-week
time (the 1-week report has no previous week or 30-day window to read, so part of the difference is
that); the 90-week / 5-week ratio shows what older history itself costs.  The reports must agree on
the week's own figures (availability, percentiles, incidents begun in it): a check that the larger
databases were read for the same week.

    python -m benchmarks.bench_reports            # the full size (~1.5 min)
    python -m benchmarks.bench_reports --quick
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from benchmarks.sitegen import SiteSpec, generate
from monitor.config import Config
from monitor.enums import IMAGE_OUTCOMES
from monitor.reports.figures import build_report, model_version_changes
from monitor.reports.model import WeeklyReportData
from monitor.reports.weeks import last_completed_week
from monitor.store.db import make_engine
from monitor.store.models import rollup_daily, rollup_hourly

#: Monday 06:00 UTC: the report week is the ISO week that ended 6 hours before
NOW = datetime(2026, 3, 2, 6, tzinfo=UTC)
TARGET_RATIO = 1.3
#: the smallest history holding every window a report reads (the week, the one before, 30 days)
MIDDLE_WEEKS = 5
FULL = SiteSpec(services=50, regions=3, days=7.25, cadence=timedelta(minutes=1), raw_days=7.25, seed=47)
QUICK = SiteSpec(services=5, regions=2, days=7.25, cadence=timedelta(minutes=10), raw_days=7.25, seed=47)
_STAMP = "%Y-%m-%d %H:%M:%S.%f"


@dataclass
class Database:
    label: str
    path: Path
    weeks: int
    seconds: float = 0.0  # to make
    rows: dict[str, int] = field(default_factory=dict)
    megabytes: float = 0.0
    times: list[float] = field(default_factory=list)
    version_times: list[float] = field(default_factory=list)  # the raw-row scan for model versions alone

    def measure(self) -> None:
        self.rows = _counts(self.path)
        self.megabytes = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*")) / 1e6


@dataclass
class Result:
    week: str
    short: Database
    middle: Database  # just enough history for every window a report reads
    long: Database
    reports: dict[str, WeeklyReportData]

    @property
    def ratio(self) -> float:
        """The target: the long database against the 1-week one."""
        return statistics.median(self.long.times) / statistics.median(self.short.times)

    @property
    def growth(self) -> float:
        """The long database against the one that already holds every window a report reads."""
        return statistics.median(self.long.times) / statistics.median(self.middle.times)


def make_short(path: Path, spec: SiteSpec) -> tuple[Database, Config]:
    """The report week (and the 6 hours after it) as sitegen simulates it; model versions on its raw rows."""
    began = time.perf_counter()
    site = generate(path, spec, now=NOW)
    week_start, _ = last_completed_week(NOW, "UTC").bounds("UTC")
    middle = (week_start + timedelta(days=3, hours=12)).strftime(_STAMP)
    images = ", ".join(f"'{o.value}'" for o in sorted(IMAGE_OUTCOMES))
    with closing(sqlite3.connect(path)) as connection:
        with connection:
            connection.execute(  # each service names its model; every one ships a new build mid-week
                "UPDATE probe_results SET model_version = 'model-' || service_id || "
                f"CASE WHEN started_at < ? THEN '-2026.02' ELSE '-2026.03' END WHERE outcome IN ({images})", (middle,))
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all in the main file: make_long copies it
    database = Database("1 week", path, 1, time.perf_counter() - began)
    database.measure()
    return database, site.config


def make_long(short: Database, path: Path, weeks: int) -> Database:
    """A copy of ``short`` with ``weeks - 1`` older weeks: its rollups and incidents shifted back week by
    week, and the report week's raw rows shifted back one week (as the previous week's)."""
    began = time.perf_counter()
    shutil.copy(short.path, path)
    start, end = (moment.strftime(_STAMP) for moment in last_completed_week(NOW, "UTC").bounds("UTC"))

    def in_week(column: str) -> str:  # the report week's rows only (not the hours after it)
        return f"{column} >= '{start}' AND {column} < '{end}'"

    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-262144", "foreign_keys=OFF"):
            connection.execute(f"PRAGMA {pragma}")
        connection.execute("BEGIN")
        for table in (rollup_hourly, rollup_daily):
            columns = [c.name for c in table.columns]
            shifted = [f"{_shift('bucket_start', 'w.n')}" if c == "bucket_start" else f"r.{c}" for c in columns]
            connection.execute(
                f"WITH RECURSIVE w(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM w WHERE n < {weeks - 1}) "
                f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {', '.join(shifted)} FROM {table.name} AS r, w "
                f"WHERE {in_week('r.bucket_start')}")
        incident_columns = [name for (_, name, *_) in connection.execute("PRAGMA table_info(incidents)") if name != "id"]
        moved = {"started_at", "detected_at", "created_at", "updated_at", "postmortem_at"}
        values = [_shift(f"r.{c}", "w.n") if c in moved else f"r.{c}" for c in incident_columns]
        values[incident_columns.index("resolved_at")] = (  # older copies of open incidents are resolved
            f"COALESCE({_shift('r.resolved_at', 'w.n')}, {_shift('r.started_at', 'w.n', '+1 hours')})")
        connection.execute(
            f"WITH RECURSIVE w(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM w WHERE n < {weeks - 1}) "
            f"INSERT INTO incidents ({', '.join(incident_columns)}) SELECT {', '.join(values)} FROM incidents AS r, w "
            f"WHERE {in_week('r.started_at')}")
        raw_columns = [name for (_, name, *_) in connection.execute("PRAGMA table_info(probe_results)") if name != "id"]
        raw_values = [_shift(f"r.{c}", "1") if c in ("started_at", "finished_at") else f"r.{c}" for c in raw_columns]
        connection.execute(f"INSERT INTO probe_results ({', '.join(raw_columns)}) "
                           f"SELECT {', '.join(raw_values)} FROM probe_results AS r "
                           f"WHERE {in_week('r.started_at')} ORDER BY r.id")
        connection.execute("COMMIT")
        connection.execute("PRAGMA journal_mode=WAL")
    database = Database(f"{weeks} weeks", path, weeks, time.perf_counter() - began)
    database.measure()
    return database


def _shift(column: str, weeks: str, extra: str = "") -> str:
    """SQL moving a stored UTC timestamp (``YYYY-MM-DD HH:MM:SS.ffffff``) back ``weeks`` weeks, keeping its
    fraction of a second (SQLite's date functions drop the microseconds)."""
    modifier = f"'-' || (({weeks}) * 7) || ' days'"
    tail = f", '{extra}'" if extra else ""
    return (f"CASE WHEN {column} IS NULL THEN NULL ELSE "
            f"strftime('%Y-%m-%d %H:%M:%S', {column}, {modifier}{tail}) || substr({column}, 20) END")


def _counts(path: Path) -> dict[str, int]:
    with closing(sqlite3.connect(path)) as connection:
        return {table: int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                for table in ("probe_results", "rollup_hourly", "rollup_daily", "incidents")}


def _time_report(database: Database, config: Config, week: str) -> tuple[float, WeeklyReportData]:
    engine = make_engine(f"sqlite:///{database.path}")
    try:
        began = time.perf_counter()
        with Session(engine) as session:
            report = build_report(session, config, week, NOW)
        return time.perf_counter() - began, report
    finally:
        engine.dispose()


def _time_versions(database: Database, config: Config, week: str) -> float:
    """The part of a report that reads raw rows: model versions of the week (one scan of its raw rows)."""
    start, end = last_completed_week(NOW, "UTC").bounds("UTC")
    assert str(last_completed_week(NOW, "UTC")) == week
    engine = make_engine(f"sqlite:///{database.path}")
    try:
        began = time.perf_counter()
        with Session(engine) as session:
            model_version_changes(session, start - timedelta(days=7), start, end, {s.id for s in config.services})
        return time.perf_counter() - began
    finally:
        engine.dispose()


def run_benchmark(spec: SiteSpec = FULL, weeks: int = 90, repeats: int = 7, workdir: Path | None = None,
                  log: Any = None) -> Result:
    say = log or (lambda _message: None)
    week = str(last_completed_week(NOW, "UTC"))
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        root = Path(workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        say(f"simulating {week}: {spec.services} services x {spec.regions} regions at "
            f"{spec.cadence.total_seconds() / 60:g}-minute cadence ...")
        short, config = make_short(root / "reports-1w.db", spec)
        say(f"  1 week: {short.rows} in {short.seconds:.1f} s")
        middle = make_long(short, root / f"reports-{MIDDLE_WEEKS}w.db", MIDDLE_WEEKS)
        long = make_long(short, root / f"reports-{weeks}w.db", weeks)
        for database in (middle, long):
            say(f"  {database.label}: {database.rows} in {database.seconds:.1f} s, {database.megabytes:,.0f} MB")
        databases = (short, middle, long)
        reports = {}
        for database in databases:  # warm-up: the first open of a file pays for the OS cache
            _, reports[database.label] = _time_report(database, config, week)
        for _ in range(repeats):
            for database in databases:
                seconds, _ = _time_report(database, config, week)
                database.times.append(seconds)
        for _ in range(max(1, repeats // 2)):
            for database in databases:
                database.version_times.append(_time_versions(database, config, week))
        for database in (middle, long):
            _same_week(reports[short.label], reports[database.label])
        if reports[middle.label].services != reports[long.label].services:
            raise AssertionError(f"{middle.label} already hold every window a report reads: the service lines must be equal")
        return Result(week, short, middle, long, reports)


def _same_week(short: WeeklyReportData, long: WeeklyReportData) -> None:
    """Both databases hold the same report week: its figures from the rollups must be equal, and so must
    the incidents that began in it (the long one also has copies of last week's reaching into it)."""
    for a, b in zip(short.services, long.services, strict=True):
        if (a.probes, a.down, a.availability_pct, a.latency, a.quality_mean, a.cost, a.safety_blocks) != (
                b.probes, b.down, b.availability_pct, b.latency, b.quality_mean, b.cost, b.safety_blocks):
            raise AssertionError(f"{a.id}: the two databases disagree on the report week")

    def began(report: WeeklyReportData) -> list[tuple[str | None, datetime]]:
        return [(i.service, i.started_at) for i in report.incidents + report.operator_incidents if i.started_at >= report.start]

    if began(short) != began(long):
        raise AssertionError("the two databases disagree on the week's incidents")
    if short.daily != long.daily or short.notable.worst_hour != long.notable.worst_hour:
        raise AssertionError("the two databases disagree on the week's daily figures or worst hour")


def figures(result: Result) -> list[dict[str, Any]]:
    short, middle, long = result.short, result.middle, result.long
    services = len(result.reports[short.label].services)
    changes = [len(result.reports[d.label].notable.model_versions) for d in (short, long)]

    def ms(values: list[float]) -> float:
        return round(1000 * statistics.median(values), 1)

    def rest(database: Database) -> str:
        return f"{ms(database.times) - ms(database.version_times):,.0f} ms"

    def verdict(ratio: float) -> str:
        return f"{'PASS' if ratio <= TARGET_RATIO else 'FAIL'} (target <= {TARGET_RATIO})"

    return [
        {"name": f"report {result.week}, {short.label} of history", "value": ms(short.times), "unit": "ms (median)",
         "note": f"{services} services; {short.rows['rollup_hourly']:,} hourly rollups, {short.rows['probe_results']:,} "
                 f"raw rows; no previous week or 30-day window to read"},
        {"name": f"report {result.week}, {middle.label} of history", "value": ms(middle.times), "unit": "ms (median)",
         "note": "every window a report reads is full from here on"},
        {"name": f"report {result.week}, {long.label} of history", "value": ms(long.times), "unit": "ms (median)",
         "note": f"{long.rows['rollup_hourly']:,} hourly rollups, {long.rows['incidents']:,} incidents, "
                 f"{long.rows['probe_results']:,} raw rows, {long.megabytes:,.0f} MB"},
        {"name": f"of which model versions (raw rows), {long.label}", "value": ms(long.version_times), "unit": "ms (median)",
         "note": f"one scan of the week's raw rows (no index on model_version); the rest (rollups, incidents): "
                 f"{rest(short)} / {rest(middle)} / {rest(long)} at {short.label} / {middle.label} / {long.label}"},
        {"name": f"{long.label} / {short.label}", "value": round(result.ratio, 2), "unit": "x",
         "note": f"{verdict(result.ratio)}; model version changes found: {changes[0]} and {changes[1]} "
                 "(the 1-week database has no earlier raw rows to compare with)"},
        {"name": f"{long.label} / {middle.label}", "value": round(result.growth, 2), "unit": "x",
         "note": f"{verdict(result.growth)}: older history beyond the windows read costs nothing"},
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    if quick:
        return figures(run_benchmark(QUICK, weeks=10, repeats=3))
    return figures(run_benchmark(FULL, weeks=90, repeats=7))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_reports", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 services x 2 regions, 10-minute cadence, 10 weeks")
    parser.add_argument("--weeks", type=int, default=None, help="weeks in the long database (default 90; quick: 10)")
    parser.add_argument("--repeats", type=int, default=None, help="timed reports per database (default 7; quick: 3)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the databases here (default: a temporary directory)")
    args = parser.parse_args(argv)
    spec = QUICK if args.quick else FULL
    weeks = args.weeks or (10 if args.quick else 90)
    repeats = args.repeats or (3 if args.quick else 7)
    result = run_benchmark(spec, weeks, repeats, args.workdir, log=print)
    for row in figures(result):
        print(f"{row['name']}: {row['value']} {row['unit']}  {row['note']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
