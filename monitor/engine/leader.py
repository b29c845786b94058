"""One coordinator at a time: a PostgreSQL advisory lock taken in each coordinator transaction.

Several ``genstatus run`` processes on one PostgreSQL each run a coordinator; only the one
holding the lock may read-decide-write incidents and alerts, or an outage seen from three
regions would open three incidents.  The lock is *transaction-scoped*:
``pg_try_advisory_xact_lock`` is the first statement of every coordinator transaction and
PostgreSQL releases it at commit or rollback.  So there is no lease to renew, no dedicated
connection to watch, and nothing left held when a process or its connection dies mid-round:
whichever coordinator gets the lock acts in that round, the others skip it.  Because the
holder commits before the lock is released, and every statement after the lock (READ
COMMITTED) takes a fresh snapshot, the next holder always sees what the previous one wrote.

SQLite is one process by design (``genstatus run`` with its own file): the lock is a no-op there.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

#: The advisory lock key of the coordinator role ("gencoo"); migrations use "gensta" (migrations/env.py).
COORDINATOR_LOCK_ID = 0x67656E636F6F


def try_lead(session: Session, key: int = COORDINATOR_LOCK_ID) -> bool:
    """Take the coordinator lock for the session's current transaction; False if another holds it.

    Call it first thing in a transaction (``with session.begin():``); the lock lasts until that
    transaction ends.  Never blocks.
    """
    if session.get_bind().dialect.name != "postgresql":
        return True  # SQLite: a single process, nothing to coordinate with
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}))
