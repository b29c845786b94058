"""A full disk: the database ("database or disk is full", for real through ``PRAGMA max_page_count``)
and the spool file (a real 256 KiB tmpfs when this process may mount one, else ENOSPC from the spool's
``os.write``) fill up; results wait in a bounded memory buffer with one ERROR line, and once space
returns every one of them is stored, in order, exactly once."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

import monitor.store.spool as spool_module
from monitor.config import Config
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.models import ProbeResultRow
from monitor.store.results import ResultStore, is_connection_problem
from monitor.store.spool import FileSpool
from tests.test_spool import markers, spooled_markers, store_logs
from tests.test_store import CONFIG, T0, result, rollups

NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"


# -- a database that fills up ------------------------------------------------------------


class FillableSqlite:
    """An SQLite database whose every connection gets ``PRAGMA max_page_count``: at the current page
    count, SQLite itself refuses to grow the file (SQLITE_FULL, "database or disk is full")."""

    UNLIMITED = 1_073_741_823  # SQLite's default (older versions; newer ones allow more)

    def __init__(self, root: Path) -> None:
        self.limit = self.UNLIMITED
        self.engine = make_engine(f"sqlite:///{root / 'db' / 'genstatus.db'}")
        event.listen(self.engine, "checkout", self._apply_limit)
        upgrade(self.engine)
        ResultStore(self.engine).sync_catalog(Config.model_validate(CONFIG))

    def _apply_limit(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA max_page_count = {int(self.limit)}")
        cursor.close()

    def fill(self) -> None:
        """Not one page more."""
        with self.engine.connect() as connection:
            self.limit = connection.exec_driver_sql("PRAGMA page_count").scalar_one()

    def free(self) -> None:
        self.limit = self.UNLIMITED


@pytest.fixture
def db(tmp_path: Path) -> Iterator[FillableSqlite]:
    database = FillableSqlite(tmp_path)
    yield database
    database.engine.dispose()


# -- a disk that fills up ----------------------------------------------------------------


class Tmpfs:
    """A real 256 KiB tmpfs; ``fill`` writes a file until the kernel says ENOSPC, ``free`` removes it.
    (Appends still get through while the last page of the spool file has room, as on any disk.)"""

    kind = "tmpfs"

    def __init__(self, root: Path) -> None:
        self.dir = root / "disk"
        self.dir.mkdir()
        self.filler = self.dir / "filler"
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a tmpfs needs root and mount(8)")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "genstatus-test", str(self.dir)],
                              capture_output=True, text=True, timeout=30)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    def fill(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink()

    def close(self) -> None:
        if subprocess.run(["umount", str(self.dir)], capture_output=True, timeout=30).returncode:
            subprocess.run(["umount", "-l", str(self.dir)], capture_output=True, timeout=30)


class InjectedFull:
    """Where no tmpfs can be mounted: the spool module's ``os`` is the real one except that, once
    ``fill`` is called, its ``write`` writes what is left of ``room`` bytes (part of a line) and then
    raises ENOSPC, and its ``fsync`` raises ENOSPC, as a full disk does.  Nothing else is touched."""

    kind = "injected"

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch, room: int = 100) -> None:
        self.dir = root / "disk"
        self.dir.mkdir()
        self.room, self.left = room, -1  # -1: no limit
        self.cut_fails = False
        monkeypatch.setattr(spool_module, "os", _FullDiskOs(self))

    def fill(self) -> None:
        self.left = self.room

    def free(self) -> None:
        self.left = -1

    def close(self) -> None:
        pass


class _FullDiskOs:
    def __init__(self, disk: InjectedFull) -> None:
        self.disk = disk

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        if self.disk.left < 0:
            return os.write(fd, data)
        if self.disk.left == 0:
            raise OSError(errno.ENOSPC, NO_SPACE)
        written = os.write(fd, bytes(data[: self.disk.left]))
        self.disk.left -= written
        return written

    def fsync(self, fd: int) -> None:
        if self.disk.left >= 0:
            raise OSError(errno.ENOSPC, NO_SPACE)
        os.fsync(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        if self.disk.cut_fails:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.ftruncate(fd, length)


@pytest.fixture(params=["tmpfs", "injected"])
def disk(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tmpfs | InjectedFull]:
    full = Tmpfs(tmp_path) if request.param == "tmpfs" else InjectedFull(tmp_path, monkeypatch)
    try:
        yield full
    finally:
        full.close()


# -- helpers -----------------------------------------------------------------------------


class Sender:
    """Records numbered results (r0, r1, ...) one at a time, a second apart, and remembers the order."""

    def __init__(self, store: ResultStore) -> None:
        self.store, self.sent = store, []

    def one(self, **kwargs: Any) -> str:
        marker = f"r{len(self.sent)}"
        self.sent.append(marker)
        self.store.record(result(at=T0 + timedelta(seconds=len(self.sent)), marker=marker, **kwargs))
        return marker

    def until(self, condition, limit: int = 500) -> None:
        for _ in range(limit):
            if condition():
                return
            self.one()
        raise AssertionError(f"still not so after {limit} results")


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "genstatus.store" and r.levelno >= logging.ERROR]


def assert_clean_spool_file(path: Path, spool: FileSpool) -> None:
    """Every line of the file is a whole record and the spool's size is the file's: nothing torn."""
    data = path.read_bytes() if path.exists() else b""
    assert spool.size == len(data)
    assert data == b"" or data.endswith(b"\n")
    for line in data.splitlines():
        assert isinstance(json.loads(line), dict)


def stored_keys(engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(select(ProbeResultRow.idempotency_key)))


# -- the store on a full disk ------------------------------------------------------------


def test_full_disk_holds_results_in_memory_then_stores_every_one_once_in_order(db, disk, caplog):
    caplog.set_level(logging.INFO, logger="genstatus.store")
    path = disk.dir / "spool.jsonl"
    limit = 4
    store = ResultStore(db.engine, path, memory_limit=limit)
    send = Sender(store)

    db.fill()  # the database is out of space: results go to the spool file
    send.until(lambda: store.spooled > 0)
    send.one(), send.one()
    direct, in_file = markers(db.engine), spooled_markers(path)
    assert len(in_file) == 3 and store.held == 0
    assert any("database or disk is full" in m and "spooling" in m for m in store_logs(caplog, logging.WARNING))

    disk.fill()  # and so is the spool's disk: results are held in memory, the oldest dropped past the limit
    send.until(lambda: store.held > 0)
    for _ in range(limit + 2):
        send.one()
    in_file = spooled_markers(path)  # what got into the last page of the file before it filled up
    held = send.sent[len(direct) + len(in_file):]
    assert direct + in_file + held == send.sent and len(held) == limit + 3
    assert store.held == limit and store.spooled == len(in_file) + limit
    assert_clean_spool_file(path, store._spool)

    (error,) = errors(caplog)  # one line for the whole episode, no traceback
    assert error.getMessage() == (f"disk full: cannot write the spool {path} ({NO_SPACE}); holding up to {limit} "
                                  "results in memory until space returns (they are lost if the process exits)")
    assert error.exc_info is None and all(r.exc_info is None for r in caplog.records)
    assert [m for m in store_logs(caplog) if "memory buffer full" in m] == [
        f"memory buffer full ({limit} results) while the spool {path} cannot be written: dropping the oldest"]

    disk.free()  # space returns, the database is still full: the held results go to the file, in order
    kept = held[-limit:]
    newer = send.one()
    assert store.held == 0 and spooled_markers(path) == in_file + kept + [newer]
    assert store_logs(caplog)[-1] == (
        f"the {limit} results held in memory while the spool {path} could not be written are stored "
        f"({limit} in the spool, 0 in the database); 3 older results were lost (more than the {limit} the memory holds)")

    db.free()  # the database has room again: everything replays, exactly once
    newest = send.one()
    expected = direct + in_file + kept + [newer, newest]
    assert markers(db.engine) == expected
    assert store.spooled == 0 and not path.exists()
    keys = stored_keys(db.engine)
    assert len(keys) == len(set(keys)) == len(expected)
    (row,) = rollups(db.engine).values()
    assert row["n_total"] == len(expected)  # the rollups counted each result once too
    assert len(errors(caplog)) == 1
    assert "replayed" in store_logs(caplog)[-1]


def test_database_back_first_takes_the_held_results_from_memory(db, disk, caplog):
    """The spool's disk stays full; the database gets room first: the file's records, then the held
    ones, go into it in order."""
    caplog.set_level(logging.INFO, logger="genstatus.store")
    path = disk.dir / "spool.jsonl"
    store = ResultStore(db.engine, path, memory_limit=50)
    send = Sender(store)
    db.fill()
    send.until(lambda: store.spooled > 0)
    disk.fill()
    send.until(lambda: store.held > 0)
    bad = send.one(service="gone")  # a bad row among them is rejected on replay, not held forever
    send.one()
    held = store.held

    db.free()
    send.one()
    assert markers(db.engine) == [m for m in send.sent if m != bad]
    assert store.spooled == 0 and store.held == 0
    assert any(f"the {held} results held in memory" in m and f"(0 in the spool, {held} in the database)" in m
               for m in store_logs(caplog, logging.WARNING))
    assert any("rejected" in m for m in store_logs(caplog, logging.ERROR))
    assert len([m for m in store_logs(caplog, logging.ERROR) if "disk full" in m]) == 1
    assert_clean_spool_file(path, store._spool)

    db.fill()  # a new outage while the spool's disk is still full is a new episode: a new ERROR line
    send.until(lambda: store.held > 0)
    assert len([m for m in store_logs(caplog, logging.ERROR) if "disk full" in m]) == 2


def test_sqlite_disk_full_is_an_outage_not_a_bad_row(db):
    db.fill()
    store = ResultStore(db.engine)
    with pytest.raises(OperationalError) as caught:
        for i in range(500):
            store._write([(f"{i:032x}", result(marker=f"r{i}"))])
    assert "database or disk is full" in str(caught.value) and is_connection_problem(caught.value)


class _FailingWriteOs:
    """The real ``os`` whose ``write`` fails with one error number."""

    def __init__(self, code: int) -> None:
        self.code = code

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        raise OSError(self.code, os.strerror(self.code))


@pytest.mark.parametrize("code", [errno.EROFS, errno.EIO], ids=["EROFS", "EIO"])
def test_other_write_errors_hold_results_too(db, tmp_path, monkeypatch, caplog, code):
    """Not only ENOSPC: any OSError of the spool's write (read-only, I/O error) holds results in memory."""
    monkeypatch.setattr(spool_module, "os", _FailingWriteOs(code))
    caplog.set_level(logging.INFO, logger="genstatus.store")
    path = tmp_path / "spool.jsonl"
    store = ResultStore(db.engine, path)
    db.fill()
    send = Sender(store)
    send.until(lambda: store.held > 1)
    assert not path.exists()  # the file this append created is removed again
    (error,) = errors(caplog)
    assert error.getMessage().startswith(f"cannot write the spool {path} ({os.strerror(code)}); holding up to ")
    assert "until it can be written again" in error.getMessage()
    monkeypatch.setattr(spool_module, "os", os)
    db.free()
    send.one()
    assert markers(db.engine) == send.sent


# -- the spool file on a full disk -------------------------------------------------------


def test_a_failed_append_leaves_the_file_as_it_was(disk):
    path = disk.dir / "spool.jsonl"
    spool = FileSpool(path)
    spool.append([{"n": 0}, {"n": 1}])
    disk.fill()
    before = path.read_bytes()
    with pytest.raises(OSError) as caught:
        for i in range(2, 1000):  # on a tmpfs the last page of the file takes a few more
            spool.append([{"n": i, "pad": "x" * 200}])
            before = path.read_bytes()
    assert caught.value.errno == errno.ENOSPC
    assert path.read_bytes() == before  # the partly written line was cut off again
    assert_clean_spool_file(path, spool)
    count = len(spool)

    disk.free()
    spool.append([{"n": "after"}])
    assert len(spool) == count + 1
    records = FileSpool(path).head(2000)
    assert len(records) == count + 1 and records[-1] == {"n": "after"}
    assert [r["n"] for r in records[:-1]] == list(range(count))


def test_a_cut_that_fails_too_is_ended_by_the_next_append(tmp_path, monkeypatch, caplog):
    disk = InjectedFull(tmp_path, monkeypatch)
    path = disk.dir / "spool.jsonl"
    spool = FileSpool(path)
    spool.append([{"n": 0}])
    disk.fill()
    disk.cut_fails = True
    with pytest.raises(OSError):
        spool.append([{"n": 1, "pad": "x" * 200}])
    assert spool.size == path.stat().st_size and not path.read_bytes().endswith(b"\n")  # torn, and known to be
    disk.free()
    spool.append([{"n": 2}])
    caplog.set_level(logging.WARNING, logger="genstatus.store")
    assert len(spool) == 3  # the torn line counts until replay skips it
    assert spool.head(10) == [{"n": 0}, {"n": 2}]
    assert any("not a complete record" in m for m in store_logs(caplog, logging.WARNING))
    assert FileSpool(path).head(10) == [{"n": 0}, {"n": 2}]


def test_an_offset_that_cannot_be_saved_does_not_stop_replay(disk, caplog):
    caplog.set_level(logging.WARNING, logger="genstatus.store")
    path = disk.dir / "spool.jsonl"
    spool = FileSpool(path)
    spool.append([{"n": i} for i in range(4)])
    disk.fill()
    for i in range(3):  # each drop advances the offset, which cannot be written
        assert spool.head(1) == [{"n": i}]
        spool.drop(1)
    assert len(spool) == 1 and not spool.offset_path.exists()
    assert len([m for m in store_logs(caplog) if "cannot save the spool offset" in m]) == 1
    assert not list(disk.dir.glob("*.tmp"))
    disk.free()
    assert FileSpool(path).head(10) == [{"n": i} for i in range(4)]  # a restart replays from the last saved offset
    assert spool.head(1) == [{"n": 3}]
    spool.drop(1)
    assert len(spool) == 0 and not path.exists()
