"""``/metrics`` parsed back with prometheus_client's own parser and checked against inserted rows;
``/readyz`` against the migration head."""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta

import prometheus_client
import pytest
from alembic import command
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from monitor.store.db import make_engine
from monitor.store.histogram import UPPER_BOUNDS_MS
from monitor.store.migrate import alembic_config, upgrade
from monitor.store.models import Incident, rollup_daily, rollup_hourly
from tests.webdb import add_result, add_rollup, add_service, client, engine, session  # noqa: F401 - fixtures
from web import close_app, create_app, metrics
from web.health import head_revision
from web.metrics import SCRAPE_TTL

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = datetime.combine(NOW.date(), time(), tzinfo=UTC)


def scrape(client) -> dict[str, dict[tuple, float]]:
    """family name -> {(sample name, sorted labels): value}"""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    families = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        families[family.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
    return families


def value(families, family: str, sample: str | None = None, **labels) -> float | None:
    return families[family].get((sample or family, tuple(sorted(labels.items()))))


def add_incident(session, service_id, kind="outage", impact="major", audience="public", resolved=False):
    session.add(Incident(service_id=service_id, kind=kind, impact=impact, audience=audience, title="t",
                         started_at=NOW - timedelta(hours=1), detected_at=NOW - timedelta(hours=1),
                         resolved_at=NOW - timedelta(minutes=5) if resolved else None))
    session.commit()


def test_probe_counts_are_counters_over_the_rollups_without_operator_outcomes(session, client):
    add_service(session, "svc", "Image API")
    add_rollup(session, rollup_daily, "svc", "eu", TODAY - timedelta(days=3), ok=7, timeout=2, auth_error=4)
    add_rollup(session, rollup_daily, "svc", "eu", TODAY, ok=5, probe_error=1)
    add_rollup(session, rollup_daily, "svc", "us", TODAY, ok=1, server_error=3)
    add_service(session, "gone", active=False)
    add_rollup(session, rollup_daily, "gone", "eu", TODAY, ok=9)  # a service no longer shown: left out

    families = scrape(client)
    counts = families["genstatus_probe_results"]
    assert value(families, "genstatus_probe_results", "genstatus_probe_results_total",
                 service="svc", region="eu", outcome="ok") == 12
    assert value(families, "genstatus_probe_results", "genstatus_probe_results_total",
                 service="svc", region="eu", outcome="timeout") == 2
    assert value(families, "genstatus_probe_results", "genstatus_probe_results_total",
                 service="svc", region="us", outcome="server_error") == 3
    outcomes = {dict(labels)["outcome"] for _, labels in counts}
    assert "auth_error" not in outcomes and "probe_error" not in outcomes  # the operator's business only
    assert sum(counts.values()) == 12 + 2 + 1 + 3


def test_latency_histogram_is_cumulative_over_the_rollup_buckets(session, client):
    add_service(session, "svc")
    for region, day, cells, sum_ms in [("eu", TODAY, {"h00": 1, "h05": 2}, 900.0),
                                       ("us", TODAY - timedelta(days=1), {"h05": 1, "h10": 3}, 4100.0)]:
        session.execute(insert(rollup_daily).values(service_id="svc", region=region, bucket_start=day, n_total=7,
                                                    n_ok=7, latency_count=sum(cells.values()), latency_sum_ms=sum_ms,
                                                    **cells))
    session.commit()

    families = scrape(client)
    buckets = {float(dict(labels)["le"]): v for (name, labels), v in families["genstatus_probe_latency_seconds"].items()
               if name.endswith("_bucket")}
    le = sorted(buckets)
    assert len(le) == len(UPPER_BOUNDS_MS) + 1 and le[-1] == math.inf
    assert le[0] == pytest.approx(UPPER_BOUNDS_MS[0] / 1000)
    assert [buckets[le[i]] for i in (0, 4, 5, 9, 10, len(le) - 1)] == [1, 1, 4, 4, 7, 7]
    assert all(a <= b for a, b in zip([buckets[x] for x in le], [buckets[x] for x in le[1:]]))  # cumulative
    assert value(families, "genstatus_probe_latency_seconds", "genstatus_probe_latency_seconds_count", service="svc") == 7
    assert value(families, "genstatus_probe_latency_seconds", "genstatus_probe_latency_seconds_sum",
                 service="svc") == pytest.approx(5.0)


def test_quality_mean_over_the_last_day(session, client):
    add_service(session, "svc")
    add_service(session, "other")
    hour = NOW.replace(minute=0, second=0)
    for start, total, count in [(hour, 1.6, 2), (hour - timedelta(hours=3), 0.5, 1), (hour - timedelta(hours=30), 0.0, 5)]:
        session.execute(insert(rollup_hourly).values(service_id="svc", region="eu", bucket_start=start, n_total=count,
                                                     quality_sum=total, quality_count=count))
    session.commit()
    families = scrape(client)
    assert value(families, "genstatus_quality_score_mean", service="svc") == pytest.approx(2.1 / 3)
    assert value(families, "genstatus_quality_score_mean", service="other") is None  # nothing scored: no sample


def test_open_incidents_component_status_and_page_indicator(session, client):
    add_service(session, "down", position=0)
    add_service(session, "fine", position=1)
    add_service(session, "quiet", position=2)
    add_result(session, "down", "eu", "server_error", NOW - timedelta(minutes=2))
    add_result(session, "fine", "eu", "ok", NOW - timedelta(minutes=3))
    add_incident(session, "down", "outage", "major")
    add_incident(session, "down", "latency", "minor")
    add_incident(session, "fine", "outage", "major", resolved=True)
    add_incident(session, "fine", "operator", "major", audience="operator")

    families = scrape(client)
    incidents = families["genstatus_open_incidents"]
    assert value(families, "genstatus_open_incidents", service="down", kind="outage", impact="major") == 1
    assert value(families, "genstatus_open_incidents", service="down", kind="latency", impact="minor") == 1
    assert value(families, "genstatus_open_incidents", service="fine", kind="outage", impact="major") == 0
    assert sum(incidents.values()) == 2
    assert {dict(labels)["kind"] for _, labels in incidents} == {"outage", "latency", "quality", "safety"}

    def status_of(service):
        return [dict(labels)["status"] for (_, labels), v in families["genstatus_component_status"].items()
                if dict(labels)["service"] == service and v == 1]

    assert status_of("down") == ["major_outage"]
    assert status_of("fine") == ["operational"]
    assert status_of("quiet") == ["unknown"]
    assert value(families, "genstatus_page_status", indicator="major") == 1  # one of three in a major outage
    assert sum(families["genstatus_page_status"].values()) == 1
    assert value(families, "genstatus_last_result_timestamp_seconds", service="fine") == (NOW - timedelta(minutes=3)).timestamp()
    assert value(families, "genstatus_last_result_timestamp_seconds", service="quiet") is None


def test_uptime_ratio_and_service_info(session, client):
    add_service(session, "svc", 'Name "with" \\ and\nnewline', group="G")
    yesterday = TODAY - timedelta(days=1)
    add_rollup(session, rollup_daily, "svc", "eu", yesterday, ok=3)
    session.add(Incident(service_id="svc", kind="outage", impact="major", title="t", started_at=yesterday,
                         detected_at=yesterday, resolved_at=yesterday + timedelta(hours=2.4)))
    session.commit()
    families = scrape(client)
    assert value(families, "genstatus_uptime_30d_ratio", service="svc") == pytest.approx(0.9)
    (labels,) = [dict(labels) for _, labels in families["genstatus_service_info"]]
    assert labels == {"service": "svc", "name": 'Name "with" \\ and\nnewline', "group": "G"}  # escaped and parsed back


def test_each_scrape_has_its_own_registry_and_openmetrics_is_offered(session, client):
    add_service(session, "svc")
    scrape(client)
    assert prometheus_client.REGISTRY.get_sample_value("genstatus_page_status", {"indicator": "none"}) is None
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.mimetype == "application/openmetrics-text"
    assert response.get_data(as_text=True).endswith("# EOF\n")
    assert response.headers["Cache-Control"] == "no-store"


def test_one_reading_serves_scrapes_for_the_ttl(session, client, monkeypatch):
    clock = [500.0]
    monkeypatch.setattr(metrics, "monotonic", lambda: clock[0])
    add_service(session, "svc")
    assert value(scrape(client), "genstatus_open_incidents", service="svc", kind="outage", impact="major") == 0
    add_incident(session, "svc")
    clock[0] += SCRAPE_TTL - 0.1
    assert value(scrape(client), "genstatus_open_incidents", service="svc", kind="outage", impact="major") == 0
    clock[0] += 0.2
    assert value(scrape(client), "genstatus_open_incidents", service="svc", kind="outage", impact="major") == 1
    assert metrics.scrape_cache(client.application).readings_taken == 2


# ---------------------------------------------------------------------------------------
# readiness


@pytest.fixture
def migrated(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'ready.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def test_ready_at_the_migration_head(migrated):
    response = create_app(engine=migrated, testing=True).test_client().get("/readyz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})
    assert response.headers["Cache-Control"] == "no-store"


def test_not_ready_behind_the_head(migrated):
    command.downgrade(alembic_config(migrated), "-1")
    response = create_app(engine=migrated, testing=True).test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "error"
    assert head_revision() in body["reason"] and "ready.db" not in body["reason"]


def test_not_ready_without_a_schema(client):
    response = client.get("/readyz")  # tables made without Alembic: no revision recorded
    assert response.status_code == 503
    assert "not initialised" in response.get_json()["reason"]


def test_not_ready_without_a_database_and_the_reason_names_no_path(tmp_path):
    broken = tmp_path / "secret-name.db"
    broken.write_bytes(b"this is not a database file " * 100)
    app = create_app(database_url=f"sqlite:///{broken}", testing=True)
    response = app.test_client().get("/readyz")
    close_app(app)
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "reason": "database unavailable"}
