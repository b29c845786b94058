"""Reference profiles in the database: capture (``genstatus baseline``), load, and the recent
outputs the stuck-output check compares with.  Every agent and the web read the same rows."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Integer, Select, bindparam, delete, insert, select

from monitor.scoring.profile import (
    RecentOutput,
    ReferenceImage,
    ReferenceProfile,
    profile_seed,
)
from monitor.store.models import ProbeResultRow, ReferenceImageRow, table_of, utcnow

logger = logging.getLogger("genstatus.references")

RECENT_OUTPUTS = 5  # previous outputs the stuck-output check looks at
PROFILE_TTL_S = 60.0  # a new baseline reaches every agent within this


def load_profile(engine: Engine, service_id: str, canary_id: str) -> ReferenceProfile | None:
    table = table_of(ReferenceImageRow)
    with engine.connect() as connection:
        rows = connection.execute(
            select(table).where(table.c.service_id == service_id, table.c.canary_id == canary_id)
            .order_by(table.c.id)
        ).mappings().all()
    if not rows:
        return None
    images = [ReferenceImage(hashes=dict(r["hashes"] or {}), stats=dict(r["stats"] or {}),
                             histogram=list(r["histogram"] or []), seed=r["seed"], thumbnail=r["thumbnail"],
                             sha256=r["image_sha256"]) for r in rows]
    return ReferenceProfile(images=images, seed=profile_seed(images))


def save_profile(engine: Engine, service_id: str, canary_id: str, entries: list[ReferenceImage], *,
                 region: str, sizes: list[tuple[int | None, int | None]] | None = None,
                 model_version: str | None = None) -> None:
    """Replace the (service, canary) reference set in one transaction."""
    table = table_of(ReferenceImageRow)
    now = utcnow()
    sizes = sizes or [(None, None)] * len(entries)
    rows = [{"service_id": service_id, "canary_id": canary_id, "captured_at": now, "region": region,
             "seed": e.seed, "model_version": model_version, "image_sha256": e.sha256,
             "image_width": w, "image_height": h, "hashes": e.hashes, "stats": e.stats,
             "histogram": e.histogram, "thumbnail": e.thumbnail} for e, (w, h) in zip(entries, sizes)]
    with engine.begin() as connection:
        connection.execute(delete(table).where(table.c.service_id == service_id, table.c.canary_id == canary_id))
        if rows:
            connection.execute(insert(table), rows)


def _recent_outputs_statement() -> Select[tuple[Any, Any, Any]]:
    """Built once: building it cost more than running it (parameters ``p_service``, ``p_canary``, ``p_limit``)."""
    table = table_of(ProbeResultRow)
    return (select(table.c.seed, table.c.hashes, table.c.image_sha256)
            .where(table.c.service_id == bindparam("p_service"), table.c.canary_id == bindparam("p_canary"),
                   table.c.phash.is_not(None))
            .order_by(table.c.started_at.desc()).limit(bindparam("p_limit", type_=Integer)))


_RECENT_OUTPUTS = _recent_outputs_statement()


def recent_outputs(engine: Engine, service_id: str, canary_id: str, limit: int = RECENT_OUTPUTS) -> list[RecentOutput]:
    """The canary's newest scored outputs (any region), newest first."""
    with engine.connect() as connection:
        rows = connection.execute(_RECENT_OUTPUTS, {"p_service": service_id, "p_canary": canary_id, "p_limit": limit}).all()
    return [RecentOutput(seed=seed, hashes=dict(hashes or {}), sha256=sha) for seed, hashes, sha in rows]


@dataclass
class QualityContext:
    profile: ReferenceProfile | None = None
    recent: list[RecentOutput] = field(default_factory=list)


class ReferenceSource:
    """What the runner needs to score against this canary's normal, read from the database.

    Profiles are cached for ``PROFILE_TTL_S``; recent outputs are read each run (one indexed
    query).  A database outage degrades scoring to the checks that need no history: it never
    fails a probe.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.clock = clock
        self._profiles: dict[tuple[str, str], tuple[float, ReferenceProfile | None]] = {}
        self._lock = threading.Lock()
        self._warned = False

    def __call__(self, service_id: str, canary_id: str | None) -> QualityContext:
        if canary_id is None:
            return QualityContext()
        try:
            return QualityContext(self._profile(service_id, canary_id), recent_outputs(self.engine, service_id, canary_id))
        except Exception as exc:  # noqa: BLE001 - history is optional for scoring
            if not self._warned:
                logger.warning("reference data unavailable (%s): scoring without profile and history", exc)
                self._warned = True
            return QualityContext()

    def _profile(self, service_id: str, canary_id: str) -> ReferenceProfile | None:
        key = (service_id, canary_id)
        now = self.clock()
        with self._lock:
            cached = self._profiles.get(key)
            if cached is not None and now - cached[0] < PROFILE_TTL_S:
                return cached[1]
        profile = load_profile(self.engine, service_id, canary_id)
        with self._lock:
            self._profiles[key] = (now, profile)
        return profile
