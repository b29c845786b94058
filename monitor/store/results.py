"""Storing probe results: the raw row and its hourly/daily rollups in one transaction.

The rollup statements are ``monitor.store.rollups`` (increments only: exact with any number
of concurrent writers); this module runs them with the raw rows, in one transaction per batch.

Every result gets an idempotency key (a uuid4) when the store first sees it, stored in
``probe_results.idempotency_key``.  When the database is unreachable, results go to a spool
(``monitor.store.spool``: an append-only JSON Lines file, or a bounded in-memory deque) with
their keys and are replayed in order, before anything newer, once it is back; a replayed
result whose key is already stored is skipped, so replaying a batch twice stores it once.

A full disk is an outage like any other: SQLite's "database or disk is full" and "disk I/O
error" are ``OperationalError`` (PostgreSQL's ``disk_full`` too), so the results are spooled.
When the spool file cannot be written either (any ``OSError``: ENOSPC, EDQUOT, EFBIG, EROFS,
EIO), the results are held in memory behind it (a ``MemorySpool`` of ``memory_limit``, the
oldest dropped and counted) with one ERROR line; they go to the file as soon as a write gets
through again, or straight to the database if it is back first, and one WARNING says how many
were held, where they went and how many were lost.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Delete,
    Engine,
    Insert,
    String,
    Table,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from monitor.config import Config
from monitor.store.models import (
    Canary,
    ProbeResultRow,
    ResultImageRow,
    Service,
    table_of,
    utcnow,
)
from monitor.store.record import LATENCY_PHASES, ResultRecord
from monitor.store.rollups import RollupStatement, default_rollups, dialect_insert, rollup_events
from monitor.store.spool import (
    DEFAULT_MAX_BYTES,
    MEMORY_SPOOL_LIMIT,
    FileSpool,
    MemorySpool,
    new_key,
    record_key,
    result_from_dict,
    spool_record,
)

logger = logging.getLogger("genstatus.store")

REPLAY_BATCH = 200

probe_results: Table = table_of(ProbeResultRow)
#: text columns of a result and their size (None: unbounded): what a provider's strings must fit into
_TEXT_COLUMNS = {c.name: c.type.length for c in probe_results.c if isinstance(c.type, String)}
result_images: Table = table_of(ResultImageRow)
__all__ = [  # the spool's record helpers are re-exported: callers import them from here
    "DEFAULT_MAX_BYTES", "MEMORY_SPOOL_LIMIT", "REPLAY_BATCH", "ResultStore", "is_connection_problem", "raw_row",
    "result_from_dict", "spool_record",
]


# -- rows ------------------------------------------------------------------------------


def fit_text(row: dict[str, Any]) -> dict[str, Any]:
    """Every string of a row made storable on both databases: NUL bytes dropped (PostgreSQL refuses
    them) and cut to the column's size (a 5,000-character model name from a provider), so a
    provider's odd answer never loses the result."""
    for name, limit in _TEXT_COLUMNS.items():
        value = row.get(name)
        if isinstance(value, str):
            value = value.replace("\x00", "")
            if limit is not None and len(value) > limit:
                value = value[: limit - 1] + "…"
            row[name] = value
    return row


def raw_row(result: ResultRecord) -> dict[str, Any]:
    """The ``probe_results`` row of a result, its strings fitted to their columns."""
    latency = result.latency_ms or {}
    hashes = result.hashes or {}
    return fit_text({
        "service_id": result.service,
        "canary_id": result.canary,
        "region": result.region,
        "kind": str(result.kind),
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "outcome": str(result.outcome),
        **{f"{phase}_ms": latency.get(phase) for phase in LATENCY_PHASES},
        "http_status": result.http_status,
        "request_id": result.request_id,
        "error_detail": result.error_detail,
        "image_bytes": result.image_bytes,
        "image_format": result.image_format,
        "image_width": result.image_width,
        "image_height": result.image_height,
        "image_sha256": result.image_sha256,
        "phash": hashes.get("phash"),
        "dhash": hashes.get("dhash"),
        "hashes": hashes,
        "quality_score": result.quality_score,
        "quality_verdict": result.quality_verdict,
        "quality_flags": result.quality_flags,
        "quality_reasons": result.quality_reasons,
        "cost": result.cost,
        "model_version": result.model_version,
        "revised_prompt": result.revised_prompt,
        "seed": result.seed,
    })


# -- statements ------------------------------------------------------------------------


def _catalog_upsert(table: Table, dialect_name: str, columns: tuple[str, ...]) -> Insert:
    """Upsert that touches a row (and its ``updated_at``) only when a value changed."""
    stmt = dialect_insert(table, dialect_name)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={**{c: new[c] for c in columns}, "updated_at": new.updated_at},
        where=or_(*(table.c[c].is_distinct_from(new[c]) for c in columns)),
    )


# -- images --------------------------------------------------------------------------

#: thumbnails kept per (service, canary): enough for the service page's latest images
THUMBNAILS_KEPT = 12


def _prune_thumbnails(without_canary: bool) -> Delete:
    """The thumbnail pruning statement, built once (building it per write cost more than running it);
    parameters ``p_service``, ``p_canary`` (unless ``without_canary``) and ``p_now``."""
    table = result_images
    same = (table.c.service_id == bindparam("p_service")) & (
        table.c.canary_id.is_(None) if without_canary else table.c.canary_id == bindparam("p_canary"))
    newest = (select(table.c.result_id).where(same).order_by(table.c.result_id.desc())
              .limit(1).offset(THUMBNAILS_KEPT - 1).scalar_subquery())
    return delete(table).where(same, table.c.result_id < newest,
                               or_(table.c.keep_until.is_(None), table.c.keep_until < bindparam("p_now")))


_PRUNE_CANARY = _prune_thumbnails(without_canary=False)
_PRUNE_NO_CANARY = _prune_thumbnails(without_canary=True)
_DROP_EXPIRED_IMAGES = (update(result_images)
                        .where(result_images.c.keep_until < bindparam("p_now"), result_images.c.image.is_not(None))
                        .values(image=None))


def prune_result_images(connection, service_id: str, canary_id: str | None) -> None:
    """Drop thumbnails beyond the newest ``THUMBNAILS_KEPT`` of a canary, except full images still
    within their ``keep_until``; and drop expired full images of any canary."""
    now = utcnow()
    if canary_id is None:
        connection.execute(_PRUNE_NO_CANARY, {"p_service": service_id, "p_now": now})
    else:
        connection.execute(_PRUNE_CANARY, {"p_service": service_id, "p_canary": canary_id, "p_now": now})
    connection.execute(_DROP_EXPIRED_IMAGES, {"p_now": now})


def is_connection_problem(exc: BaseException) -> bool:
    """The database is unreachable (worth spooling), as opposed to a bad statement or row.

    ``OperationalError`` covers a full disk: SQLite's "database or disk is full" (SQLITE_FULL) and
    "disk I/O error" (SQLITE_IOERR), PostgreSQL's ``disk_full`` (53100).  A bad row is an
    ``IntegrityError`` or ``DataError`` instead, rejected rather than spooled."""
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


# -- the store -------------------------------------------------------------------------

#: errors that mean the spool's disk has no room left (the others: read-only, I/O error, ...)
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@dataclass
class _Held:
    """Results held in memory while the spool file cannot be written: one episode, from the first
    failed append until nothing is held any more."""

    memory: MemorySpool
    to_file: int = 0  # written to the spool file once a write got through again
    to_database: int = 0  # replayed from memory straight into the database
    warned_full: bool = False  # the memory buffer started dropping (warned once)


class ResultStore:
    """Writes results and keeps the rollups; spools through database outages.

    ``spool_path`` selects the durable spool (``FileSpool``, capped at ``spool_max_bytes``);
    without it results wait in memory (``MemorySpool``, at most ``memory_limit``).
    ``rollups`` replaces the statements run after the raw rows of each batch (default:
    ``default_rollups()``): a seam for tests and benchmarks, each a statement taking the
    parameters of ``rollup_event`` and the function flooring a start time to its bucket.
    """

    def __init__(
        self,
        engine: Engine,
        spool_path: str | Path | None = None,
        *,
        memory_limit: int = MEMORY_SPOOL_LIMIT,
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
        rollups: Sequence[RollupStatement] | None = None,
    ) -> None:
        if memory_limit <= 0:
            raise ValueError(f"memory_limit must be positive, got {memory_limit}")
        self.engine = engine
        dialect = engine.dialect.name
        self._raw_insert = insert(probe_results)
        self._raw_insert_returning_id = self._raw_insert.returning(probe_results.c.id)
        self._image_insert = insert(result_images)
        self._rollups: list[RollupStatement] = list(default_rollups() if rollups is None else rollups)
        self._service_upsert = _catalog_upsert(
            table_of(Service), dialect, ("name", "group_name", "provider", "model", "position", "active")
        )
        self._canary_upsert = _catalog_upsert(table_of(Canary), dialect, ("prompt", "size", "seed"))
        self._spool: FileSpool | MemorySpool = (
            FileSpool(Path(spool_path), spool_max_bytes) if spool_path is not None else MemorySpool(memory_limit)
        )
        self._memory_limit = memory_limit
        self._held: _Held | None = None  # results behind the spool file while it cannot be written
        self._lock = threading.RLock()
        self._outage = False

    @property
    def spooled(self) -> int:
        """How many results wait in the spool (including those held in memory behind a full disk)."""
        return len(self._spool) + self.held

    @property
    def held(self) -> int:
        """How many results wait in memory because the spool file cannot be written (disk full)."""
        return len(self._held.memory) if self._held is not None else 0

    # catalog

    def sync_catalog(self, config: Config) -> None:
        """Upsert services and canaries from the config; services no longer configured become inactive."""
        now = utcnow()
        services = table_of(Service)
        service_rows = [
            {"id": s.id, "name": s.display_name, "group_name": s.group, "provider": s.provider,
             "model": s.model, "position": position, "active": True, "created_at": now, "updated_at": now}
            for position, s in enumerate(config.services)
        ]
        canary_rows = [
            {"id": c.id, "prompt": c.prompt, "size": c.size, "seed": None if c.seed is None else str(c.seed),
             "created_at": now, "updated_at": now}
            for c in config.canaries
        ]
        with self.engine.begin() as connection:
            if service_rows:
                connection.execute(self._service_upsert, service_rows)
            if canary_rows:
                connection.execute(self._canary_upsert, canary_rows)
            connection.execute(
                update(services)
                .where(services.c.id.not_in([s.id for s in config.services]), services.c.active.is_(True))
                .values(active=False, updated_at=now)
            )

    # results

    def record(self, result: ResultRecord) -> None:
        """Store one result (raw row + rollups, one transaction), or spool it if the database is down."""
        self.record_many([result])

    def record_many(self, results: Iterable[ResultRecord]) -> None:
        """Store a batch in one transaction (executemany of the same statements).

        Each result gets its idempotency key here, before the first attempt: if a commit
        succeeds but its acknowledgement is lost, the spooled copy is recognised on replay.
        """
        batch = [(new_key(), r) for r in results]
        if not batch:
            return
        if self.spooled:
            self.flush_spool()
            if self.spooled:  # still down: newer results queue behind the spooled ones
                self._spool_results(batch)
                return
        try:
            self._write(batch)
        except Exception as exc:
            if not is_connection_problem(exc):
                raise
            self._note_outage(exc)
            self._spool_results(batch)
            return
        if self._outage:  # back, with nothing spooled (every result of the outage was dropped)
            with self._lock:
                self._end_outage(0, 0)

    def _write(self, batch: list[tuple[str, ResultRecord]], *, replay: bool = False) -> int:
        """Write (key, result) pairs in one transaction.  On replay, results whose key is already
        stored (or repeated in the batch) are skipped; returns how many were skipped."""
        skipped = 0
        with self.engine.begin() as connection:
            if replay:
                before = len(batch)
                batch = self._unstored(connection, batch)
                skipped = before - len(batch)
                if not batch:
                    return skipped
            plain = [(k, r) for k, r in batch if r.thumbnail is None and r.kept_image is None]
            if plain:
                connection.execute(self._raw_insert, [{**raw_row(r), "idempotency_key": k} for k, r in plain])
            for key, result in batch:
                if result.thumbnail is not None or result.kept_image is not None:
                    self._write_with_image(connection, key, result)
            results = [r for _, r in batch]
            for statement, floor in self._rollups:
                events = rollup_events(results, floor)
                if events:
                    connection.execute(statement, events)
        return skipped

    @staticmethod
    def _unstored(connection, batch: list[tuple[str, ResultRecord]]) -> list[tuple[str, ResultRecord]]:
        """The pairs whose key is not in ``probe_results`` yet (first of each key).  The lookup is
        bounded by the batch's ``started_at`` range, so it runs on ``ix_probe_results_started``."""
        column = probe_results.c
        stored = set(connection.scalars(
            select(column.idempotency_key).where(
                column.started_at >= min(r.started_at for _, r in batch),
                column.started_at <= max(r.started_at for _, r in batch),
                column.idempotency_key.in_(sorted({k for k, _ in batch})),
            )
        ))
        fresh = []
        for key, result in batch:
            if key not in stored:
                stored.add(key)
                fresh.append((key, result))
        return fresh

    def _write_with_image(self, connection, key: str, result: ResultRecord) -> None:
        """The raw row plus its ``result_images`` row; older thumbnails of the canary are pruned."""
        result_id = connection.execute(
            self._raw_insert_returning_id, {**raw_row(result), "idempotency_key": key}
        ).scalar_one()
        connection.execute(self._image_insert, {
            "result_id": result_id, "service_id": result.service, "canary_id": result.canary,
            "created_at": result.started_at, "thumbnail": result.thumbnail, "image": result.kept_image,
            "image_format": result.image_format if result.kept_image is not None else None,
            "keep_until": result.keep_until if result.kept_image is not None else None,
        })
        prune_result_images(connection, result.service, result.canary)

    # outages

    def _note_outage(self, exc: BaseException) -> None:
        with self._lock:
            if self._outage:
                return
            self._outage = True
        log = logger.warning if self._spool.durable else logger.error
        log("database unavailable (%s); spooling results to %s until it is back",
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__, self._spool.describe())

    def _spool_results(self, batch: list[tuple[str, ResultRecord]]) -> None:
        records = [spool_record(r, key) for key, r in batch]
        with self._lock:
            dropped = self._spool.dropped
            if isinstance(self._spool, FileSpool):
                self._append_to_file(self._spool, records)
            else:
                self._spool.append(records)
            if dropped == 0 and self._spool.dropped:
                (logger.warning if self._spool.durable else logger.error)(self._spool.full_message())

    def _append_to_file(self, spool: FileSpool, records: list[dict[str, Any]]) -> None:
        """Append to the spool file, in order behind what is held in memory; hold in memory what
        the file refuses (disk full).  Results held in memory go to the file first, one by one, so
        a write that gets through again moves them all before anything newer."""
        held = self._held
        done = 0
        try:
            if held is not None:
                while len(held.memory):
                    capped = spool.dropped
                    spool.append(held.memory.head(1))
                    held.memory.drop(1)
                    if spool.dropped == capped:  # (one past the size cap is dropped, and counted there)
                        held.to_file += 1
            for record in records:
                spool.append([record])
                done += 1
        except OSError as exc:
            if held is None:
                held = self._held = _Held(MemorySpool(self._memory_limit))
                logger.error("%scannot write the spool %s (%s); holding up to %d results in memory until %s "
                             "(they are lost if the process exits)",
                             "disk full: " if exc.errno in _NO_SPACE else "", spool.describe(),
                             exc.strerror or exc, self._memory_limit,
                             "space returns" if exc.errno in _NO_SPACE else "it can be written again")
            held.memory.append(records[done:])
            if held.memory.dropped and not held.warned_full:
                held.warned_full = True
                logger.warning("memory buffer full (%d results) while the spool %s cannot be written: "
                               "dropping the oldest", self._memory_limit, spool.describe())
            return
        if held is not None:
            self._stop_holding()

    def _stop_holding(self) -> None:
        """Nothing is held in memory any more: say where the held results went and how many were lost."""
        held, self._held = self._held, None
        if held is None:
            return
        lost = held.memory.dropped
        logger.warning("the %d results held in memory while the spool %s could not be written are stored "
                       "(%d in the spool, %d in the database)%s", held.to_file + held.to_database,
                       self._spool.describe(), held.to_file, held.to_database,
                       f"; {lost} older results were lost (more than the {self._memory_limit} the memory holds)"
                       if lost else "")

    def flush_spool(self) -> int:
        """Replay spooled results in order (the spool file, then any held in memory behind it while
        the file could not be written); each batch leaves the spool only after its commit.

        Returns how many spooled records were consumed (written, already stored, or rejected).
        Stops quietly while the database is still down.  A record already in the database
        (same idempotency key: a batch replayed twice after a crash) is skipped.  A spooled
        result the database rejects for good (not a connection problem) is logged with its
        full record and dropped, so it cannot block the ones behind it.
        """
        consumed = skipped = 0
        with self._lock:
            while True:  # the spool file first, then what is held in memory behind it
                source: FileSpool | MemorySpool = self._spool
                chunk = source.head(REPLAY_BATCH)
                if not chunk and self._held is not None and len(self._held.memory):
                    source = self._held.memory
                    chunk = source.head(REPLAY_BATCH)
                if not chunk:
                    break
                try:
                    try:
                        skipped += self._write([_keyed(d) for d in chunk], replay=True)
                    except Exception as exc:
                        if is_connection_problem(exc):
                            raise
                        chunk = chunk[:1]  # one is bad: go one at a time from the front
                        skipped += self._write_or_reject(chunk[0])
                except Exception as exc:
                    if not is_connection_problem(exc):
                        raise
                    self._note_outage(exc)
                    return consumed
                source.drop(len(chunk))
                consumed += len(chunk)
                if self._held is not None and source is self._held.memory:
                    self._held.to_database += len(chunk)
            if self._held is not None and not len(self._held.memory):
                self._stop_holding()
            if self._outage or self._spool.dropped:
                self._end_outage(consumed, skipped)
        return consumed

    def _end_outage(self, consumed: int, skipped: int) -> None:
        """Log the end of an outage: what was replayed and, once, how many results the full spool dropped."""
        self._outage = False
        logger.warning("database is back; replayed %d spooled results%s", consumed,
                       f" ({skipped} already stored, skipped)" if skipped else "")
        if self._spool.dropped:
            logger.warning("%d results were lost during the outage: the spool %s was full",
                           self._spool.dropped, self._spool.describe())
        self._spool.dropped = 0

    def _write_or_reject(self, record: dict[str, Any]) -> int:
        """Write one spooled record alone; log and drop it if it can never be written."""
        try:
            return self._write([_keyed(record)], replay=True)
        except Exception as exc:
            if is_connection_problem(exc):
                raise
            logger.error("spooled result rejected, dropped: %s (%s)", json.dumps(record), exc)
            return 0


def _keyed(record: dict[str, Any]) -> tuple[str, ResultRecord]:
    """A spool record as (idempotency key, result); records from before keys existed get a new one."""
    return record_key(record) or new_key(), result_from_dict(record)
