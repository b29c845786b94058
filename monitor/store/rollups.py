"""Hourly and daily rollups: one ``INSERT ... ON CONFLICT DO UPDATE`` per table, increments only.

No read-modify-write, so any number of agents can write one PostgreSQL concurrently and the
counts stay exact.  Each rollup table has one statement, the same text on SQLite and PostgreSQL,
binding nine values per result (``rollup_upsert``); pages and reports read these tables, never
the raw rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Executable, Float, Integer, String, Table, TextClause, bindparam, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
from sqlalchemy.dialects.sqlite import Insert as SQLiteInsert

from monitor.enums import IMAGE_OUTCOMES, Outcome, ProbeKind
from monitor.store.histogram import COLUMN_NAMES as HISTOGRAM_COLUMNS
from monitor.store.histogram import bucket_index
from monitor.store.models import rollup_daily, rollup_hourly
from monitor.store.record import ResultRecord

#: Health checks are stored raw only; availability and latency come from real generations.
ROLLUP_KINDS = frozenset({ProbeKind.CANARY, ProbeKind.CONFIRMATION})
#: The kinds counted as samples.  A confirmation run is an extra run the detector asks for *because*
#: a run failed, so counting it would weigh every failure several times over: it adds its cost only.
SAMPLE_KINDS = frozenset({ProbeKind.CANARY})
ROLLUP_KEY = ("service_id", "region", "bucket_start")
SUMMED = (
    "n_total", *(f"n_{o.value}" for o in Outcome), "latency_count", "latency_sum_ms",
    *HISTOGRAM_COLUMNS, "quality_count", "quality_sum", "cost_sum",
)


def _hour(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _day(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


ROLLUPS: tuple[tuple[Table, Callable[[datetime], datetime]], ...] = ((rollup_hourly, _hour), (rollup_daily, _day))

#: A rollup statement and the function flooring a result's start to its bucket (see ``default_rollups``).
RollupStatement = tuple[Executable, Callable[[datetime], datetime]]

def default_rollups() -> list[RollupStatement]:
    """The statements ``ResultStore`` runs per batch after the raw rows: one upsert per rollup table."""
    return [(rollup_upsert(table), floor) for table, floor in ROLLUPS]


def rollup_event(result: ResultRecord, floor: Callable[[datetime], datetime]) -> dict[str, Any]:
    """The parameters of the rollup upsert for one result; the increments are computed in SQL."""
    total = (result.latency_ms or {}).get("total")
    sample = result.kind in SAMPLE_KINDS
    timed = sample and total is not None and result.outcome in IMAGE_OUTCOMES
    return {
        "service_id": result.service,
        "region": result.region,
        "bucket_start": floor(result.started_at),
        "outcome": str(result.outcome),
        "sample": 1 if sample else 0,
        "latency": float(total) if timed and total is not None else None,
        "bucket": bucket_index(total) if timed and total is not None else None,
        "quality": None if result.quality_score is None or not sample else float(result.quality_score),
        "cost": float(result.cost or 0.0),
    }


def rollup_events(results: Iterable[ResultRecord], floor: Callable[[datetime], datetime]) -> list[dict[str, Any]]:
    """Events of the results that roll up, sorted by row key (a fixed lock order for concurrent writers)."""
    events = [rollup_event(r, floor) for r in results if r.kind in ROLLUP_KINDS]
    events.sort(key=lambda e: (e["service_id"], e["region"], e["bucket_start"]))
    return events


def dialect_insert(table: Table, dialect_name: str) -> PostgresInsert | SQLiteInsert:
    """An INSERT that supports ``on_conflict_do_update`` (SQLite and PostgreSQL)."""
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect {dialect_name!r} (use SQLite or PostgreSQL)")


def _keep(op: str, column: str, table: str) -> str:
    """SQL keeping the smaller (``<``) or larger (``>``) non-NULL of the stored and new value."""
    old, new = f"{table}.{column}", f"excluded.{column}"
    return f"CASE WHEN {new} IS NULL THEN {old} WHEN {old} IS NULL OR {new} {op} {old} THEN {new} ELSE {old} END"


def rollup_upsert(table: Table) -> TextClause:
    """The upsert adding one result (a ``rollup_event``) to a rollup row; the same SQL for SQLite and PostgreSQL.

    It binds nine parameters, each once (in the derived table ``e``), and derives the ~80
    increments (outcome counters, histogram bucket, ...) from them with CASE expressions.
    Plain text on purpose: a Core statement this wide costs ~40 us per execution just to
    hash its cache key, more than the insert itself.  (SQLite needs the ``WHERE`` to parse
    ``INSERT ... SELECT ... ON CONFLICT``.)
    """
    name = table.name
    values = {
        "service_id": "e.service_id",
        "region": "e.region",
        "bucket_start": "e.bucket_start",
        "n_total": "e.sample",
        **{f"n_{o.value}": f"CASE WHEN e.outcome = '{o.value}' THEN e.sample ELSE 0 END" for o in Outcome},
        "latency_count": "CASE WHEN e.latency IS NULL THEN 0 ELSE 1 END",
        "latency_sum_ms": "COALESCE(e.latency, 0.0)",
        "latency_max_ms": "e.latency",
        **{column: f"CASE WHEN e.bucket = {i} THEN 1 ELSE 0 END" for i, column in enumerate(HISTOGRAM_COLUMNS)},
        "quality_count": "CASE WHEN e.quality IS NULL THEN 0 ELSE 1 END",
        "quality_sum": "COALESCE(e.quality, 0.0)",
        "quality_min": "e.quality",
        "cost_sum": "e.cost",
    }
    assert set(values) == {c.name for c in table.columns}, "rollup columns changed: update rollup_upsert"
    event = (
        "SELECT CAST(:service_id AS VARCHAR(64)) AS service_id, CAST(:region AS VARCHAR(64)) AS region, "
        ":bucket_start AS bucket_start, CAST(:outcome AS VARCHAR(24)) AS outcome, "
        "CAST(:sample AS INTEGER) AS sample, CAST(:latency AS FLOAT) AS latency, CAST(:bucket AS INTEGER) AS bucket, "
        "CAST(:quality AS FLOAT) AS quality, CAST(:cost AS FLOAT) AS cost"
    )
    updates = [f"{column} = {name}.{column} + excluded.{column}" for column in SUMMED]
    updates += [f"latency_max_ms = {_keep('>', 'latency_max_ms', name)}",
                f"quality_min = {_keep('<', 'quality_min', name)}"]
    sql = (
        f"INSERT INTO {name} ({', '.join(values)}) SELECT {', '.join(values.values())} FROM ({event}) AS e WHERE 1 = 1 "
        f"ON CONFLICT ({', '.join(ROLLUP_KEY)}) DO UPDATE SET {', '.join(updates)}"
    )
    return text(sql).bindparams(
        bindparam("service_id", type_=String()),
        bindparam("region", type_=String()),
        bindparam("bucket_start", type_=table.c.bucket_start.type),
        bindparam("outcome", type_=String()),
        bindparam("sample", type_=Integer()),
        bindparam("latency", type_=Float()),
        bindparam("bucket", type_=Integer()),
        bindparam("quality", type_=Float()),
        bindparam("cost", type_=Float()),
    )
