"""The outage spool: append-only fsynced JSON Lines, in-order replay, duplicates stored once, a size
cap that warns, torn last lines skipped (including after a real SIGKILL mid-append)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from monitor.config import Config
from monitor.enums import Outcome, ProbeKind
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.models import ProbeResultRow
from monitor.store.results import ResultStore
from monitor.store.spool import FileSpool, encode_line, record_key, result_from_dict, spool_record
from tests.test_store import CONFIG, T0, raw_rows, result, rollups

ROOT = Path(__file__).resolve().parents[1]


def markers(engine: Engine) -> list[str | None]:
    return [r.request_id for r in raw_rows(engine)]


def store_logs(caplog: pytest.LogCaptureFixture, level: int = logging.DEBUG) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "genstatus.store" and r.levelno >= level]


def spooled_markers(path: Path) -> list[str]:
    return [json.loads(line)["request_id"] for line in path.read_text().splitlines()]


class VanishingSqlite:
    """An SQLite database whose directory can be moved away (unreachable) and back."""

    def __init__(self, root: Path) -> None:
        self.home, self.away = root / "db", root / "db-away"
        self.engine = make_engine(f"sqlite:///{self.home / 'genstatus.db'}")
        upgrade(self.engine)
        ResultStore(self.engine).sync_catalog(Config.model_validate(CONFIG))

    def vanish(self) -> None:
        self.engine.dispose()
        self.home.rename(self.away)

    def restore(self) -> None:
        self.away.rename(self.home)


@pytest.fixture
def db(tmp_path: Path):
    database = VanishingSqlite(tmp_path)
    yield database
    database.engine.dispose()


# -- records -----------------------------------------------------------------------------


def test_result_round_trips_through_dict():
    original = result(Outcome.SLOW, quality=0.5, cost=0.02, marker="x")
    original.hashes = {"phash": "00ff"}
    original.quality_flags = ["noise"]
    again = result_from_dict(json.loads(json.dumps(original.to_dict())))
    assert again == original
    assert isinstance(again.kind, ProbeKind) and isinstance(again.outcome, Outcome)


def test_spool_record_carries_images_and_key():
    original = result(marker="x")
    original.thumbnail, original.kept_image, original.keep_until = b"\x00thumb\n", b"full", T0
    record = json.loads(encode_line(spool_record(original, "k1")))
    assert record_key(record) == "k1" and record_key({"request_id": "old"}) is None
    again = result_from_dict(record)
    assert (again.thumbnail, again.kept_image, again.keep_until) == (b"\x00thumb\n", b"full", T0)


#: a spool line as written while the record was ``probes.base.ProbeResult`` (before ``ResultRecord``)
OLD_LINE = (
    '{"service":"dalle3","canary":"still-life","region":"eu-west","kind":"canary",'
    '"started_at":"2026-11-02T10:00:00Z","finished_at":"2026-11-02T10:00:03Z","outcome":"degraded_quality",'
    '"latency_ms":{"submit":12.5,"queue":null,"generation":2900.0,"download":80.0,"total":3000.0},'
    '"http_status":200,"request_id":"req-old","error_detail":"mostly one colour","image_bytes":1234,'
    '"image_format":"PNG","image_width":64,"image_height":64,'
    '"image_sha256":"abababababababababababababababababababababababababababababababab",'
    '"hashes":{"phash":"00ff00ff00ff00ff","dhash":"0f0f0f0f0f0f0f0f"},"quality_score":0.2,'
    '"quality_verdict":"degraded","quality_flags":["blank"],"quality_reasons":["mostly one colour"],'
    '"cost":0.04,"model_version":"dall-e-3","revised_prompt":"an apple","seed":1234,'
    '"_thumbnail":"UklGRnRodW1i","_kept_image":"iVBOR2Z1bGw=","_keep_until":"2026-11-04T10:00:00+00:00",'
    '"_key":"0123456789abcdef0123456789abcdef"}'
)


def test_spool_lines_from_before_result_record_still_replay():
    record = json.loads(OLD_LINE)
    again = result_from_dict(record)
    public = {k: v for k, v in record.items() if not k.startswith("_")}
    assert again.to_dict() == public and list(again.to_dict()) == list(public)  # same keys, same order
    assert (again.thumbnail, again.kept_image, again.keep_until) == (b"RIFFthumb", b"\x89PNGfull", T0 + timedelta(days=2))
    assert record_key(record) == "0123456789abcdef0123456789abcdef"
    assert json.loads(encode_line(spool_record(again, record_key(record)))) == record  # written back the same


# -- the file, on its own ----------------------------------------------------------------


def test_file_spool_appends_fsynced_lines_and_replays_in_order(tmp_path, monkeypatch):
    path = tmp_path / "spool.jsonl"
    spool = FileSpool(path)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    spool.append([{"n": i} for i in range(5)])
    assert len(spool) == 5 and [json.loads(line)["n"] for line in path.read_text().splitlines()] == list(range(5))
    assert len(synced) >= 5  # one fsync per appended record (plus the directory when the file is created)
    before = path.read_bytes()

    assert spool.head(2) == [{"n": 0}, {"n": 1}]
    spool.drop(2)
    assert path.read_bytes() == before  # append-only: replay moves the offset, never rewrites the file
    assert int(spool.offset_path.read_text()) == len(encode_line({"n": 0})) + len(encode_line({"n": 1}))

    reopened = FileSpool(path)  # a restart resumes at the offset
    assert len(reopened) == 3 and reopened.head(10) == [{"n": 2}, {"n": 3}, {"n": 4}]
    reopened.append([{"n": 5}])
    assert reopened.head(10) == [{"n": i} for i in range(2, 6)]
    reopened.drop(4)
    assert len(reopened) == 0 and not path.exists() and not reopened.offset_path.exists()  # drained: removed


def test_a_stale_offset_replays_from_the_start(tmp_path, caplog):
    path = tmp_path / "spool.jsonl"
    FileSpool(path).append([{"n": 0}, {"n": 1}])
    (tmp_path / "spool.jsonl.offset").write_text("5")  # not at a line boundary
    assert FileSpool(path).head(10) == [{"n": 0}, {"n": 1}]
    assert any("replaying from the start" in m for m in store_logs(caplog))


def test_torn_last_line_is_skipped_and_appends_start_afresh(tmp_path, caplog):
    path = tmp_path / "spool.jsonl"
    FileSpool(path).append([{"n": 0}, {"n": 1}])
    with path.open("ab") as spool:
        spool.write(encode_line({"n": 2, "pad": "x" * 100})[:40])  # killed mid-append
    caplog.set_level(logging.WARNING, logger="genstatus.store")
    reopened = FileSpool(path)
    reopened.append([{"n": 3}])
    assert reopened.head(10) == [{"n": 0}, {"n": 1}, {"n": 3}]
    reopened.drop(3)
    assert len(reopened) == 0 and not path.exists()
    warnings = store_logs(caplog, logging.WARNING)
    assert any("torn" in m for m in warnings) and any("skipped" in m for m in warnings)


def test_only_bad_lines_left_are_consumed(tmp_path):
    path = tmp_path / "spool.jsonl"
    path.write_bytes(b'{"n": 0}\nnot json\n')
    spool = FileSpool(path)
    assert spool.head(1) == [{"n": 0}]
    spool.drop(1)
    assert spool.head(1) == [] and len(spool) == 0 and not path.exists()


# -- the store through outages -----------------------------------------------------------


def test_outage_spools_to_file_and_replays_in_order(db, tmp_path, caplog):
    spool = tmp_path / "spool" / "results.jsonl"
    store = ResultStore(db.engine, spool)
    caplog.set_level(logging.INFO, logger="genstatus.store")

    store.record(result(marker="r0"))
    db.vanish()
    for i in range(1, 6):
        store.record(result(Outcome.TIMEOUT, at=T0 + timedelta(minutes=i), marker=f"r{i}"))
    store.record_many([result(at=T0 + timedelta(minutes=6), marker="r6")])
    assert store.spooled == 6
    assert spooled_markers(spool) == [f"r{i}" for i in range(1, 7)]
    assert len(store_logs(caplog)) == 1 and "spooling" in store_logs(caplog)[0]

    assert store.flush_spool() == 0  # still down: nothing lost, nothing logged again
    assert store.spooled == 6 and len(store_logs(caplog)) == 1

    db.restore()
    store.record(result(marker="r7"))
    assert markers(db.engine) == [f"r{i}" for i in range(8)]
    assert not spool.exists() and store.spooled == 0
    assert "replayed 6" in store_logs(caplog)[-1]
    (row,) = rollups(db.engine).values()
    assert (row["n_total"], row["n_timeout"], row["n_ok"]) == (8, 5, 3)
    with db.engine.connect() as connection:
        keys = connection.scalars(select(ProbeResultRow.idempotency_key)).all()
    assert len(set(keys)) == 8 and all(len(k) == 32 for k in keys)  # every row has its own key


def test_spool_file_survives_a_restart(db, tmp_path):
    spool = tmp_path / "results.jsonl"
    db.vanish()
    ResultStore(db.engine, spool).record(result(marker="before-restart"))
    assert spool.exists()
    db.restore()
    restarted = ResultStore(db.engine, spool)
    assert restarted.spooled == 1
    restarted.record(result(marker="after-restart"))
    assert markers(db.engine) == ["before-restart", "after-restart"]


def test_a_batch_replayed_twice_is_stored_once(db, tmp_path, caplog):
    """The process dies after a replayed batch committed but before the offset advanced."""
    spool = tmp_path / "results.jsonl"
    store = ResultStore(db.engine, spool)
    db.vanish()
    for i in range(3):
        store.record(result(at=T0 + timedelta(minutes=i), marker=f"r{i}"))
    saved = tmp_path / "copy.jsonl"
    shutil.copy(spool, saved)
    db.restore()
    assert store.flush_spool() == 3 and not spool.exists()
    shutil.copy(saved, spool)  # as if the offset had never moved
    with spool.open("ab") as out:  # and the middle record appended twice, for good measure
        out.write(saved.read_text().splitlines(keepends=True)[1].encode())

    caplog.set_level(logging.INFO, logger="genstatus.store")
    again = ResultStore(db.engine, spool)
    assert again.spooled == 4
    again.record(result(at=T0 + timedelta(minutes=9), marker="r3"))
    assert markers(db.engine) == ["r0", "r1", "r2", "r3"]
    assert not spool.exists() and again.spooled == 0
    (row,) = rollups(db.engine).values()
    assert row["n_total"] == 4  # the rollups did not count the duplicates either


def test_size_cap_drops_new_results_with_one_warning(db, tmp_path, caplog):
    spool = tmp_path / "results.jsonl"
    line = len(encode_line(spool_record(result(marker="r0"), "0" * 32)))
    store = ResultStore(db.engine, spool, spool_max_bytes=3 * line + line // 2)
    caplog.set_level(logging.INFO, logger="genstatus.store")
    db.vanish()
    for i in range(7):
        store.record(result(marker=f"r{i}"))
    assert store.spooled == 3 and spooled_markers(spool) == ["r0", "r1", "r2"]
    assert spool.stat().st_size <= 3 * line + line // 2
    full = [m for m in store_logs(caplog, logging.WARNING) if "full" in m]
    assert len(full) == 1 and "dropped" in full[0]

    db.restore()
    store.record(result(marker="r7"))
    assert markers(db.engine) == ["r0", "r1", "r2", "r7"]
    lost = [m for m in store_logs(caplog, logging.WARNING) if "lost" in m]
    assert len(lost) == 1 and lost[0].startswith("4 results were lost")

    db.vanish()  # a second outage warns again, with its own count
    for i in range(8, 13):
        store.record(result(marker=f"r{i}"))
    db.restore()
    assert store.flush_spool() == 3
    lost = [m for m in store_logs(caplog, logging.WARNING) if "lost" in m]
    assert len(lost) == 2 and lost[1].startswith("2 results were lost")


def test_memory_spool_is_bounded_and_loud(db, caplog):
    store = ResultStore(db.engine, memory_limit=3)
    caplog.set_level(logging.INFO, logger="genstatus.store")
    db.vanish()
    for i in range(5):
        store.record(result(marker=f"r{i}"))
    assert store.spooled == 3
    errors = [r for r in caplog.records if r.name == "genstatus.store" and r.levelno >= logging.ERROR]
    assert len(errors) == 2 and "memory" in errors[0].getMessage() and "dropping" in errors[1].getMessage()
    db.restore()
    assert store.flush_spool() == 3
    assert markers(db.engine) == ["r2", "r3", "r4"]


def test_rejected_spooled_result_does_not_block_the_rest(db, tmp_path, caplog):
    store = ResultStore(db.engine, tmp_path / "spool.jsonl")
    db.vanish()
    store.record_many([result(marker="a"), result(service="gone", marker="bad"), result(marker="b")])
    db.restore()
    assert store.flush_spool() == 3
    assert markers(db.engine) == ["a", "b"]
    assert any("rejected" in message for message in store_logs(caplog))


def test_spool_lines_from_before_keys_still_replay(db, tmp_path):
    spool = tmp_path / "spool.jsonl"
    spool.write_text(json.dumps(result(marker="old").to_dict()) + "\n")
    store = ResultStore(db.engine, spool)
    assert store.flush_spool() == 1 and markers(db.engine) == ["old"]


@pytest.mark.postgres
def test_postgres_outage_spools_and_replays(postgres_cluster, pg_engine, tmp_path):
    upgrade(pg_engine)
    store = ResultStore(pg_engine, tmp_path / "spool.jsonl")
    store.sync_catalog(Config.model_validate(CONFIG))
    store.record(result(marker="r0"))
    postgres_cluster.stop()
    try:
        for i in range(1, 4):
            store.record(result(at=T0 + timedelta(minutes=i), marker=f"r{i}"))
        assert store.spooled == 3
    finally:
        postgres_cluster.start()
    store.record(result(marker="r4"))
    assert markers(pg_engine) == ["r0", "r1", "r2", "r3", "r4"]
    assert store.spooled == 0
    (row,) = rollups(pg_engine).values()
    assert row["n_total"] == 5


# -- a real crash ------------------------------------------------------------------------

APPENDER = """
import sys
from datetime import UTC, datetime, timedelta
from monitor.enums import Outcome, ProbeKind
from monitor.store.spool import FileSpool, new_key, spool_record
from monitor.store.record import ResultRecord

spool = FileSpool(sys.argv[1])
payload = bytes(range(256)) * (int(sys.argv[2]) // 256)
start = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
i = 0
while True:
    at = start + timedelta(seconds=i)
    r = ResultRecord(service="dalle3", canary="still-life", region="eu-west", kind=ProbeKind.CANARY, started_at=at,
                     finished_at=at, outcome=Outcome.OK, request_id=f"r{i}")
    r.thumbnail = payload
    spool.append([spool_record(r, new_key())])
    i += 1
"""


def _kill_mid_append(path: Path, payload: int, deadline: float) -> bool:
    """Run the appender until it has written a few records, then SIGKILL it -- preferably while the
    file ends in the middle of a line.  Returns whether the file was left with a torn last line."""
    child = subprocess.Popen([sys.executable, "-c", APPENDER, str(path), str(payload)], cwd=ROOT,
                             stderr=subprocess.PIPE)
    try:
        with open_when_created(path, child) as spool:
            while time.monotonic() < deadline and child.poll() is None:
                size = os.fstat(spool.fileno()).st_size
                if size > 5 * payload:  # three lines (base64) and more
                    spool.seek(size - 1)
                    if spool.read(1) != b"\n":  # an append is under way: kill it now
                        break
    finally:
        child.send_signal(signal.SIGKILL)
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, stderr.decode()
    return not path.read_bytes().endswith(b"\n")


class open_when_created:
    def __init__(self, path: Path, child: subprocess.Popen) -> None:
        self.path, self.child = path, child

    def __enter__(self):
        while not self.path.exists():
            assert self.child.poll() is None, self.child.stderr.read().decode()
            time.sleep(0.001)
        self.file = self.path.open("rb")
        return self.file

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def test_sigkill_mid_append_replays_every_complete_line(db, tmp_path, caplog):
    """A real process appending in a loop is SIGKILLed; every complete line replays, in order, and
    the torn one is skipped with a warning.  (Retries until the kill lands mid-write.)"""
    deadline = time.monotonic() + 60
    for attempt in range(50):
        spool = tmp_path / f"spool-{attempt}.jsonl"
        if _kill_mid_append(spool, 4 * 1024 * 1024, deadline) or time.monotonic() > deadline:
            break
    data = spool.read_bytes()
    *complete, tail = data.split(b"\n")
    assert tail, "the kill never landed in the middle of an append (the file always ended with a newline)"
    expected = [json.loads(line)["request_id"] for line in complete]
    assert len(expected) >= 3, attempt
    assert expected == [f"r{i}" for i in range(len(expected))]

    caplog.set_level(logging.WARNING, logger="genstatus.store")
    store = ResultStore(db.engine, spool)
    assert store.spooled == len(expected) + 1  # the torn line counts until replay skips it
    assert store.flush_spool() == len(expected)
    assert markers(db.engine) == expected and store.spooled == 0 and not spool.exists()
    warnings = store_logs(caplog, logging.WARNING)
    assert any("torn" in m for m in warnings)
    assert any("skipped" in m and "not a complete record" in m for m in warnings)


def test_a_spool_too_small_for_one_result_still_reports_the_loss(db, tmp_path, caplog):
    store = ResultStore(db.engine, tmp_path / "spool.jsonl", spool_max_bytes=10)
    caplog.set_level(logging.INFO, logger="genstatus.store")
    db.vanish()
    store.record(result(marker="lost1"))
    store.record(result(marker="lost2"))
    assert store.spooled == 0
    db.restore()
    store.record(result(marker="kept"))
    assert markers(db.engine) == ["kept"]
    lost = [m for m in store_logs(caplog, logging.WARNING) if "lost" in m]
    assert lost == [f"2 results were lost during the outage: the spool {tmp_path / 'spool.jsonl'} was full"]
