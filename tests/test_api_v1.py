"""The native JSON API (/api/v1): services, paginated results and incidents, uptime, latency, recommend,
and its errors (400 naming the parameter, 404, 405 — always JSON).  Figures are worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from monitor.config import Config, ServiceConfig
from monitor.store.histogram import UPPER_BOUNDS_MS
from monitor.store.models import Incident, IncidentUpdate, ProbeResultRow, Service, rollup_daily, rollup_hourly
from tests.webdb import add_result, add_rollup, add_service, engine, session  # noqa: F401 - fixtures
from web import api_v1, create_app
from web.caching import render_cache

NOW = datetime(2026, 11, 10, 12, 30, tzinfo=UTC)  # the API's clock here (``api_v1.clock``)
DAY = datetime(2026, 11, 10, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    moment = [NOW]
    monkeypatch.setattr(api_v1, "clock", lambda: moment[0])
    return lambda at: moment.__setitem__(0, at)


SERVICES = [("a", "Alpha", "G"), ("b", "Beta", "G"), ("c", "Gamma", "G"), ("d", "Delta", "G"), ("e", "Epsilon", "G"),
            ("f", "Phi", "G"), ("x", "Lone", "")]


@pytest.fixture
def app(engine, session):
    for position, (sid, name, group) in enumerate(SERVICES):
        add_service(session, sid, name, group=group, position=position)
    session.execute(update(Service).values(created_at=NOW - timedelta(days=90), updated_at=NOW - timedelta(days=90)))
    session.commit()
    config = Config(services=[ServiceConfig(id=sid, name=name, group=group, provider="openai", canaries=["c"])
                              for sid, name, group in SERVICES])
    return create_app(config, engine=engine, testing=True)


def call(app, path: str, status: int = 200) -> Any:
    render_cache(app).clear()
    response = app.test_client().get(path)
    assert response.content_type == "application/json", path
    assert response.status_code == status, (path, response.get_data(as_text=True))
    return response.get_json()


def add_incident(session, service_id: str, start: datetime, end: datetime | None = None, *, kind: str = "outage",
                 impact: str = "major", audience: str = "public", **fields: Any) -> Incident:
    row = Incident(service_id=service_id, kind=kind, audience=audience, impact=impact,
                   status="resolved" if end else "investigating", title=fields.pop("title", f"{service_id} {kind}"),
                   started_at=start, detected_at=start, resolved_at=end, **fields)
    session.add(row)
    session.commit()
    return row


# ---------------------------------------------------------------------------------------
# services and uptime


def test_services_with_state_regions_and_uptime(app, session):
    for day in (DAY - timedelta(days=2), DAY - timedelta(days=1), DAY):
        add_rollup(session, rollup_daily, "a", "eu", day, ok=10)
    # 2.4 hours of major outage yesterday: 10% of that day
    add_incident(session, "a", DAY - timedelta(days=1), DAY - timedelta(days=1) + timedelta(hours=2.4))
    add_result(session, "a", "eu", "ok", NOW - timedelta(minutes=5))
    add_result(session, "a", "us", "timeout", NOW - timedelta(minutes=4))
    add_result(session, "a", "us", "auth_error", NOW - timedelta(minutes=3))  # operator-only: not the latest shown

    services = {s["id"]: s for s in call(app, "/api/v1/services")["services"]}
    a = services["a"]
    assert a == {
        "id": "a", "name": "Alpha", "group": "G", "status": "operational",
        "checked_at": "2026-11-10T12:26:00.000+00:00",
        "regions": [{"region": "eu", "outcome": "ok"}, {"region": "us", "outcome": "timeout"}],
        # days with data: two whole days and today until 12:30; 8640 s down of 2 * 86400 + 45000
        "uptime_30d": pytest.approx(100 * (1 - 8640 / (2 * 86400 + 45000))),
        "uptime_90d": pytest.approx(100 * (1 - 8640 / (2 * 86400 + 45000))),
    }
    assert services["x"]["group"] is None and services["x"]["status"] == "unknown"
    assert services["x"]["uptime_30d"] is None  # no data is not 100%
    assert list(services) == [sid for sid, _, _ in SERVICES]
    assert call(app, "/api/v1/services/a")["service"] == a
    assert call(app, "/api/v1/services/nope", 404) == {"error": "no service 'nope'"}


def test_uptime_windows(app, session):
    add_rollup(session, rollup_hourly, "b", "eu", DAY + timedelta(hours=10), ok=3)
    add_incident(session, "b", NOW - timedelta(hours=6), NOW - timedelta(hours=3), impact="minor")  # partial: 0.3
    got = call(app, "/api/v1/uptime?service=b&window=24h")
    assert got["uptime"] == pytest.approx(100 * (1 - 0.3 * 3 * 3600 / 86400))
    assert got["downtime_seconds"] == pytest.approx(3240)
    assert (got["start"], got["end"]) == ("2026-11-09T12:30:00.000+00:00", "2026-11-10T12:30:00.000+00:00")
    assert "days" not in got and "partial outage at 30%" in got["formula"]

    week = call(app, "/api/v1/uptime?service=b&window=7d")
    assert [d["date"] for d in week["days"]][-1] == "2026-11-10" and len(week["days"]) == 7
    assert week["days"][-1]["status"] == "partial_outage" and week["days"][0]["uptime"] is None
    assert week["uptime"] == pytest.approx(100 * (1 - 3240 / 45000))  # only today has data: 12.5 hours
    assert week["start"] == "2026-11-04T00:00:00.000+00:00"

    assert call(app, "/api/v1/uptime?service=c&window=24h")["uptime"] is None  # no results, no incident: no data
    assert call(app, "/api/v1/uptime?service=b")["window"] == "30d"


def test_latency_percentiles_from_hourly_histograms(app, session):
    hour = DAY + timedelta(hours=11)
    add_rollup(session, rollup_hourly, "a", "eu", hour, ok=50, h05=50)
    add_rollup(session, rollup_hourly, "a", "us", hour, ok=50, h10=45, h20=5)
    add_rollup(session, rollup_hourly, "a", "us", hour - timedelta(days=2), ok=9, h40=9)  # outside 24 hours
    got = call(app, "/api/v1/latency?service=a")
    # 100 runs: 50 in bucket 5, 45 in bucket 10, 5 in bucket 20; bucket i spans [100*2^((i-1)/3), 100*2^(i/3)) ms
    assert got["count"] == 100
    assert got["p50_ms"] == pytest.approx(100 * 2 ** (5 / 3))  # rank 50: the top of bucket 5
    assert got["p95_ms"] == pytest.approx(100 * 2 ** (10 / 3))  # rank 95: the top of bucket 10
    assert got["p99_ms"] == pytest.approx(100 * 2 ** (19.8 / 3))  # rank 99: 4/5 into bucket 20, geometrically
    assert got["p50_ms"] == pytest.approx(UPPER_BOUNDS_MS[5])
    assert got["regions"]["eu"] == {"count": 50, "p50_ms": pytest.approx(100 * 2 ** (4.5 / 3)),
                                    "p95_ms": pytest.approx(100 * 2 ** (4.95 / 3)), "p99_ms": pytest.approx(100 * 2 ** (4.99 / 3))}
    assert got["start"] == "2026-11-09T12:00:00.000+00:00"  # whole hours
    assert call(app, "/api/v1/latency?service=a&window=7d")["count"] == 109
    assert call(app, "/api/v1/latency?service=b")["p95_ms"] is None


# ---------------------------------------------------------------------------------------
# results


def result_ids(page: dict) -> list[int]:
    return [int(r["id"]) for r in page["results"]]


def walk(app, query: str, limit: int, between=None) -> list[int]:
    seen: list[int] = []
    path = f"/api/v1/results?limit={limit}{query}"
    while True:
        page = call(app, path)
        seen += result_ids(page)
        if between:
            between(len(seen))
        if page["next_cursor"] is None:
            return seen
        path = f"/api/v1/results?limit={limit}{query}&cursor={page['next_cursor']}"


def test_cursor_walks_every_result_once_while_results_arrive(app, session):
    base = NOW - timedelta(hours=2)
    for n in range(23):
        add_result(session, "a", "eu", "ok", base + timedelta(minutes=(n // 3) * 5))  # three at each moment: ties
    existing = list(session.scalars(select(ProbeResultRow.id)))
    late: list[int] = []

    def insert_more(count: int) -> None:
        if count == 7:  # after the first page: newer results (above the cursor) and late ones far below it
            add_result(session, "a", "eu", "ok", NOW)
            add_result(session, "a", "eu", "timeout", base - timedelta(hours=1))
            late.append(session.scalar(select(func.max(ProbeResultRow.id))))

    seen = walk(app, "&service=a", 7, insert_more)
    assert len(seen) == len(set(seen))  # never twice
    assert sorted(seen) == sorted(existing + late)  # every result there at the start, and the late one below
    rows = {r.id: r for r in session.scalars(select(ProbeResultRow))}
    keys = [(rows[i].started_at, i) for i in seen]
    assert keys == sorted(keys, reverse=True)  # newest first, ties by id


def test_results_are_public_and_filtered(app, session):
    t = NOW - timedelta(hours=1)
    add_result(session, "a", "eu", "ok", t, total_ms=1234.5, error_detail="secret.internal:5432 refused",
               request_id="req-SECRET")
    add_result(session, "a", "us", "server_error", t + timedelta(minutes=1), http_status=503,
               error_detail="Traceback SECRET")
    add_result(session, "a", "eu", "auth_error", t + timedelta(minutes=2))  # operator-only
    add_result(session, "a", "eu", "timeout", t + timedelta(minutes=3), kind="health")  # not a public kind
    add_result(session, "b", "eu", "slow", t + timedelta(minutes=4), kind="confirmation")
    add_result(session, "a", "eu", "rate_limited", t + timedelta(minutes=5))

    render_cache(app).clear()
    raw = app.test_client().get("/api/v1/results").get_data(as_text=True)
    assert "SECRET" not in raw and "secret" not in raw and "auth_error" not in raw
    everything = call(app, "/api/v1/results")["results"]
    assert [(r["service"], r["outcome"]) for r in everything] == [
        ("a", "rate_limited"), ("b", "slow"), ("a", "server_error"), ("a", "ok")]
    server_error = everything[2]
    assert server_error["effect"] == "down" and server_error["detail"] == "the provider answered with a server error"
    assert server_error["http_status"] == 503 and server_error["kind"] == "canary"
    assert everything[3]["latency_ms"]["total"] == 1234.5 and everything[3]["detail"] is None
    assert set(everything[3]) == {"id", "service", "region", "kind", "canary", "started_at", "finished_at", "outcome",
                                  "effect", "detail", "http_status", "latency_ms", "quality", "image"}

    def outcomes(query: str) -> list[str]:
        return [r["outcome"] for r in call(app, "/api/v1/results?" + query)["results"]]

    assert outcomes("service=b") == ["slow"]
    assert outcomes("service=a&region=us") == ["server_error"]
    assert outcomes("outcome=ok&outcome=server_error") == ["server_error", "ok"]
    assert outcomes("service=a&service=b&outcome=slow") == ["slow"]
    assert outcomes("since=2026-11-10T11:31:00Z") == ["rate_limited", "slow", "server_error"]  # inclusive
    assert outcomes("until=2026-11-10T11:31:00%2B00:00") == ["ok"]  # exclusive
    assert outcomes("since=2026-11-10T11:31:00&until=2026-11-10T11:34:00") == ["server_error"]  # no offset: UTC
    assert outcomes("since=2026-11-10T12:31:00%2B01:00&until=2026-11-10T12:34:00%2B01:00") == ["server_error"]
    assert call(app, "/api/v1/results?limit=2")["next_cursor"] is not None
    assert call(app, "/api/v1/results?limit=4")["next_cursor"] is not None  # a full page may have a next one
    last = call(app, "/api/v1/results?limit=4")["next_cursor"]
    assert call(app, f"/api/v1/results?limit=4&cursor={last}") == {"results": [], "next_cursor": None}


BAD_RESULT_QUERIES = [
    ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=ten", "limit"), ("limit=-1", "limit"), ("limit=1&limit=2", "limit"),
    ("cursor=bm9wZQ", "cursor"), ("cursor=!!", "cursor"), ("since=yesterday", "since"), ("until=2026-13-01", "until"),
    ("since=2026-11-10T12:00:00Z&until=2026-11-10T11:00:00Z", "until"),
    ("outcome=auth_error", "outcome"), ("outcome=probe_error", "outcome"), ("outcome=exploded", "outcome"),
]


def test_bad_result_parameters_are_400_naming_them(app):
    for query, parameter in BAD_RESULT_QUERIES:
        got = call(app, f"/api/v1/results?{query}", 400)
        assert got["parameter"] == parameter and got["error"].startswith(f"{parameter}: "), query


def test_a_cursor_only_serves_its_own_listing(app, session):
    add_incident(session, "a", NOW - timedelta(hours=2), NOW - timedelta(hours=1))
    add_incident(session, "a", NOW - timedelta(hours=4), NOW - timedelta(hours=3))
    cursor = call(app, "/api/v1/incidents?limit=1")["next_cursor"]
    assert call(app, f"/api/v1/results?cursor={cursor}", 400)["parameter"] == "cursor"


def test_other_bad_parameters(app):
    for path, parameter in [
        ("/api/v1/uptime", "service"), ("/api/v1/uptime?service=a&window=5d", "window"),
        ("/api/v1/uptime?service=a&service=b", "service"), ("/api/v1/latency?service=a&window=1y", "window"),
        ("/api/v1/latency", "service"), ("/api/v1/recommend", "group"), ("/api/v1/recommend?group=", "group"),
        ("/api/v1/incidents?limit=101", "limit"),
    ]:
        assert call(app, path, 400)["parameter"] == parameter, path


def test_unknown_ids_and_paths_are_json_404(app):
    for path in [
        "/api/v1/results?service=nope", "/api/v1/uptime?service=nope", "/api/v1/latency?service=nope",
        "/api/v1/recommend?group=nope", "/api/v1/incidents/999", "/api/v1/incidents/abc",
        "/api/v1/incidents/99999999999999999999999", "/api/v1/services/nope", "/api/v1/nothing", "/api/v1", "/api/",
        "/api/v9/anything",
    ]:
        assert "error" in call(app, path, 404), path


def test_a_plus_sign_left_unencoded_still_reads_as_an_offset(app, session):
    add_result(session, "a", "eu", "ok", NOW - timedelta(minutes=30))  # 12:00 UTC
    assert len(call(app, "/api/v1/results?since=2026-11-10T12:59:00+01:00")["results"]) == 1  # "+" arrives as " "
    assert call(app, "/api/v1/results?since=2026-11-10T13:01:00%2B01:00")["results"] == []


def test_failures_inside_a_view_are_json_and_reveal_nothing(app, monkeypatch):
    from sqlalchemy.exc import OperationalError

    app.config["PROPAGATE_EXCEPTIONS"] = False  # answer as in production, not raise into the test

    def broken(*_args, **_kwargs):
        raise RuntimeError("SECRET traceback text")

    monkeypatch.setattr(api_v1, "public_results", broken)
    response = app.test_client().get("/api/v1/results")
    assert (response.status_code, response.get_json()) == (500, {"error": "internal error"})

    def unavailable(*_args, **_kwargs):
        raise OperationalError("SELECT", {}, Exception("could not connect to db.SECRET.internal:5432"))

    monkeypatch.setattr(api_v1, "public_results", unavailable)
    response = app.test_client().get("/api/v1/results")
    assert response.status_code == 503 and response.content_type == "application/json"
    assert response.headers["Retry-After"] == "10" and "SECRET" not in response.get_data(as_text=True)


def test_head_answers_without_a_body(app):
    response = app.test_client().head("/api/v1/services")
    assert response.status_code == 200 and response.content_type == "application/json" and response.data == b""


def test_writes_are_refused_as_json(app):
    for method in ("post", "put", "delete", "patch"):
        response = getattr(app.test_client(), method)("/api/v1/results")
        assert response.status_code == 405 and response.content_type == "application/json"


# ---------------------------------------------------------------------------------------
# incidents


def test_incidents_are_public_and_paginated(app, session):
    first = add_incident(session, "a", NOW - timedelta(hours=5), NOW - timedelta(hours=4), title="first",
                         public_title="Alpha was down", public_body="Summary for the public")
    session.add(IncidentUpdate(incident_id=first.id, status="investigating", body="looking",
                               created_at=NOW - timedelta(hours=5), display_at=NOW - timedelta(hours=5)))
    session.add(IncidentUpdate(incident_id=first.id, status="resolved", body="fixed",
                               created_at=NOW - timedelta(hours=4), display_at=NOW - timedelta(hours=4)))
    session.commit()
    secret = add_incident(session, "a", NOW - timedelta(hours=3), audience="operator", kind="operator", title="OPS ONLY")
    add_incident(session, "b", NOW - timedelta(hours=2), kind="latency", impact="minor")
    add_incident(session, "c", NOW - timedelta(hours=1))

    seen, path = [], "/api/v1/incidents?limit=2"
    while path:
        page = call(app, path)
        seen += page["incidents"]
        path = page["next_cursor"] and f"/api/v1/incidents?limit=2&cursor={page['next_cursor']}"
    assert [i["service"] for i in seen] == ["c", "b", "a"]
    alpha = seen[-1]
    assert alpha["name"] == "Alpha was down" and alpha["summary"] == "Summary for the public"
    assert [(u["status"], u["body"]) for u in alpha["updates"]] == [("investigating", "looking"), ("resolved", "fixed")]
    assert seen[1]["component_status"] == "degraded_performance" and seen[0]["component_status"] == "major_outage"
    assert call(app, f"/api/v1/incidents/{alpha['id']}")["incident"] == alpha
    assert call(app, f"/api/v1/incidents/{secret.id}", 404) == {"error": f"no incident '{secret.id}'"}
    assert [i["service"] for i in call(app, "/api/v1/incidents?service=b")["incidents"]] == ["b"]


# ---------------------------------------------------------------------------------------
# recommend


def recent(session, service_id: str, hour: datetime, *, quality: tuple[int, float] | None = None, **counts: int) -> None:
    add_rollup(session, rollup_hourly, service_id, "eu", hour, **counts)
    if quality:
        t = rollup_hourly
        session.execute(update(t).where(t.c.service_id == service_id, t.c.bucket_start == hour)
                        .values(quality_count=quality[0], quality_sum=quality[1]))
        session.commit()


def test_recommend_ranks_by_status_failures_latency_then_quality(app, session):
    this_hour, last_hour = DAY + timedelta(hours=12), DAY + timedelta(hours=11)  # the clock is 12:30
    for sid in "abcde":
        add_result(session, sid, "eu", "ok", NOW - timedelta(minutes=10))
    # a and b: no failures, the same latency; b's quality is higher (0.90 against 0.80)
    recent(session, "a", this_hour, ok=10, auth_error=5, h10=10, quality=(10, 8.0))  # operator outcomes do not count
    recent(session, "a", last_hour, ok=10, h10=10, quality=(10, 8.0))
    recent(session, "b", this_hour, ok=20, h10=20, quality=(20, 18.0))
    recent(session, "b", DAY + timedelta(hours=10), timeout=50)  # two hours ago: not recent
    # c: no failures either, but slower (bucket 12) with the best quality
    recent(session, "c", this_hour, ok=20, h12=20, quality=(20, 19.0))
    # d: fast, but 2 of 20 failed
    recent(session, "d", this_hour, ok=18, timeout=2, h05=18, quality=(18, 17.8))
    # e: the fastest and flawless, but degraded by an open public latency incident
    recent(session, "e", this_hour, ok=20, h01=20, quality=(20, 20.0))
    add_incident(session, "e", NOW - timedelta(minutes=20), kind="latency", impact="minor")
    # f: no data at all

    got = call(app, "/api/v1/recommend?group=G")
    assert [c["id"] for c in got["candidates"]] == ["b", "a", "c", "d", "e", "f"]
    assert [c["rank"] for c in got["candidates"]] == [1, 2, 3, 4, 5, 6]
    assert (got["group"], got["service"], got["status"]) == ("G", "b", "operational")
    assert got["reasons"][0] == "a higher mean quality in the last hour: 0.90 against 0.80 for a"
    by_id = {c["id"]: c for c in got["candidates"]}
    assert by_id["a"]["score"] == {"status_rank": 0, "runs": 20, "down_share": 0.0,
                                   "p95_ms": pytest.approx(100 * 2 ** (9.95 / 3)), "quality_mean": pytest.approx(0.8)}
    assert by_id["d"]["score"]["down_share"] == pytest.approx(0.1)
    assert "2 of 20 runs failed in the last hour (10.0%)" in by_id["d"]["reasons"]
    assert by_id["e"]["status"] == "degraded_performance" and by_id["e"]["score"]["status_rank"] == 1
    assert by_id["f"]["status"] == "unknown" and by_id["f"]["score"]["down_share"] is None
    assert "no runs in the last hour" in by_id["f"]["reasons"]
    assert "x" not in by_id  # another group

    # without b, a still wins over c on latency
    session.execute(update(rollup_hourly).where(rollup_hourly.c.service_id == "b").values(n_timeout=20, n_total=40))
    session.commit()
    got = call(app, "/api/v1/recommend?group=G")
    assert [c["id"] for c in got["candidates"]][:4] == ["a", "c", "d", "b"]
    assert got["reasons"][0].startswith("a lower p95 latency in the last hour:") and got["reasons"][0].endswith("for c")


def test_recommend_by_group_id_and_alone(app, session):
    from web.api_queries import group_id

    assert call(app, f"/api/v1/recommend?group={group_id('G')}")["group"] == "G"
    config = Config(services=[ServiceConfig(id="x", group="Only", provider="openai", canaries=["c"])])
    alone = create_app(config, engine=app.extensions["genstatus"].engine, testing=True)
    got = call(alone, "/api/v1/recommend?group=Only")
    assert got["service"] == "x" and got["reasons"][0] == "the only service in the group"


def test_insert_helper_matches_the_table(session):
    """The test's rollup rows hold what the store writes (n_total is the sum of the outcome counts)."""
    session.execute(insert(Service).values(id="s", name="s", group_name="", provider="openai"))
    recent(session, "s", DAY, ok=3, timeout=1, h02=4, quality=(3, 2.4))
    row = session.execute(rollup_hourly.select()).one()
    assert (row.n_total, row.n_ok, row.n_timeout, row.h02, row.quality_count) == (4, 3, 1, 4, 3)
