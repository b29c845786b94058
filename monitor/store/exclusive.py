"""One monitor per SQLite file.

SQLite has no advisory lock like PostgreSQL's, so two ``genstatus run`` processes on one file would
both probe and both detect (two incidents for one outage, two alerts).  The monitor therefore
holds an exclusive ``flock`` on ``<database>.lock`` while it runs; a second one refuses to start.
The lock is the kernel's, so a killed process leaves nothing stale behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url


class DatabaseInUse(Exception):
    """Another monitor process holds this SQLite database."""


class SQLiteMonitorLock:
    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        database = parsed.database if parsed.get_backend_name() == "sqlite" else None
        self.path = Path(f"{database}.lock").expanduser() if database and database != ":memory:" else None
        self._file: IO[str] | None = None

    def acquire(self) -> SQLiteMonitorLock:
        """Take the lock (a no-op for PostgreSQL and in-memory SQLite); ``DatabaseInUse`` if another process has it."""
        if self.path is None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise DatabaseInUse(f"{self.path.with_suffix('')} is in use by {holder}: only one `genstatus run` may use "
                                f"a SQLite database (use PostgreSQL for one monitor per region)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"genstatus pid {os.getpid()}\n")
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
