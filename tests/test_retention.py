"""The retention job: old raw results, thumbnails, expired kept images and old alert events go, in
short bounded batches; young rows stay; rollups (and so uptime) are never touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.enums import Outcome, ProbeKind
from monitor.store.models import AlertOutbox, ResultImageRow, rollup_daily, rollup_hourly
from monitor.store.retention import RetentionSettings, raw_results_cutoff, run_retention
from tests.test_store import CONFIG, engine, raw_rows, result, rollups, store  # noqa: F401 - engine, store: fixtures
from web.queries import daily_uptime

#: the clock of the run; results are stored relative to it (the store prunes kept images by the real clock)
NOW = datetime.now(UTC).replace(microsecond=0)
DEFAULTS = RetentionSettings()


def markers(engine: Engine) -> list[str | None]:
    return sorted(r.request_id for r in raw_rows(engine))


def image_markers(engine: Engine) -> dict[str, bool]:
    """request_id of each result that has an image row -> whether its full image is still there."""
    from monitor.store.models import ProbeResultRow

    with engine.connect() as connection:
        rows = connection.execute(select(ProbeResultRow.request_id, ResultImageRow.image).join(
            ResultImageRow, ResultImageRow.result_id == ProbeResultRow.id))
        return {marker: image is not None for marker, image in rows}


def with_thumbnail(marker: str, at: datetime, keep_until: datetime | None = None):
    r = result(at=at, marker=marker)
    r.thumbnail = b"thumb-" + marker.encode()
    if keep_until is not None:
        r.kept_image, r.keep_until, r.image_format = b"full-" + marker.encode(), keep_until, "png"
    return r


def test_defaults_and_config_section():
    assert (DEFAULTS.raw_results, DEFAULTS.thumbnails, DEFAULTS.thumbnails_kept) == (
        timedelta(days=30), timedelta(days=7), 12)
    assert (DEFAULTS.delivered_alerts, DEFAULTS.undelivered_alerts) == (timedelta(days=30), timedelta(days=90))
    config = Config.model_validate({"retention": {"raw_results": "90d", "thumbnails_kept": 3}})
    assert config.retention.raw_results == timedelta(days=90) and config.retention.thumbnails_kept == 3
    assert Config.model_validate({}).retention == DEFAULTS
    with pytest.raises(ValueError, match="at least 2d"):
        RetentionSettings(raw_results="1h")
    with pytest.raises(ValueError):
        RetentionSettings(raw_result="30d")  # unknown key


def test_raw_results_cutoff_counts_from_the_end_of_the_day():
    now = datetime(2026, 12, 31, 10, 0, tzinfo=UTC)
    assert raw_results_cutoff(DEFAULTS, now) == datetime(2026, 12, 1, tzinfo=UTC)  # Nov 30 ended 30d10h ago


def test_old_raw_results_go_young_stay_and_rollups_are_untouched(store, engine):
    cutoff = raw_results_cutoff(DEFAULTS, NOW)
    outcomes = [Outcome.OK, Outcome.TIMEOUT, Outcome.SLOW, Outcome.SERVER_ERROR]
    for i in range(6):
        store.record(result(outcomes[i % 4], at=cutoff - timedelta(days=10, minutes=i), marker=f"old{i}", total=100.0 * i))
    store.record(result(at=cutoff - timedelta(seconds=1), marker="old-edge"))
    store.record(result(kind=ProbeKind.HEALTH, at=cutoff - timedelta(days=3), marker="old-health"))
    store.record(result(at=cutoff, marker="young-edge"))
    store.record(result(Outcome.TIMEOUT, at=NOW - timedelta(days=2), marker="young"))
    store.record(result(at=NOW, marker="now"))
    hourly, daily = rollups(engine, rollup_hourly), rollups(engine, rollup_daily)
    with Session(engine) as session:
        uptime = daily_uptime(session, ["dalle3"], days=60, today=NOW.date())

    counts = run_retention(engine, DEFAULTS, NOW)
    assert counts == {"kept_images": 0, "result_images": 0, "probe_results": 8, "alert_outbox": 0}
    assert markers(engine) == ["now", "young", "young-edge"]
    assert rollups(engine, rollup_hourly) == hourly and rollups(engine, rollup_daily) == daily
    with Session(engine) as session:
        assert daily_uptime(session, ["dalle3"], days=60, today=NOW.date()) == uptime
    assert uptime["dalle3"].uptime is not None and sum(d.counted for d in uptime["dalle3"].days) == 10

    assert run_retention(engine, DEFAULTS, NOW)["probe_results"] == 0  # idempotent


def test_thumbnails_beyond_the_newest_n_and_old_go(store, engine):
    settings = RetentionSettings(thumbnails_kept=2)
    for i in range(4):
        store.record(with_thumbnail(f"old{i}", NOW - timedelta(days=20) + timedelta(minutes=i)))
    store.record(with_thumbnail("kept-image", NOW - timedelta(days=19), keep_until=NOW + timedelta(days=30)))
    store.record(with_thumbnail("recent", NOW - timedelta(days=3)))
    store.record(with_thumbnail("fresh", NOW - timedelta(hours=1)))
    other = with_thumbnail("other-service", NOW - timedelta(days=20))
    other.service = "sdxl"
    store.record(other)

    counts = run_retention(engine, settings, NOW)
    # dalle3's newest two (fresh, recent) stay, and the kept image (within its keep_until); its four
    # old thumbnails go; sdxl's single thumbnail is its newest
    assert counts["result_images"] == 4 and counts["probe_results"] == 0
    assert image_markers(engine) == {"fresh": False, "recent": False, "kept-image": True, "other-service": False}
    assert len(raw_rows(engine)) == 8  # raw rows are young: only their thumbnails went

    # 40 days on: the thumbnail-less raw rows go; those whose thumbnail is still kept stay with it
    later = run_retention(engine, settings, NOW + timedelta(days=40))
    assert later["kept_images"] == 1  # keep_until passed: the full image is cleared ...
    assert later["result_images"] == 1  # ... and its thumbnail is now beyond the newest two and old
    assert later["probe_results"] == 5
    assert markers(engine) == ["fresh", "other-service", "recent"]
    assert image_markers(engine) == {"fresh": False, "recent": False, "other-service": False}


def test_expired_kept_images_are_cleared_thumbnails_stay(store, engine):
    store.record(with_thumbnail("soon", NOW - timedelta(hours=2), keep_until=NOW + timedelta(hours=1)))
    store.record(with_thumbnail("later", NOW - timedelta(hours=1), keep_until=NOW + timedelta(days=10)))
    assert run_retention(engine, DEFAULTS, NOW)["kept_images"] == 0
    counts = run_retention(engine, DEFAULTS, NOW + timedelta(days=1))
    assert counts == {"kept_images": 1, "result_images": 0, "probe_results": 0, "alert_outbox": 0}
    assert image_markers(engine) == {"soon": False, "later": True}


def test_old_alert_events_go(store, engine):
    def alert(title: str, created: timedelta, delivered: timedelta | None) -> AlertOutbox:
        return AlertOutbox(created_at=NOW - created, delivered_at=None if delivered is None else NOW - delivered,
                           event="open", audience="public", impact="minor", title=title, body="", attempts=1)

    with Session(engine) as session, session.begin():
        session.add_all([
            alert("delivered-old", timedelta(days=45), timedelta(days=31)),
            alert("delivered-young", timedelta(days=45), timedelta(days=29)),
            alert("undelivered-old", timedelta(days=91), None),
            alert("undelivered-young", timedelta(days=60), None),
            alert("pending", timedelta(minutes=1), None),
        ])
    assert run_retention(engine, DEFAULTS, NOW)["alert_outbox"] == 2
    with Session(engine) as session:
        titles = sorted(session.scalars(select(AlertOutbox.title)))
    assert titles == ["delivered-young", "pending", "undelivered-young"]


def test_batches_are_bounded_one_transaction_each(store, engine):
    for i in range(11):
        store.record(result(at=NOW - timedelta(days=60, minutes=i), marker=f"old{i}"))
    store.record(result(at=NOW, marker="young"))
    hourly = rollups(engine)
    log: list[tuple[str, int]] = []

    def begin(conn):
        log.append(("begin", 0))

    def commit(conn):
        log.append(("commit", 0))

    def executed(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("DELETE FROM PROBE_RESULTS"):
            log.append(("delete", cursor.rowcount))

    listeners = [("begin", begin), ("commit", commit), ("after_cursor_execute", executed)]
    for name, fn in listeners:
        event.listen(engine, name, fn)
    try:
        counts = run_retention(engine, DEFAULTS, NOW, batch_size=3)
    finally:
        for name, fn in listeners:
            event.remove(engine, name, fn)

    assert counts["probe_results"] == 11 and markers(engine) == ["young"]
    deletes = [n for kind, n in log if kind == "delete"]
    assert deletes == [3, 3, 3, 2]
    transactions = "".join({"begin": "(", "commit": ")", "delete": "d"}[kind] for kind, _ in log)
    assert "dd" not in transactions.replace("(", "").replace(")", "|")  # never two batches in one transaction
    assert transactions.count("(d)") == 4
    assert rollups(engine) == hourly


def test_rejects_a_naive_clock(engine):
    with pytest.raises(ValueError, match="timezone"):
        run_retention(engine, DEFAULTS, datetime(2026, 1, 1))


def test_the_coordinator_runs_retention_once_an_hour(store, engine):
    from monitor.engine.coordinator import RETENTION_EVERY_S, Coordinator

    cutoff = raw_results_cutoff(DEFAULTS, NOW)
    store.record(result(at=cutoff - timedelta(days=1), marker="old"))
    store.record(result(at=NOW - timedelta(minutes=1), marker="new"))
    coordinator = Coordinator(engine, Config.model_validate(CONFIG))
    coordinator.tick(NOW)
    assert markers(engine) == ["new"]
    store.record(result(at=cutoff - timedelta(days=2), marker="late"))
    coordinator.tick(NOW + timedelta(seconds=RETENTION_EVERY_S / 2))  # not due yet
    assert markers(engine) == ["late", "new"]
    coordinator.tick(NOW + timedelta(seconds=RETENTION_EVERY_S))
    assert markers(engine) == ["new"]
