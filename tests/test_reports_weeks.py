"""ISO weeks in the site timezone: bounds in UTC (across DST changes), previous weeks, the last completed week."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from monitor.reports.weeks import Week, day_bounds, last_completed_week, parse_week, week_of


def test_a_utc_week_runs_monday_to_monday():
    start, end = parse_week("2026-W47").bounds("UTC")
    assert (start, end) == (datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC))


def test_a_berlin_week_starts_at_local_midnight():
    start, end = parse_week("2026-W47").bounds("Europe/Berlin")  # CET, UTC+1
    assert (start, end) == (datetime(2026, 11, 15, 23, tzinfo=UTC), datetime(2026, 11, 22, 23, tzinfo=UTC))


def test_the_week_summer_time_ends_has_169_hours():
    # 2026-10-25 (Sunday of W43): clocks go back from 03:00 CEST to 02:00 CET
    start, end = parse_week("2026-W43").bounds("Europe/Berlin")
    assert start == datetime(2026, 10, 18, 22, tzinfo=UTC)  # Monday 00:00 CEST
    assert end == datetime(2026, 10, 25, 23, tzinfo=UTC)  # Monday 00:00 CET
    assert end - start == timedelta(hours=169)
    assert day_bounds(date(2026, 10, 25), "Europe/Berlin") == (datetime(2026, 10, 24, 22, tzinfo=UTC),
                                                                datetime(2026, 10, 25, 23, tzinfo=UTC))


def test_the_week_summer_time_starts_has_167_hours():
    # 2026-03-29 (Sunday of W13): clocks go forward from 02:00 CET to 03:00 CEST
    start, end = parse_week("2026-W13").bounds("Europe/Berlin")
    assert (start, end) == (datetime(2026, 3, 22, 23, tzinfo=UTC), datetime(2026, 3, 29, 22, tzinfo=UTC))
    first, last = day_bounds(date(2026, 3, 29), "Europe/Berlin")
    assert last - first == timedelta(hours=23)


def test_days_are_the_seven_local_dates():
    assert parse_week("2026-W01").days() == [date(2025, 12, 29) + timedelta(days=i) for i in range(7)]


@pytest.mark.parametrize(("week", "previous"), [("2026-W47", "2026-W46"), ("2026-W01", "2025-W52"),
                                                ("2027-W01", "2026-W53"), ("2021-W01", "2020-W53")])
def test_previous_week_crosses_years_with_53_weeks(week, previous):
    assert str(parse_week(week).previous()) == previous
    assert str(parse_week(previous).next()) == week


@pytest.mark.parametrize("text", ["2026-47", "2026-W7", "2026-W00", "2025-W53", "2026-W54", "W47", "", "2026-w47x"])
def test_what_is_not_an_iso_week_is_refused(text):
    with pytest.raises(ValueError):
        parse_week(text)


def test_parse_week_round_trips_and_trims():
    assert parse_week(" 2026-W53 ") == Week(2026, 53)
    assert str(Week(2026, 5)) == "2026-W05"


def test_the_last_completed_week_is_read_in_the_site_timezone():
    # Monday 00:30 in Berlin is still Sunday 23:30 in UTC: in Berlin week 47 is over, in UTC it is not
    moment = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    assert str(last_completed_week(moment, "Europe/Berlin")) == "2026-W47"
    assert str(last_completed_week(moment, "UTC")) == "2026-W46"
    assert str(week_of(moment, "Europe/Berlin")) == "2026-W48"
    # the scheduled report time, Monday 09:00 local
    assert str(last_completed_week(datetime(2026, 11, 23, 8, tzinfo=UTC), "Europe/Berlin")) == "2026-W47"
    # far east: Monday 08:00 in Tokyo is Sunday 23:00 UTC
    assert str(last_completed_week(datetime(2026, 11, 22, 23, tzinfo=UTC), "Asia/Tokyo")) == "2026-W47"


def test_a_naive_moment_is_refused():
    with pytest.raises(ValueError):
        week_of(datetime(2026, 11, 23, 8), "UTC")
