"""The outage spool: where results wait while the database is unreachable.

Two kinds, one interface (``append``, ``head``, ``drop``, ``len``):

``FileSpool`` -- the durable one (``genstatus run`` spools to ``genstatus-spool-<region>.jsonl`` beside the config, or ``$GENSTATUS_SPOOL``).
    * ``PATH`` is JSON Lines, **append-only**: each record is one line, written with one
      ``write`` on an ``O_APPEND`` descriptor and made durable with ``os.fsync`` before
      ``append`` returns.  Nothing ever rewrites a byte of it.
    * ``PATH.offset`` holds the byte offset of the first line not yet replayed (an ASCII
      integer).  After each replayed batch commits, the offset advances: the new value is
      written to ``PATH.offset.tmp``, fsynced and renamed over ``PATH.offset`` (atomic).
    * When everything is replayed the two files are removed (offset file first, so a crash
      in between replays the whole file again -- harmless, see below).  That is the only
      compaction: the file shrinks only once it is drained.
    * A write that fails (disk full, quota, file too large, read-only, I/O error: any ``OSError``)
      is taken back: the file is cut to its size before the append, so no partial line is left,
      and the error is raised to the caller (the store then holds results in memory, see
      ``ResultStore``).  If even the cut fails, the next append first ends the torn line, which
      replay skips.  An offset that cannot be saved (disk full) is kept in memory: replay goes
      on, and after a restart it resumes from the last saved offset (duplicates are skipped).
    * Size cap: ``max_bytes`` (default 256 MiB, ``DEFAULT_MAX_BYTES``) bounds the file on disk
      (replayed lines still in it count until it is drained).  A record that does not fit is
      dropped and counted in ``dropped``; the store logs a WARNING when dropping starts and
      one with the total once the database is back.  Never silent.
    * Torn last line: when the process is killed in the middle of an append, the file ends
      without a newline.  Opening the spool logs a WARNING and terminates that line, so later
      appends start on a line of their own; replay skips any line that is not JSON with a
      WARNING and replays everything around it, in order.
    * Duplicates: every record carries an idempotency key (``KEY``, a uuid4 given to the
      result when the store first sees it and also written to ``probe_results.idempotency_key``).
      A crash after a batch committed but before the offset advanced replays that batch again;
      the store skips the records whose key is already in the database (``ResultStore``).
    * One process owns a spool file at a time (each agent has its own); it is not locked.

``MemorySpool`` -- the fallback without a file: a bounded deque, lost when the process exits;
when full it drops the *oldest* records.

Records are ``ResultRecord.to_dict()`` plus private fields (``spool_record``): the thumbnail and
kept image as base64, ``keep_until`` and the idempotency key (the same lines as when the record
was ``probes.base.ProbeResult``).  Spool files written before the key existed still replay (such
records get a fresh key, so they cannot be de-duplicated).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import uuid
from collections import deque
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.enums import Outcome, ProbeKind
from monitor.store.record import ResultRecord

logger = logging.getLogger("genstatus.store")

#: default size cap of a spool file, in bytes
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
#: default capacity of the in-memory spool, in results
MEMORY_SPOOL_LIMIT = 10_000
#: the record field holding the idempotency key
KEY = "_key"
_READ_CHUNK = 1024 * 1024


# -- records ---------------------------------------------------------------------------


def new_key() -> str:
    """A fresh idempotency key (uuid4, 32 hex digits)."""
    return uuid.uuid4().hex


def spool_record(result: ResultRecord, key: str | None = None) -> dict[str, Any]:
    """``ResultRecord.to_dict()`` plus the kept thumbnail/image (base64), ``keep_until`` and the
    idempotency key, so an outage loses none of it."""
    record = result.to_dict()
    for name in ("thumbnail", "kept_image"):
        if getattr(result, name) is not None:
            record[f"_{name}"] = base64.b64encode(getattr(result, name)).decode("ascii")
    if result.keep_until is not None:
        record["_keep_until"] = result.keep_until.isoformat()
    if key is not None:
        record[KEY] = key
    return record


def record_key(record: dict[str, Any]) -> str | None:
    """The idempotency key of a spool record (None in records spooled before keys existed)."""
    key = record.get(KEY)
    return key if isinstance(key, str) and key else None


def result_from_dict(data: dict[str, Any]) -> ResultRecord:
    """Rebuild a result from a spool record (``spool_record``) or a ``to_dict()`` record."""
    known = {f.name for f in fields(ResultRecord)} - set(ResultRecord.PRIVATE)
    values = {key: value for key, value in data.items() if key in known}
    for name in ("thumbnail", "kept_image"):
        if data.get(f"_{name}"):
            values[name] = base64.b64decode(data[f"_{name}"])
    if data.get("_keep_until"):
        values["keep_until"] = _parse_time(data["_keep_until"])
    values["kind"] = ProbeKind(values["kind"])
    values["outcome"] = Outcome(values["outcome"])
    for key in ("started_at", "finished_at"):
        if values.get(key) is not None:
            values[key] = _parse_time(values[key])
    return ResultRecord(**values)


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def encode_line(record: dict[str, Any]) -> bytes:
    """One spool line: compact JSON and a newline (JSON escapes every newline inside strings)."""
    return (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")


# -- the spools ------------------------------------------------------------------------


class MemorySpool:
    """A bounded deque; when full, the oldest record is dropped (counted in ``dropped``)."""

    durable = False

    def __init__(self, limit: int = MEMORY_SPOOL_LIMIT) -> None:
        if limit <= 0:
            raise ValueError(f"memory spool limit must be positive, got {limit}")
        self.items: deque[dict[str, Any]] = deque()
        self.limit = limit
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.items)

    def describe(self) -> str:
        return "memory (lost if the process exits; give the store a spool file)"

    def full_message(self) -> str:
        return f"memory spool full ({len(self.items)} results): dropping the oldest"

    def append(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            if len(self.items) >= self.limit:
                self.items.popleft()
                self.dropped += 1
            self.items.append(record)

    def head(self, n: int) -> list[dict[str, Any]]:
        return [self.items[i] for i in range(min(n, len(self.items)))]

    def drop(self, n: int) -> None:
        for _ in range(n):
            self.items.popleft()


class FileSpool:
    """Append-only JSON Lines with an atomically replaced offset file (see the module docstring)."""

    durable = True

    def __init__(self, path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"spool max_bytes must be positive, got {max_bytes}")
        self.path = Path(path)
        self.offset_path = self.path.with_name(self.path.name + ".offset")
        self.max_bytes = max_bytes
        self.dropped = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = self.path.stat().st_size if self.path.exists() else 0
        self._torn = False  # the file ends inside a line that could not be ended: the next append ends it
        self._offset_unsaved = False  # the last offset could not be written (warned once)
        self.offset = self._read_offset()
        self._terminate_torn_tail()
        self.count = self._count_lines(self.offset)
        # what the last ``head`` read: (end offset, lines consumed) after each record, and after the last line read
        self._peeked: list[tuple[int, int]] = []
        self._peeked_tail: tuple[int, int] = (self.offset, 0)
        self._reported: set[int] = set()  # offsets of bad lines already logged
        if self.count == 0 and (self.size or self.offset_path.exists()):
            self._remove()

    def __len__(self) -> int:
        return self.count

    def describe(self) -> str:
        return str(self.path)

    def full_message(self) -> str:
        return (f"spool {self.path} is full ({self.size} bytes, limit {self.max_bytes}): new results are "
                "dropped until the database is back")

    # opening

    def _read_offset(self) -> int:
        try:
            text = self.offset_path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError) as exc:
            logger.warning("spool offset file %s unreadable (%s): replaying %s from the start",
                           self.offset_path, exc, self.path)
            return 0
        if not text.isdigit() or int(text) > self.size or not self._at_line_start(int(text)):
            logger.warning("spool offset %r in %s does not match %s (%d bytes): replaying from the start "
                           "(records already stored are skipped)", text, self.offset_path, self.path, self.size)
            return 0
        return int(text)

    def _at_line_start(self, offset: int) -> bool:
        if offset == 0:
            return True
        with self.path.open("rb") as spool:
            spool.seek(offset - 1)
            return spool.read(1) == b"\n"

    def _terminate_torn_tail(self) -> None:
        """A last line without its newline is the remains of an interrupted append: end it, so the
        next append starts on a line of its own and replay skips it."""
        if self.size == 0:
            return
        with self.path.open("rb") as spool:
            spool.seek(self.size - 1)
            if spool.read(1) == b"\n":
                return
        logger.warning("spool %s ends with a torn line (an append was interrupted): it will be skipped", self.path)
        try:
            self._write_all(b"\n")
        except OSError:
            self._torn = True  # the disk is full (say): the next append that gets through ends it

    def _count_lines(self, start: int) -> int:
        if self.size <= start:
            return 0
        lines = 0
        with self.path.open("rb") as spool:
            spool.seek(start)
            while chunk := spool.read(_READ_CHUNK):
                lines += chunk.count(b"\n")
        return lines

    # appending

    def _write_all(self, data: bytes) -> None:
        """``data`` at the end of the file, durable on return (one ``write`` unless the kernel splits it).

        A failed ``write`` or ``fsync`` (``OSError``: ENOSPC, EDQUOT, EFBIG, EIO, ...) is taken back
        before the error is raised: the file is cut to the size it had, so a disk that filled up in
        the middle of a line leaves no partial line behind."""
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            start = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                self._take_back(fd, start, created)
                raise
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)
        self.size = start + len(data)

    def _take_back(self, fd: int, start: int, created: bool) -> None:
        """Undo a failed append: cut the file back to ``start`` bytes (removed if this append created
        it).  Should the cut fail too, the file ends in a torn line: the next append ends it first."""
        try:
            os.ftruncate(fd, start)
        except OSError:
            try:
                self.size = os.fstat(fd).st_size
            except OSError:
                self.size = start + 1  # unknown: assume a torn tail (ending it costs one empty line at worst)
            self._torn = self.size > start
            return
        self.size = start
        if created and start == 0:
            try:
                self.path.unlink()  # so the next append creates it again and makes its entry durable
            except OSError:
                pass

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append each record as one fsynced line; records past ``max_bytes`` are dropped (counted).

        If a line cannot be written (``OSError``) it is taken back and the error raised: the records
        before it are in the file, that one and those after it are not."""
        for record in records:
            line = encode_line(record)
            end_torn = b"\n" if self._torn else b""
            if self.size + len(end_torn) + len(line) > self.max_bytes:
                self.dropped += 1
                continue
            self._write_all(end_torn + line)
            if end_torn:  # the torn line is a line now: counted until replay skips it
                self._torn = False
                self.count += 1
            self.count += 1

    # replaying

    def head(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` records in order; lines that are not JSON are skipped with a warning."""
        records: list[dict[str, Any]] = []
        self._peeked = []
        position, lines = self.offset, 0
        if self.count and self.size > self.offset:
            with self.path.open("rb") as spool:
                spool.seek(self.offset)
                while len(records) < n:
                    line = spool.readline()
                    if not line.endswith(b"\n"):  # end of file (a torn tail is terminated at open)
                        break
                    start, position, lines = position, position + len(line), lines + 1
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                        if not isinstance(record, dict):
                            raise ValueError("not a JSON object")
                    except ValueError:
                        if start not in self._reported:
                            self._reported.add(start)
                            logger.warning("spool %s: line at byte %d is not a complete record (torn by an "
                                           "interrupted append?), skipped: %.200r", self.path, start, line)
                        continue
                    records.append(record)
                    self._peeked.append((position, lines))
        self._peeked_tail = (position, lines)
        if not records and lines:  # only bad lines were left: consume them now
            self._advance(*self._peeked_tail)
        return records

    def drop(self, n: int) -> None:
        """Forget the first ``n`` records of the last ``head`` (they are stored)."""
        if n <= 0:
            return
        if n > len(self._peeked):
            raise ValueError(f"drop({n}) after head returned {len(self._peeked)} records")
        self._advance(*(self._peeked_tail if n == len(self._peeked) else self._peeked[n - 1]))
        self._peeked = []

    def _advance(self, offset: int, lines: int) -> None:
        self.offset = offset
        self.count = max(0, self.count - lines)
        self._peeked, self._peeked_tail = [], (offset, 0)
        if self.offset >= self.size:
            self._remove()
            return
        temp = self.offset_path.with_name(self.offset_path.name + ".tmp")
        try:
            with temp.open("w", encoding="ascii") as out:
                out.write(str(offset))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.offset_path)
        except OSError as exc:
            # the disk is full (say): the offset lives on in memory; a restart before it is saved
            # resumes from the last saved one, and the store skips what is already stored
            try:
                temp.unlink(missing_ok=True)
            except OSError:
                pass
            if not self._offset_unsaved:
                logger.warning("cannot save the spool offset %s (%s): replay goes on; after a restart it "
                               "resumes from the last saved offset (results already stored are skipped)",
                               self.offset_path, exc.strerror or exc)
            self._offset_unsaved = True
        else:
            self._offset_unsaved = False

    def _remove(self) -> None:
        """Everything is replayed: remove the offset first (a crash in between replays all, deduplicated)."""
        try:
            self.offset_path.unlink(missing_ok=True)
            self.path.unlink(missing_ok=True)
        except OSError as exc:  # a read-only file system (say): keep the file, everything in it is consumed
            logger.warning("cannot remove the replayed spool %s (%s): it stays; replay resumes at its end "
                           "(after a restart, results already stored are skipped)", self.path, exc.strerror or exc)
            self.offset, self.count = self.size, 0
            self._reported.clear()
            return
        _fsync_dir(self.path.parent)
        self.size = self.offset = self.count = 0
        self._torn = False
        self._reported.clear()


def _fsync_dir(directory: Path) -> None:
    """Make a created or removed directory entry durable (best effort: not every platform can)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
