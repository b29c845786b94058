"""ResultStore: raw rows and rollups in one transaction, concurrent writers (outages and the spool: test_spool.py)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError

from monitor.config import Config
from monitor.enums import Outcome, ProbeKind
from monitor.store.db import make_engine, session_factory
from monitor.store.histogram import COLUMN_NAMES, bucket_index, percentile
from monitor.store.migrate import upgrade
from monitor.store.models import Canary, ProbeResultRow, Service, rollup_daily, rollup_hourly
from monitor.store.record import ResultRecord
from monitor.store.results import ResultStore
from monitor.store.rollups import default_rollups
from web.queries import latest_results

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)

CONFIG = {
    "canaries": [{"id": "still-life", "prompt": "a red apple", "seed": 1234}, {"id": "fox", "prompt": "a fox"}],
    "services": [
        {"id": "dalle3", "name": "DALL·E 3", "group": "OpenAI", "provider": "openai", "model": "dall-e-3",
         "canaries": ["still-life"]},
        {"id": "sdxl", "provider": "stability", "canaries": ["still-life", "fox"]},
    ],
}


def result(
    outcome: Outcome = Outcome.OK,
    *,
    at: datetime = T0,
    service: str = "dalle3",
    region: str = "eu-west",
    kind: ProbeKind = ProbeKind.CANARY,
    total: float | None = 1000.0,
    quality: float | None = None,
    cost: float | None = None,
    marker: str | None = None,
) -> ResultRecord:
    return ResultRecord(
        service=service,
        canary=None if kind is ProbeKind.HEALTH else "still-life",
        region=region,
        kind=kind,
        started_at=at,
        finished_at=at + timedelta(milliseconds=total or 0),
        outcome=outcome,
        latency_ms={"submit": 10.0, "queue": None, "generation": None, "download": None, "total": total},
        quality_score=quality,
        cost=cost,
        request_id=marker,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "postgres":
        yield request.getfixturevalue("pg_engine")
        return
    sqlite_engine = make_engine(f"sqlite:///{tmp_path / 'genstatus.db'}")
    yield sqlite_engine
    sqlite_engine.dispose()


@pytest.fixture
def store(engine: Engine) -> ResultStore:
    upgrade(engine)
    store = ResultStore(engine)
    store.sync_catalog(Config.model_validate(CONFIG))
    return store


def rollups(engine: Engine, table=rollup_hourly) -> dict[tuple[str, str, datetime], dict]:
    with engine.connect() as connection:
        rows = connection.execute(select(table)).mappings().all()
    return {(r["service_id"], r["region"], r["bucket_start"]): dict(r) for r in rows}


def raw_rows(engine: Engine) -> list[ProbeResultRow]:
    with session_factory(engine)() as session:
        return list(session.scalars(select(ProbeResultRow).order_by(ProbeResultRow.id)))


def histogram(row: dict) -> list[int]:
    return [row[c] for c in COLUMN_NAMES]


# -- raw rows and rollups ----------------------------------------------------------------


def test_raw_row_keeps_every_field(store, engine):
    full = result(Outcome.DEGRADED_QUALITY, quality=0.31, cost=0.04, marker="req-1")
    full.http_status = 200
    full.image_bytes, full.image_format, full.image_width, full.image_height = 12345, "png", 1024, 1024
    full.image_sha256 = "ab" * 32
    full.hashes = {"phash": "f0f0f0f0f0f0f0f0", "dhash": "0f0f0f0f0f0f0f0f", "whash": "ffff0000ffff0000"}
    full.quality_verdict, full.quality_flags, full.quality_reasons = "degraded", ["blank"], ["mostly one colour"]
    full.model_version, full.revised_prompt, full.seed = "dall-e-3-2026", "an apple", 2**40
    store.record(full)

    with session_factory(engine)() as session:
        (row,) = latest_results(session, "dalle3")
    assert row.outcome == "degraded_quality" and row.kind == "canary" and row.canary_id == "still-life"
    assert row.started_at == T0 and row.started_at.tzinfo is not None
    assert (row.submit_ms, row.queue_ms, row.total_ms) == (10.0, None, 1000.0)
    assert (row.phash, row.dhash, row.hashes["whash"]) == ("f0f0f0f0f0f0f0f0", "0f0f0f0f0f0f0f0f", "ffff0000ffff0000")
    assert (row.quality_flags, row.quality_reasons) == (["blank"], ["mostly one colour"])
    assert (row.image_width, row.image_sha256, row.seed, row.request_id) == (1024, "ab" * 32, 2**40, "req-1")


def test_rollups_count_outcomes_latency_quality_and_cost(store, engine):
    batch = [
        result(Outcome.OK, total=800.0, quality=0.9, cost=0.04),
        result(Outcome.OK, at=T0 + timedelta(minutes=10), total=1200.0, quality=0.7, cost=0.04),
        result(Outcome.SLOW, at=T0 + timedelta(minutes=20), total=50_000.0, quality=0.8, cost=0.04),
        result(Outcome.DEGRADED_QUALITY, at=T0 + timedelta(minutes=30), total=900.0, quality=0.2, cost=0.04),
        result(Outcome.TIMEOUT, at=T0 + timedelta(minutes=40), total=180_000.0),  # no image: no latency
        result(Outcome.SERVER_ERROR, at=T0 + timedelta(minutes=50), total=300.0),
        result(Outcome.OK, at=T0 + timedelta(hours=1, minutes=5), total=2000.0, quality=0.6, cost=0.04),
        result(Outcome.RATE_LIMITED, region="us-east", total=50.0),
    ]
    for item in batch:
        store.record(item)

    hourly = rollups(engine)
    assert set(hourly) == {("dalle3", "eu-west", T0), ("dalle3", "eu-west", T0 + timedelta(hours=1)),
                           ("dalle3", "us-east", T0)}
    first = hourly[("dalle3", "eu-west", T0)]
    assert first["n_total"] == 6
    assert (first["n_ok"], first["n_slow"], first["n_degraded_quality"]) == (2, 1, 1)
    assert (first["n_timeout"], first["n_server_error"], first["n_rate_limited"]) == (1, 1, 0)
    assert first["latency_count"] == 4 == sum(histogram(first))
    assert first["latency_sum_ms"] == pytest.approx(800 + 1200 + 50_000 + 900)
    assert first["latency_max_ms"] == 50_000.0
    assert first[COLUMN_NAMES[bucket_index(50_000.0)]] == 1
    assert first["quality_count"] == 4
    assert first["quality_sum"] / first["quality_count"] == pytest.approx((0.9 + 0.7 + 0.8 + 0.2) / 4)
    assert first["quality_min"] == pytest.approx(0.2)
    assert first["cost_sum"] == pytest.approx(0.16)

    us = hourly[("dalle3", "us-east", T0)]
    assert (us["n_total"], us["n_rate_limited"], us["latency_count"], us["latency_max_ms"]) == (1, 1, 0, None)
    assert (us["quality_count"], us["quality_min"], us["cost_sum"]) == (0, None, 0.0)

    daily = rollups(engine, rollup_daily)
    day = T0.replace(hour=0)
    assert set(daily) == {("dalle3", "eu-west", day), ("dalle3", "us-east", day)}
    eu_day = daily[("dalle3", "eu-west", day)]
    assert (eu_day["n_total"], eu_day["n_ok"], eu_day["latency_count"]) == (7, 3, 5)
    assert eu_day["quality_min"] == pytest.approx(0.2)
    assert eu_day["cost_sum"] == pytest.approx(0.20)


def test_merged_percentiles_across_regions_match_all_values(store, engine):
    values = {"eu-west": [150.0, 900.0, 4000.0, 12_000.0, 30_000.0, 700.0],
              "us-east": [200.0, 2500.0, 2600.0, 60_000.0, 95.0]}
    for region, latencies in values.items():
        for i, ms in enumerate(latencies):
            store.record(result(region=region, at=T0 + timedelta(minutes=i), total=ms))

    rows = rollups(engine).values()
    merged = [sum(column) for column in zip(*(histogram(r) for r in rows))]
    expected = [0] * len(COLUMN_NAMES)
    for ms in values["eu-west"] + values["us-east"]:
        expected[bucket_index(ms)] += 1
    assert merged == expected
    for fraction in (0.5, 0.95, 0.99):
        assert percentile(merged, fraction) == percentile(expected, fraction)
    assert max(r["latency_max_ms"] for r in rows) == 60_000.0


def test_health_checks_are_stored_raw_only_and_confirmations_add_only_their_cost(store, engine):
    store.record(result(kind=ProbeKind.HEALTH, total=80.0))
    store.record(result(kind=ProbeKind.CONFIRMATION, outcome=Outcome.TIMEOUT, cost=0.04))
    store.record(result(kind=ProbeKind.CONFIRMATION, outcome=Outcome.OK, total=900.0, quality=0.9, cost=0.04))
    store.record(result(kind=ProbeKind.CANARY, outcome=Outcome.TIMEOUT, cost=0.04))
    assert [r.kind for r in raw_rows(engine)] == ["health", "confirmation", "confirmation", "canary"]
    (row,) = rollups(engine).values()
    # a confirmation run is asked for because a run failed: counting it would weigh that failure twice
    assert (row["n_total"], row["n_timeout"], row["n_ok"], row["latency_count"], row["quality_count"]) == (1, 1, 0, 0, 0)
    assert row["cost_sum"] == pytest.approx(0.12)  # but it was paid for


def test_record_many_matches_record(store, engine):
    items = [result(outcome, at=T0 + timedelta(minutes=7 * i), total=100.0 * (i + 1), quality=i / 20, cost=0.01)
             for i, outcome in enumerate([Outcome.OK, Outcome.SLOW, Outcome.OK, Outcome.BAD_OUTPUT] * 3)]
    for item in items:
        store.record(item)
    store.record_many([result(r.outcome, service="sdxl", at=r.started_at, total=r.latency_ms["total"],
                              quality=r.quality_score, cost=r.cost) for r in items])
    for table in (rollup_hourly, rollup_daily):
        by_service: dict[str, list[dict]] = {}
        for (service, _, _), row in sorted(rollups(engine, table).items()):
            by_service.setdefault(service, []).append({k: v for k, v in row.items() if k != "service_id"})
        assert by_service["dalle3"] == by_service["sdxl"]
    assert len(raw_rows(engine)) == 24


def test_raw_row_and_rollups_commit_together(store, engine):
    """When a rollup upsert fails, the raw row is rolled back with it (and nothing is spooled)."""
    failing = text("INSERT INTO rollup_daily (service_id, region, bucket_start) VALUES (:service_id, :region, NULL)")
    (hourly, hour), (_, day) = default_rollups()
    store = ResultStore(engine, rollups=[(hourly, hour), (failing, day)])
    with pytest.raises(IntegrityError):
        store.record(result())
    assert raw_rows(engine) == [] and rollups(engine) == {}
    assert store.spooled == 0


def test_unknown_service_is_an_error_not_an_outage(store, engine):
    with pytest.raises(IntegrityError):
        store.record(result(service="nope"))
    assert raw_rows(engine) == [] and store.spooled == 0


def test_sync_catalog_upserts_orders_and_deactivates(store, engine):
    changed = {
        "canaries": [{"id": "still-life", "prompt": "a green apple", "seed": "random"}],
        "services": [
            {"id": "sdxl", "name": "SDXL", "provider": "stability", "canaries": ["still-life"]},
            {"id": "flux", "provider": "bfl", "canaries": ["still-life"]},
        ],
    }
    store.record(result())  # history of a service that will leave the config
    store.sync_catalog(Config.model_validate(changed))
    with session_factory(engine)() as session:
        services = {s.id: s for s in session.scalars(select(Service))}
        canaries = {c.id: c for c in session.scalars(select(Canary))}
    assert {k: (s.position, s.active, s.name) for k, s in services.items()} == {
        "sdxl": (0, True, "SDXL"), "flux": (1, True, "flux"), "dalle3": (0, False, "DALL·E 3")}
    assert (canaries["still-life"].prompt, canaries["still-life"].seed) == ("a green apple", "random")
    assert "fox" in canaries  # never deleted
    assert services["dalle3"].group_name == "OpenAI" and services["dalle3"].model == "dall-e-3"
    store.sync_catalog(Config.model_validate(CONFIG))
    with session_factory(engine)() as session:
        active = {s.id: (s.position, s.active) for s in session.scalars(select(Service))}
    assert active == {"dalle3": (0, True), "sdxl": (1, True), "flux": (1, False)}


def test_latest_results_newest_first(store, engine):
    for i in range(5):
        store.record(result(at=T0 + timedelta(minutes=i), marker=f"r{i}"))
    store.record(result(service="sdxl", marker="other"))
    with session_factory(engine)() as session:
        assert [r.request_id for r in latest_results(session, "dalle3", limit=3)] == ["r4", "r3", "r2"]


# -- concurrency -------------------------------------------------------------------------


@pytest.mark.postgres
def test_concurrent_writers_keep_exact_counts(pg_engine):
    """Four agents (own engines) x 50 results into the same rollup rows: no lost increments."""
    upgrade(pg_engine)
    ResultStore(pg_engine).sync_catalog(Config.model_validate(CONFIG))
    url = pg_engine.url.render_as_string(hide_password=False)
    outcomes = [Outcome.OK, Outcome.SLOW, Outcome.TIMEOUT, Outcome.SERVER_ERROR, Outcome.DEGRADED_QUALITY]
    errors: list[BaseException] = []

    def agent(n: int) -> None:
        engine = make_engine(url)
        store = ResultStore(engine)
        try:
            for i in range(50):
                store.record(result(outcomes[i % 5], region=("eu-west", "us-east")[i % 2],
                                    at=T0 + timedelta(minutes=i), total=100.0 * (i + 1), quality=0.5, cost=0.01))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    for table in (rollup_hourly, rollup_daily):
        rows = list(rollups(pg_engine, table).values())
        assert sum(r["n_total"] for r in rows) == 200
        for outcome in outcomes:
            assert sum(r[f"n_{outcome.value}"] for r in rows) == 40
        assert sum(r["latency_count"] for r in rows) == 120 == sum(sum(histogram(r)) for r in rows)
        assert sum(r["quality_count"] for r in rows) == 200
        assert sum(r["cost_sum"] for r in rows) == pytest.approx(2.0)
    assert len(raw_rows(pg_engine)) == 200


def test_store_latency_phases_follow_the_result_record():
    from monitor.store.results import LATENCY_PHASES
    from probes.base import PHASES

    assert LATENCY_PHASES == PHASES


def test_thumbnails_kept_images_and_profiles_round_trip(store: ResultStore, engine: Engine):
    """Result thumbnails (pruned per canary), kept failing images, reference profiles and the recent
    outputs the stuck check reads -- on SQLite and PostgreSQL alike."""
    from monitor.scoring.profile import ReferenceImage
    from monitor.store.models import ResultImageRow
    from monitor.store.references import load_profile, recent_outputs, save_profile
    from monitor.store.results import THUMBNAILS_KEPT

    for i in range(THUMBNAILS_KEPT + 3):
        r = result(at=T0 + timedelta(minutes=i), marker=f"t{i}")
        r.thumbnail, r.hashes, r.seed, r.image_sha256 = bytes([i]) * 50, {"phash": f"{i:016x}", "dhash": "0" * 16}, i, f"{i}"
        if i == 0:
            r.kept_image, r.keep_until = b"\x89PNG full image", T0 + timedelta(days=3650)
        store.record(r)
    with engine.connect() as connection:
        rows = connection.execute(select(ResultImageRow.thumbnail, ResultImageRow.image)).all()
    assert len(rows) == THUMBNAILS_KEPT + 1  # the newest 12, plus the oldest while its full image is kept
    assert sum(1 for _, image in rows if image == b"\x89PNG full image") == 1
    recent = recent_outputs(engine, "dalle3", "still-life")
    assert [r.seed for r in recent] == [14, 13, 12, 11, 10] and recent[0].hashes["phash"] == f"{14:016x}"

    entries = [ReferenceImage(hashes={"phash": "0" * 16}, stats={"entropy": 7.0 + i}, histogram=[0.5, 0.5],
                              seed=1234, thumbnail=b"RIFF" + bytes([i]), sha256=str(i)) for i in range(3)]
    save_profile(engine, "dalle3", "still-life", entries, region="eu-west")
    save_profile(engine, "dalle3", "still-life", entries[:2], region="eu-west")  # replaces, never appends
    profile = load_profile(engine, "dalle3", "still-life")
    assert len(profile.images) == 2 and profile.seed == 1234 and profile.images[1].thumbnail == b"RIFF\x01"
    assert load_profile(engine, "sdxl", "fox") is None
