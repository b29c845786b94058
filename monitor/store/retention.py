"""The retention job: delete old raw results, thumbnails, expired kept images and old alert events.

``run_retention(engine, settings, now)`` applies the ``retention:`` section of the config
(``RetentionSettings``, defined in the config layer and re-exported here; its docstring lists the
keys and defaults).  It deletes in small batches -- select up to ``batch_size`` ids, delete them,
commit: one short transaction per batch -- so it never holds locks for long, and it can be stopped
and rerun at any time (every step is idempotent).  It is safe with agents writing meanwhile.

Rollups (``rollup_hourly``/``rollup_daily``) are never touched.  They are maintained by increments
when a result is written (``monitor.store.results``), never recomputed from raw rows, so deleting
raw rows cannot change uptime, latency or SLO figures.  Raw rows are kept for ``raw_results``
after the end of their UTC day (when the day's rollup is final), far longer than the few hours of
raw history that detection and the SLO checks read.

Steps, in this order: full failing images past their ``keep_until`` (the column is cleared, the
thumbnail stays); thumbnails beyond the newest ``thumbnails_kept`` per (service, canary) and older
than ``thumbnails``; raw ``probe_results`` rows (except those whose thumbnail is still kept: a
result with an image is deleted once its image row is gone); ``alert_outbox`` rows delivered
longer ago than ``delivered_alerts``, or never delivered and created longer ago than
``undelivered_alerts``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Executable, Select, delete, exists, func, or_, select, update

from monitor.config.retention import RetentionSettings
from monitor.store.models import AlertOutbox, ProbeResultRow, ResultImageRow, table_of

__all__ = ["RetentionSettings", "run_retention"]

logger = logging.getLogger("genstatus.store")

DEFAULT_BATCH_SIZE = 500


def run_retention(
    engine: Engine, settings: RetentionSettings, now: datetime, batch_size: int = DEFAULT_BATCH_SIZE
) -> dict[str, int]:
    """Delete what ``settings`` no longer keeps, ``batch_size`` rows per transaction.

    Returns how many were removed per kind: ``kept_images`` (full images cleared),
    ``result_images`` (thumbnail rows), ``probe_results``, ``alert_outbox``.
    """
    if now.tzinfo is None:
        raise ValueError("run_retention needs a timezone-aware now (UTC)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    now = now.astimezone(UTC)
    images, results, outbox = table_of(ResultImageRow), table_of(ProbeResultRow), table_of(AlertOutbox)

    expired = select(images.c.result_id).where(images.c.keep_until < now, images.c.image.is_not(None))
    ranked = select(
        images.c.result_id, images.c.created_at, images.c.keep_until,
        func.row_number().over(partition_by=(images.c.service_id, images.c.canary_id),
                               order_by=images.c.result_id.desc()).label("rank"),
    ).subquery()
    old_thumbnails = select(ranked.c.result_id).where(
        ranked.c.rank > settings.thumbnails_kept,
        ranked.c.created_at < now - settings.thumbnails,
        or_(ranked.c.keep_until.is_(None), ranked.c.keep_until < now),
    )
    old_results = select(results.c.id).where(
        results.c.started_at < raw_results_cutoff(settings, now),
        ~exists().where(images.c.result_id == results.c.id),
    )
    old_alerts = select(outbox.c.id).where(or_(
        outbox.c.delivered_at < now - settings.delivered_alerts,
        outbox.c.delivered_at.is_(None) & (outbox.c.created_at < now - settings.undelivered_alerts),
    ))

    counts = {
        "kept_images": _in_batches(engine, expired, batch_size, lambda ids: update(images).where(
            images.c.result_id.in_(ids)).values(image=None, image_format=None)),
        "result_images": _in_batches(engine, old_thumbnails, batch_size,
                                     lambda ids: delete(images).where(images.c.result_id.in_(ids))),
        "probe_results": _in_batches(engine, old_results, batch_size,
                                     lambda ids: delete(results).where(results.c.id.in_(ids))),
        "alert_outbox": _in_batches(engine, old_alerts, batch_size,
                                    lambda ids: delete(outbox).where(outbox.c.id.in_(ids))),
    }
    if any(counts.values()):
        logger.info("retention: %s", ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    return counts


def raw_results_cutoff(settings: RetentionSettings, now: datetime) -> datetime:
    """Raw rows started before this are deleted: their UTC day ended at least ``raw_results`` ago."""
    return (now.astimezone(UTC) - settings.raw_results).replace(hour=0, minute=0, second=0, microsecond=0)


def _in_batches(
    engine: Engine, ids: Select[Any], batch_size: int, statement: Callable[[Sequence[Any]], Executable]
) -> int:
    """Repeat (select up to ``batch_size`` ids; apply ``statement`` to them; commit) until a batch comes up short."""
    total = 0
    while True:
        with engine.begin() as connection:
            batch = connection.scalars(ids.limit(batch_size)).all()
            if batch:
                connection.execute(statement(batch))
        total += len(batch)
        if len(batch) < batch_size:
            return total
