"""Public uptime from incident intervals: figures worked out by hand, then the queries on a real database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.enums import ComponentStatus
from tests.webdb import engine, session  # noqa: F401 - fixtures
from web.uptime import Interval, calendar, downtime_seconds, history, local_midnight, uptime_percent

MAJOR, PARTIAL = ComponentStatus.MAJOR_OUTAGE, ComponentStatus.PARTIAL_OUTAGE
DEGRADED, MAINTENANCE = ComponentStatus.DEGRADED_PERFORMANCE, ComponentStatus.UNDER_MAINTENANCE
DAY = datetime(2026, 11, 10, tzinfo=UTC)


def at(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


def span(status, start_h, end_h, incident_id=None) -> Interval:
    return Interval("svc", status, at(start_h), at(end_h) if end_h is not None else None, incident_id, "t")


@pytest.mark.parametrize("spans, expected_down_s", [
    ([span(MAJOR, 1, 3)], 7200),                                    # two hours of major outage
    ([span(PARTIAL, 2, 12)], 0.3 * 36000),                          # ten hours of partial outage at 0.3
    ([span(PARTIAL, 1, 4), span(MAJOR, 2, 3)], 3600 + 0.3 * 7200),  # the major hour is not counted twice
    ([span(MAJOR, 1, 3), span(MAJOR, 2, 4)], 3 * 3600),             # overlapping majors merge
    ([span(DEGRADED, 0, 24), span(MAINTENANCE, 3, 5)], 0),          # neither is downtime
    ([span(MAJOR, -5, 1)], 3600),                                   # clipped to the day
    ([span(MAJOR, 23, None)], 3600),                                # still open: clipped at the day's end
])
def test_downtime_by_hand(spans, expected_down_s):
    assert downtime_seconds(spans, DAY, DAY + timedelta(days=1)) == pytest.approx(expected_down_s)


def test_uptime_percent_of_a_window():
    assert uptime_percent([span(MAJOR, 0, 2.4)], DAY, DAY + timedelta(days=1)) == pytest.approx(90.0)
    assert uptime_percent([], DAY, DAY) is None


def test_history_days_bars_and_no_data():
    now = at(12)  # today is half over
    days = calendar(3, now, UTC)
    assert days == [date(2026, 11, 8), date(2026, 11, 9), date(2026, 11, 10)]
    incident = Interval("svc", MAJOR, at(-1), at(3), 7, "Outage")  # 23:00 the day before -> 03:00 today
    got = history([incident], days, now, UTC, with_results={date(2026, 11, 9), date(2026, 11, 10)})
    first, second, today = got.days
    assert first.uptime is None and first.level == "none"  # before the service had results: no data
    assert second.uptime == pytest.approx(100 * (1 - 3600 / 86400)) and second.level == "major_outage"
    assert today.uptime == pytest.approx(100 * (1 - 3 * 3600 / (12 * 3600)))  # today counts until now
    assert [i.id for i in today.incidents] == [7]
    assert got.uptime == pytest.approx(100 * (1 - 4 * 3600 / (36 * 3600)))  # over the 1.5 days with data


def test_a_day_with_an_incident_but_no_results_still_counts():
    got = history([span(PARTIAL, 1, 2)], [date(2026, 11, 10)], at(24), UTC, with_results=set())
    assert got.days[0].uptime == pytest.approx(100 * (1 - 0.3 * 3600 / 86400))
    assert got.days[0].level == "partial_outage"


def test_days_follow_the_site_timezone_including_a_short_dst_day():
    berlin = ZoneInfo("Europe/Berlin")
    # 2026-03-29 has 23 hours in Berlin; a one-hour outage is 1/23 of it
    day = date(2026, 3, 29)
    start = local_midnight(day, berlin)
    assert start == datetime(2026, 3, 28, 23, tzinfo=UTC)
    outage = Interval("svc", MAJOR, start + timedelta(hours=5), start + timedelta(hours=6))
    got = history([outage], [day], start + timedelta(days=2), berlin, with_results={day})
    assert got.days[0].uptime == pytest.approx(100 * (1 - 1 / 23))


def test_queries_read_public_incidents_maintenance_and_result_days(session):
    from monitor.store.models import Incident, Maintenance, rollup_daily
    from tests.webdb import add_rollup, add_service
    from web.uptime import days_with_results, intervals

    add_service(session, "svc")
    add_service(session, "other")
    session.add_all([
        Incident(service_id="svc", kind="outage", audience="public", impact="major", status="resolved",
                 title="Down", public_title="Image generation down", started_at=at(1), detected_at=at(1),
                 resolved_at=at(2)),
        Incident(service_id="svc", kind="outage", audience="operator", impact="major", status="investigating",
                 title="Our key", started_at=at(1), detected_at=at(1)),  # operator-only: never public uptime
        Incident(service_id="svc", kind="outage", audience="public", impact="minor", status="resolved",
                 title="Long ago", started_at=at(-100), detected_at=at(-100), resolved_at=at(-90)),
        Maintenance(title="Upgrade", body="", services=["other"], starts_at=at(4), ends_at=at(5)),
        Maintenance(title="Done early", body="", services=None, starts_at=at(6), ends_at=at(7), status="completed"),
    ])
    add_rollup(session, rollup_daily, "svc", "eu", DAY, ok=10)
    session.commit()
    found = intervals(session, ["svc", "other"], DAY, DAY + timedelta(days=1))
    assert [(i.status, i.title, i.incident_id is not None) for i in found["svc"]] == [
        (MAJOR, "Image generation down", True)]
    assert [(i.status, i.start, i.end) for i in found["other"]] == [(MAINTENANCE, at(4), at(5))]
    days = [date(2026, 11, 9), date(2026, 11, 10)]
    assert days_with_results(session, ["svc", "other"], days, UTC) == {"svc": {date(2026, 11, 10)}, "other": set()}


def test_the_page_indicator_follows_statuspage():
    from monitor.enums import Impact
    from web.queries import ServiceState
    from web.snapshot import indicator

    def states(*statuses):
        return [ServiceState(s, {}, None) for s in statuses]

    op = ComponentStatus.OPERATIONAL
    assert indicator(states(op, op)).description == "All Systems Operational"
    assert indicator(states(op, DEGRADED)).impact is Impact.MINOR
    assert indicator(states(op, PARTIAL, DEGRADED)).impact is Impact.MAJOR
    assert indicator(states(op, op, MAJOR)).impact is Impact.MAJOR  # one of three: not yet critical
    assert indicator(states(op, MAJOR)).impact is Impact.CRITICAL
    assert indicator(states(op, MAINTENANCE)) == indicator(states(MAINTENANCE))
    assert indicator(states(op, MAINTENANCE)).description == "Service Under Maintenance"
    assert indicator(states(None, None)).description == "No Data Yet"


def check_latest_by_region(session):
    """Regions named by the hourly rollups are looked up by index; a service without rollups is scanned."""
    from monitor.store.models import rollup_hourly
    from tests.webdb import add_result, add_rollup, add_service
    from web.queries import latest_by_region

    now = datetime.now(UTC).replace(microsecond=0)
    hour = now.replace(minute=0, second=0)
    for sid in ("a", "b"):
        add_service(session, sid)
    for sid in ("a", "b"):
        add_result(session, sid, "eu", "ok", now - timedelta(minutes=30))
        add_result(session, sid, "eu", "timeout", now - timedelta(minutes=20))
        add_result(session, sid, "eu", "auth_error", now - timedelta(minutes=10))  # operator-only: skipped
        add_result(session, sid, "us", "ok", now - timedelta(minutes=5))
        add_result(session, sid, "us", "ok", now - timedelta(minutes=5), kind="health")  # not a public kind
        add_result(session, sid, "ap", "ok", now - timedelta(days=2))  # outside the window
    for region in ("eu", "us", "ap"):
        add_rollup(session, rollup_hourly, "a", region, hour - timedelta(hours=1), ok=1)
    found = sorted(latest_by_region(session, ["a", "b"], now - timedelta(hours=24)))
    expected = [("eu", "timeout", now - timedelta(minutes=20)), ("us", "ok", now - timedelta(minutes=5))]
    assert found == [(sid, *row) for sid in ("a", "b") for row in expected]


def test_latest_result_per_region_through_the_rollups_and_without_them(session):
    """Regions named by the hourly rollups are looked up by index; a service without rollups is scanned."""
    check_latest_by_region(session)


@pytest.mark.postgres
def test_latest_result_per_region_on_postgresql(pg_engine):
    from monitor.store.db import session_factory
    from monitor.store.models import Base

    Base.metadata.create_all(pg_engine)
    with session_factory(pg_engine)() as session:
        check_latest_by_region(session)
