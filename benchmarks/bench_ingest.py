"""Ingest rate on SQLite: ``ResultStore.record`` (raw row + hourly/daily rollups) vs raw inserts only.

Both write one transaction per result, as production does, into the same WAL database.
They run interleaved in short chunks, alternating which side goes first (ABBA), and each
rate is total results over total time: bursts of load from other processes and the
growing table then hit both sides alike.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

from monitor.config import Config
from monitor.enums import Outcome, ProbeKind
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.record import ResultRecord
from monitor.store.results import ResultStore, probe_results, raw_row

SERVICES = ["dalle3", "sdxl", "flux", "imagen"]
REGIONS = ["eu-west", "us-east", "ap-south"]
OUTCOMES = [Outcome.OK] * 14 + [Outcome.SLOW, Outcome.DEGRADED_QUALITY, Outcome.TIMEOUT,
                                Outcome.SERVER_ERROR, Outcome.RATE_LIMITED, Outcome.CONTENT_FILTERED]
BATCH = 50


def make_results(n: int, rng: random.Random) -> list[ResultRecord]:
    start = datetime(2026, 11, 2, tzinfo=UTC)
    results = []
    for i in range(n):
        outcome = rng.choice(OUTCOMES)
        image = outcome in (Outcome.OK, Outcome.SLOW, Outcome.DEGRADED_QUALITY)
        total = rng.lognormvariate(9.5, 0.6)
        results.append(ResultRecord(
            service=rng.choice(SERVICES), canary="still-life", region=rng.choice(REGIONS), kind=ProbeKind.CANARY,
            started_at=start + timedelta(seconds=37 * i), outcome=outcome,
            latency_ms={"submit": 120.0, "queue": None, "generation": total - 400, "download": 280.0, "total": total},
            http_status=200 if image else 500, request_id=f"req-{i}",
            image_bytes=1_400_000 if image else None, image_format="png" if image else None,
            image_width=1024 if image else None, image_height=1024 if image else None,
            hashes={"phash": "f0e1d2c3b4a59687", "dhash": "0123456789abcdef"} if image else {},
            quality_score=rng.random() if image else None, quality_verdict="pass" if image else None,
            cost=0.04 if image else None, model_version="v1" if image else None,
        ))
    return results


def _timed(write: Callable[[list[ResultRecord]], None], results: list[ResultRecord]) -> float:
    began = time.perf_counter()
    write(results)
    return time.perf_counter() - began


def run(quick: bool = False) -> list[dict[str, Any]]:
    rounds, per_round = (12, 50) if quick else (60, 80)
    rng = random.Random(42)
    config = Config.model_validate({
        "canaries": [{"id": "still-life", "prompt": "a red apple"}],
        "services": [{"id": s, "provider": "openai", "canaries": ["still-life"]} for s in SERVICES],
    })
    with tempfile.TemporaryDirectory(prefix="genstatus-bench-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            upgrade(engine)
            store = ResultStore(engine)
            store.sync_catalog(config)
            figures = _measure(engine, store, rng, rounds, per_round)
        finally:
            engine.dispose()
    return figures


def _measure(engine: Engine, store: ResultStore, rng: random.Random, rounds: int, n: int) -> list[dict[str, Any]]:
    raw_insert = insert(probe_results)

    def raw(results: list[ResultRecord]) -> None:
        for result in results:
            with engine.begin() as connection:
                connection.execute(raw_insert, raw_row(result))

    def record(results: list[ResultRecord]) -> None:
        for result in results:
            store.record(result)

    def record_many(results: list[ResultRecord]) -> None:
        for i in range(0, len(results), BATCH):
            store.record_many(results[i:i + BATCH])

    record(make_results(100, rng))  # warm-up: compiled statements, pool, page cache
    raw(make_results(100, rng))
    spent = {"raw": 0.0, "record": 0.0, "record_many": 0.0}
    ratios = []
    sides = [("raw", raw), ("record", record)]
    for r in range(rounds):
        took = {}
        for name, write in sides if r % 4 in (0, 3) else sides[::-1]:
            took[name] = _timed(write, make_results(n, rng))
            spent[name] += took[name]
        ratios.append(took["raw"] / took["record"])
        spent["record_many"] += _timed(record_many, make_results(n, rng))
    total = rounds * n
    ratios.sort()
    note = f"SQLite WAL, 1 transaction per result, {rounds} interleaved chunks x {n}"
    return [
        dict(name="raw insert only", value=total / spent["raw"], unit="results/s", note=note),
        dict(name="record (raw + rollups)", value=total / spent["record"], unit="results/s", note=note),
        dict(name="record / raw", value=spent["raw"] / spent["record"], unit="x",
             note=f"aim >= 0.5; per chunk: median {statistics.median(ratios):.2f}, "
                  f"middle half {ratios[len(ratios) // 4]:.2f}..{ratios[3 * len(ratios) // 4]:.2f}"),
        dict(name=f"record_many (batches of {BATCH})", value=total / spent["record_many"],
             unit="results/s", note="1 transaction per batch, with rollups"),
    ]
