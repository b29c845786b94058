"""A deterministic status-page history for benchmarks: services, rollups, raw results, thumbnails and incidents.

The world is simulated run by run with numpy: every scheduled canary run of every (service, region)
at the cadence, plus one confirmation run 20 s after each run that failed as down, with background
noise and the failures of the incidents.  What is stored is what production keeps after its
retention job (``monitor.config.retention``, ``monitor.store.retention``):

* ``rollup_hourly`` and ``rollup_daily`` for the whole history (rollups are kept forever), exactly
  the sums of the runs they stand for;
* raw ``probe_results`` rows only from ``raw_results_cutoff`` on (by default the retention's 30 days,
  counted from the end of their UTC day), or from ``raw_days`` ago when that is given;
* ``result_images``: the newest ``THUMBNAILS_KEPT`` (12) thumbnails per (service, canary), as the
  store prunes them;
* incidents (about ``incidents_per_month`` per service, 1 in 10 operator-only, a few still open)
  with their updates, some written by hand with public titles and postmortems, and two maintenance
  windows (one completed, one upcoming).

Raw rows leave out what no page reads and would only make the file bigger: image hashes, request
ids, idempotency keys, model versions and revised prompts are NULL.

The schema comes from the real migrations (``monitor.store.migrate.upgrade``) and the catalog from
``ResultStore.sync_catalog``; the bulk rows go through one plain ``sqlite3`` connection in one
transaction per simulated day (``executemany``).  Same spec and seed, same database.

    python -m benchmarks.sitegen /tmp/site.db --services 50 --days 90   # a site to look at
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.config.schema import CanaryConfig, ServiceConfig
from monitor.enums import (
    DOWN_OUTCOMES,
    IMAGE_OUTCOMES,
    Audience,
    Impact,
    IncidentKind,
    IncidentStatus,
    Outcome,
    ProbeKind,
)
from monitor.store.db import make_engine
from monitor.store.histogram import COLUMN_NAMES as HISTOGRAM_COLUMNS
from monitor.store.histogram import UPPER_BOUNDS_MS
from monitor.store.migrate import upgrade
from monitor.store.models import Incident, IncidentUpdate, Maintenance, rollup_daily, rollup_hourly, table_of
from monitor.store.models import ProbeResultRow as ProbeResultModel
from monitor.store.results import THUMBNAILS_KEPT, ResultStore
from monitor.store.retention import RetentionSettings, raw_results_cutoff

REGIONS = ("us-east", "eu-west", "ap-southeast", "us-west", "eu-central", "ap-northeast", "sa-east", "af-south")
#: (group, provider) of the services, round robin
GROUPS = (("OpenAI", "openai"), ("Google", "google"), ("Stability AI", "stability"),
          ("Black Forest Labs", "bfl"), ("Independent hosts", "replicate"))
CANARIES = (CanaryConfig(id="cat-photo", prompt="A photo of a ginger cat asleep on a sunny windowsill"),
            CanaryConfig(id="shop-sign", prompt='A wooden shop sign that says "OPEN" in red letters'))
#: seconds after a failed run that its confirmation run starts
CONFIRMATION_DELAY_S = 20
#: seconds a run may take (the ``timeout`` of a service): what a timeout's latency is
TIMEOUT_S = 180

OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)
CODE = {outcome: code for code, outcome in enumerate(OUTCOMES)}
#: background share of each outcome outside incidents (``ok`` takes the rest)
BACKGROUND = {
    Outcome.SLOW: 0.010, Outcome.DEGRADED_QUALITY: 0.003, Outcome.BAD_OUTPUT: 0.0005,
    Outcome.CONTENT_FILTERED: 0.002, Outcome.RATE_LIMITED: 0.005, Outcome.SERVER_ERROR: 0.003,
    Outcome.TIMEOUT: 0.004, Outcome.CONNECTION_ERROR: 0.001, Outcome.CLIENT_ERROR: 0.0005,
    Outcome.AUTH_ERROR: 0.0002, Outcome.PROBE_ERROR: 0.0005,
}
#: what a failing run of an outage answers
OUTAGE_MIX = {Outcome.SERVER_ERROR: 0.6, Outcome.TIMEOUT: 0.3, Outcome.CONNECTION_ERROR: 0.1}
HTTP_STATUS = {Outcome.OK: 200, Outcome.SLOW: 200, Outcome.DEGRADED_QUALITY: 200, Outcome.BAD_OUTPUT: 200,
               Outcome.CONTENT_FILTERED: 400, Outcome.RATE_LIMITED: 429, Outcome.SERVER_ERROR: 503,
               Outcome.CLIENT_ERROR: 400, Outcome.AUTH_ERROR: 401}
ERROR_DETAIL = {Outcome.BAD_OUTPUT: "response had no decodable image",
                Outcome.CONTENT_FILTERED: "HTTP 400: content_policy_violation",
                Outcome.RATE_LIMITED: "HTTP 429: rate limit reached for requests",
                Outcome.SERVER_ERROR: "HTTP 503: the server is overloaded (internal error 8c1f)",
                Outcome.TIMEOUT: f"no result within {TIMEOUT_S} s",
                Outcome.CONNECTION_ERROR: "connection reset by peer (10.0.3.7:443)",
                Outcome.CLIENT_ERROR: "HTTP 400: invalid size parameter",
                Outcome.AUTH_ERROR: "HTTP 401: invalid api key sk-...abcd",
                Outcome.PROBE_ERROR: "Traceback (most recent call last): KeyError 'data'"}

# what an incident does to the runs it covers
CALM, MAJOR_OUTAGE, MINOR_OUTAGE, SLOWNESS, BAD_QUALITY = range(5)
DOWN_SHARE = {MAJOR_OUTAGE: 0.92, MINOR_OUTAGE: 0.35}

RAW_COLUMNS = ("service_id", "canary_id", "region", "kind", "started_at", "finished_at", "outcome", "submit_ms",
               "queue_ms", "generation_ms", "download_ms", "total_ms", "http_status", "error_detail", "image_bytes",
               "image_format", "image_width", "image_height", "quality_score", "quality_verdict", "quality_flags",
               "quality_reasons", "cost")


@dataclass(frozen=True)
class SiteSpec:
    """What to generate.  ``raw_days`` None keeps raw rows as the default retention does."""

    services: int = 50
    regions: int = 3
    days: float = 90
    cadence: timedelta = timedelta(minutes=1)
    raw_days: float | None = None
    incidents_per_month: float = 2.0  # per service
    open_incidents: int = 3
    seed: int = 20240601


@dataclass
class Site:
    """A generated database and what it holds."""

    path: Path
    spec: SiteSpec
    config: Config
    now: datetime  # the end of the history: the newest run started just before
    raw_since: datetime  # raw rows start here (older days exist as rollups only)
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows written
    runs: int = 0  # simulated runs, all of them counted in the rollups
    seconds: float = 0.0  # generation time
    bytes: int = 0  # the file's size once written

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"


def site_config(spec: SiteSpec, database: str = "sqlite://") -> Config:
    """The config of the generated site: its services (every one probes both canaries) and regions' cadence."""
    services = []
    for i in range(spec.services):
        group, provider = GROUPS[i % len(GROUPS)]
        services.append(ServiceConfig(
            id=f"{provider}-{i:02d}", name=f"{group} model {i:02d}", group=group, provider=provider,
            model=f"image-model-{i % 7}", canaries=[c.id for c in CANARIES], interval=spec.cadence,
            cost_per_image=0.04))
    return Config(database=database, canaries=list(CANARIES), services=services)


def regions(spec: SiteSpec) -> tuple[str, ...]:
    names = list(REGIONS[: spec.regions])
    names += [f"region-{i}" for i in range(len(names), spec.regions)]
    return tuple(names)


# -- incidents ------------------------------------------------------------------------------


@dataclass
class PlannedIncident:
    service: str
    kind: IncidentKind
    impact: Impact
    audience: Audience
    regions: tuple[str, ...]
    start: datetime
    end: datetime | None  # None: still open
    effect: int


def plan_incidents(spec: SiteSpec, services: Sequence[str], zones: Sequence[str], start: datetime, now: datetime,
                   rng: np.random.Generator) -> list[PlannedIncident]:
    """Incidents over ``[start, now)``: Poisson per service, 5 min - 8 h long; ``open_incidents`` still open."""
    span = (now - start).total_seconds()
    planned: list[PlannedIncident] = []
    for service in services:
        for _ in range(rng.poisson(spec.incidents_per_month * span / (30 * 86400))):
            minutes = float(np.clip(rng.lognormal(math.log(40), 1.0), 5, 480))
            begin = start + timedelta(seconds=float(rng.uniform(0, span)))
            end = begin + timedelta(minutes=minutes)
            if end >= now - timedelta(minutes=30):
                continue  # resolved incidents end before the last half hour; open ones come below
            planned.append(_incident(service, zones, begin, end, rng))
    count = min(spec.open_incidents, len(services))
    for i in range(count):
        service = services[i * len(services) // count]  # distinct services: one open incident each
        begin = now - timedelta(minutes=float(rng.uniform(20, min(180, span / 60))))
        planned.append(_incident(service, zones, max(begin, start), None, rng, Audience.PUBLIC))
    return planned


def _incident(service: str, zones: Sequence[str], start: datetime, end: datetime | None,
              rng: np.random.Generator, audience: Audience | None = None) -> PlannedIncident:
    draw = rng.random()
    public = audience or (Audience.OPERATOR if rng.random() < 0.1 else Audience.PUBLIC)
    if draw < 0.3:
        return PlannedIncident(service, IncidentKind.OUTAGE, Impact.MAJOR, public, tuple(zones), start, end, MAJOR_OUTAGE)
    if draw < 0.7:
        zone = (zones[int(rng.integers(len(zones)))],)
        return PlannedIncident(service, IncidentKind.OUTAGE, Impact.MINOR, public, zone, start, end, MINOR_OUTAGE)
    if draw < 0.9:
        return PlannedIncident(service, IncidentKind.LATENCY, Impact.MINOR, public, tuple(zones), start, end, SLOWNESS)
    return PlannedIncident(service, IncidentKind.QUALITY, Impact.MINOR, public, tuple(zones), start, end, BAD_QUALITY)


TITLES = {IncidentKind.OUTAGE: "Elevated error rates for {name}", IncidentKind.LATENCY: "Slow image generation for {name}",
          IncidentKind.QUALITY: "Degraded image quality for {name}"}
UPDATES = (
    (IncidentStatus.INVESTIGATING, "We are seeing failed generations from {name} in {regions} and are looking into it."),
    (IncidentStatus.IDENTIFIED, "The provider has confirmed the problem; requests in {regions} are affected."),
    (IncidentStatus.MONITORING, "Generations are succeeding again; we are watching the results closely."),
    (IncidentStatus.RESOLVED, "This incident has been resolved: all checks have passed for 15 minutes."),
)
POSTMORTEM = ("## What happened\n\nBetween {start} and {end} UTC most image generations from {name} failed "
              "with server errors.\n\n## Why\n\nThe provider rolled out a new model build that ran out of GPU "
              "memory under load.\n\n## What we changed\n\n* confirmation runs now start sooner\n"
              "* the public page shows per-region results\n") * 3


def incident_rows(planned: Sequence[PlannedIncident], names: dict[str, str], now: datetime,
                  rng: np.random.Generator) -> Iterator[Incident]:
    """The ORM rows of the planned incidents, each with the updates posted so far."""
    for p in planned:
        name, zones = names[p.service], ", ".join(p.regions)
        detected = p.start + timedelta(minutes=2)
        manual = rng.random() < 0.15
        row = Incident(
            service_id=p.service, kind=p.kind.value, audience=p.audience.value, impact=p.impact.value,
            title=TITLES[p.kind].format(name=name), regions=list(p.regions), started_at=p.start, detected_at=detected,
            resolved_at=None if p.end is None else p.end + timedelta(minutes=5), created_at=detected,
            updated_at=p.end or detected, source="manual" if manual else "auto",
            public_title=f"{name}: generations failing" if manual else None,
            public_body=f"Some generations from {name} fail; retrying usually works." if manual else None,
        )
        ends = p.end + timedelta(minutes=5) if p.end is not None else now
        steps = UPDATES if p.end is not None else UPDATES[: 1 + int(rng.integers(2))]
        for i, (status, text) in enumerate(steps):
            at = p.start + (ends - p.start) * (i / max(1, len(UPDATES) - 1)) + timedelta(minutes=2)
            at = min(at, now)
            row.updates.append(IncidentUpdate(status=status.value, body=text.format(name=name, regions=zones),
                                              created_at=at, display_at=at, author="ops" if manual else None))
        row.status = row.updates[-1].status
        if p.end is not None and p.impact is Impact.MAJOR and p.audience is Audience.PUBLIC and rng.random() < 0.3:
            row.postmortem = POSTMORTEM.format(start=p.start.strftime("%H:%M"), end=p.end.strftime("%H:%M"), name=name)
            row.postmortem_at = p.end + timedelta(days=2) if p.end + timedelta(days=2) < now else now
        yield row


# -- the runs -------------------------------------------------------------------------------


def _cumulative(shares: dict[Outcome, float]) -> tuple[np.ndarray, np.ndarray]:
    codes = np.array([CODE[o] for o in shares])
    return codes, np.cumsum(np.array(list(shares.values())))


BACKGROUND_TABLE = _cumulative({Outcome.OK: 1.0 - sum(BACKGROUND.values()), **BACKGROUND})
OUTAGE_TABLE = _cumulative(OUTAGE_MIX)
IMAGE_CODES = np.array(sorted(CODE[o] for o in IMAGE_OUTCOMES))
DOWN_CODES = np.array(sorted(CODE[o] for o in DOWN_OUTCOMES))
BOUNDS = np.array(UPPER_BOUNDS_MS)


def _draw(table: tuple[np.ndarray, np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    codes, cumulative = table
    return codes[np.minimum(np.searchsorted(cumulative, rng.random(size) * cumulative[-1], side="right"), len(codes) - 1)]


def bucket_indexes(latency_ms: np.ndarray) -> np.ndarray:
    """``monitor.store.histogram.bucket_index`` for an array."""
    return np.searchsorted(BOUNDS, latency_ms, side="right")


@dataclass
class Runs:
    """The runs of one UTC day, all (service, region) pairs together; ``pair`` indexes ``services x regions``."""

    pair: np.ndarray
    start_us: np.ndarray  # microseconds since the epoch
    outcome: np.ndarray  # codes into ``OUTCOMES``
    kind: np.ndarray  # 0 canary, 1 confirmation
    canary: np.ndarray  # index into ``CANARIES``
    total_ms: np.ndarray
    quality: np.ndarray  # NaN: no image scored
    cost: np.ndarray

    def __len__(self) -> int:
        return len(self.pair)


def simulate_day(day: datetime, begin: datetime, now: datetime, spec: SiteSpec, n_regions: int,
                 windows: dict[int, list[tuple[int, int, int]]], medians: np.ndarray, rng: np.random.Generator) -> Runs:
    """Every run started in ``[max(day, begin), min(day + 1 day, now))``; ``windows`` per pair: (start_us, end_us, effect)."""
    step = int(spec.cadence.total_seconds() * 1_000_000)
    pairs = spec.services * n_regions
    first_us, lo_us = int(day.timestamp() * 1e6), int(begin.timestamp() * 1e6)
    hi_us = min(int((day + timedelta(days=1)).timestamp() * 1e6), int(now.timestamp() * 1e6))
    slots = np.arange(first_us, first_us + 86_400_000_000, step, dtype=np.int64)
    offsets = (np.arange(pairs, dtype=np.int64) * 7_919_000) % step  # each pair at its own second of the minute
    start = (slots[None, :] + offsets[:, None]).ravel()
    pair = np.repeat(np.arange(pairs), len(slots))
    keep = (start >= lo_us) & (start < hi_us)
    start, pair = start[keep], pair[keep]
    outcome = _draw(BACKGROUND_TABLE, len(start), rng)
    effect = np.zeros(len(start), dtype=np.int8)
    for index, spans in windows.items():
        for s, e, what in spans:
            if e <= lo_us or s >= hi_us:
                continue
            first, last = np.searchsorted(pair, (index, index + 1))  # a pair's runs are contiguous, in time order
            effect[first + np.searchsorted(start[first:last], s):first + np.searchsorted(start[first:last], e)] = what
    _apply_effects(outcome, effect, rng)
    canary = ((start - first_us) // step % len(CANARIES)).astype(np.int8)
    # a confirmation run after each failed run: the same failure when an outage goes on, mostly fine otherwise
    failed = np.flatnonzero(np.isin(outcome, DOWN_CODES) & (start + CONFIRMATION_DELAY_S * 1_000_000 < hi_us))
    again = np.where(np.isin(effect[failed], (MAJOR_OUTAGE, MINOR_OUTAGE)) & (rng.random(len(failed)) < 0.9),
                     outcome[failed], _draw(BACKGROUND_TABLE, len(failed), rng))
    pair = np.concatenate([pair, pair[failed]])
    start = np.concatenate([start, start[failed] + CONFIRMATION_DELAY_S * 1_000_000])
    outcome = np.concatenate([outcome, again])
    kind = np.concatenate([np.zeros(len(effect), np.int8), np.ones(len(failed), np.int8)])
    canary = np.concatenate([canary, canary[failed]])
    order = np.argsort(start, kind="stable")
    pair, start, outcome, kind, canary = pair[order], start[order], outcome[order], kind[order], canary[order]
    return Runs(pair, start, outcome, kind, canary, *_measures(pair, outcome, medians, n_regions, rng))


def _apply_effects(outcome: np.ndarray, effect: np.ndarray, rng: np.random.Generator) -> None:
    for kind, share in DOWN_SHARE.items():
        hit = np.flatnonzero(effect == kind)
        down = hit[rng.random(len(hit)) < share]
        outcome[down] = _draw(OUTAGE_TABLE, len(down), rng)
    slow = np.flatnonzero(effect == SLOWNESS)
    outcome[slow[rng.random(len(slow)) < 0.6]] = CODE[Outcome.SLOW]
    poor = np.flatnonzero(effect == BAD_QUALITY)
    outcome[poor[rng.random(len(poor)) < 0.4]] = CODE[Outcome.DEGRADED_QUALITY]


def _measures(pair: np.ndarray, outcome: np.ndarray, medians: np.ndarray, n_regions: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(total_ms, quality, cost) of each run."""
    image = np.isin(outcome, IMAGE_CODES)
    total = np.where(image, rng.lognormal(np.log(medians[pair // n_regions]), 0.3), rng.lognormal(np.log(600), 0.6))
    total = np.where(outcome == CODE[Outcome.SLOW], total * 3, total)
    total = np.where(outcome == CODE[Outcome.TIMEOUT], TIMEOUT_S * 1000.0, total)
    quality = np.where(image, np.clip(rng.normal(0.86, 0.04, len(pair)), 0, 1), np.nan)
    poor = outcome == CODE[Outcome.DEGRADED_QUALITY]
    quality = np.where(poor, np.clip(rng.normal(0.45, 0.08, len(pair)), 0, 1), quality)
    return np.round(total, 1), np.round(quality, 4), np.where(image, 0.04, 0.0)


# -- rows -----------------------------------------------------------------------------------


def _timestamps(us: np.ndarray) -> list[str]:
    """SQLAlchemy's SQLite storage format for ``UTCDateTime``: ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC)."""
    return [s.replace("T", " ") for s in np.datetime_as_string(us.astype("datetime64[us]"), unit="us").tolist()]


def _nullable(values: np.ndarray) -> list[Any]:
    return [None if v != v else v for v in values.tolist()]


def raw_rows(runs: Runs, services: Sequence[str], zones: Sequence[str]) -> Iterator[tuple]:
    """``probe_results`` rows (``RAW_COLUMNS``) of the runs, in start order."""
    n_regions = len(zones)
    image = np.isin(runs.outcome, IMAGE_CODES)
    total = runs.total_ms
    generation = np.where(image, np.round(total * 0.8, 1), np.nan)
    phases = [_nullable(np.where(image, np.round(total * share, 1), np.nan)) for share in (0.05, 0.10)]
    download = _nullable(np.where(image, np.round(total * 0.05, 1), np.nan))
    names = [o.value for o in OUTCOMES]
    status = [HTTP_STATUS.get(o) for o in OUTCOMES]
    detail = [ERROR_DETAIL.get(o) for o in OUTCOMES]
    verdicts = np.where(runs.outcome == CODE[Outcome.DEGRADED_QUALITY], "fail", "pass").tolist()
    kinds = (ProbeKind.CANARY.value, ProbeKind.CONFIRMATION.value)
    canaries = [c.id for c in CANARIES]
    codes, pairs = runs.outcome.tolist(), runs.pair.tolist()
    images = image.tolist()
    quality = _nullable(runs.quality)
    for row in zip(pairs, runs.canary.tolist(), runs.kind.tolist(), _timestamps(runs.start_us),
                   _timestamps(runs.start_us + (total * 1000).astype(np.int64)), codes, phases[0], phases[1],
                   _nullable(generation), download, total.tolist(), images, verdicts, quality, runs.cost.tolist(),
                   strict=True):
        p, canary, kind, started, finished, code, submit, queue, gen, down, tot, has_image, verdict, score, cost = row
        yield (services[p // n_regions], canaries[canary], zones[p % n_regions], kinds[kind], started, finished,
               names[code], submit, queue, gen, down, tot, status[code], detail[code],
               1_254_000 if has_image else None, "png" if has_image else None, 1024 if has_image else None,
               1024 if has_image else None, score, verdict if has_image else None, "[]" if has_image else None,
               ('["blurry", "low detail"]' if verdict == "fail" else "[]") if has_image else None,
               cost if has_image else None)


def rollup_rows(runs: Runs, day: datetime, services: Sequence[str], zones: Sequence[str]) -> tuple[list[tuple], list[tuple]]:
    """(hourly rows, daily rows) in the column order of the rollup tables; canary and confirmation runs
    count, as ``monitor.store.rollups`` counts them."""
    n_regions, n_outcomes, n_buckets = len(zones), len(OUTCOMES), len(HISTOGRAM_COLUMNS)
    pairs = len(services) * n_regions
    hour = ((runs.start_us - int(day.timestamp() * 1e6)) // 3_600_000_000).astype(np.int64)
    key = runs.pair.astype(np.int64) * 24 + hour
    cells = pairs * 24
    counts = np.bincount(key * n_outcomes + runs.outcome, minlength=cells * n_outcomes).reshape(cells, n_outcomes)
    timed = np.isin(runs.outcome, IMAGE_CODES)
    tkey, latency = key[timed], runs.total_ms[timed]
    histogram = np.bincount(tkey * n_buckets + bucket_indexes(latency), minlength=cells * n_buckets).reshape(cells, n_buckets)
    latency_sum = np.bincount(tkey, weights=latency, minlength=cells)
    latency_max = np.full(cells, -np.inf)
    np.maximum.at(latency_max, tkey, latency)
    scored = ~np.isnan(runs.quality)
    qkey, quality = key[scored], runs.quality[scored]
    quality_count = np.bincount(qkey, minlength=cells)
    quality_sum = np.bincount(qkey, weights=quality, minlength=cells)
    quality_min = np.full(cells, np.inf)
    np.minimum.at(quality_min, qkey, quality)
    cost = np.bincount(key, weights=runs.cost, minlength=cells)
    hourly = _table_rows(rollup_hourly, counts, histogram, latency_sum, latency_max, quality_count, quality_sum,
                         quality_min, cost, [day + timedelta(hours=h) for h in range(24)], services, zones)

    def per_day(values: np.ndarray, reduce=np.sum) -> np.ndarray:
        return reduce(values.reshape(pairs, 24, *values.shape[1:]), axis=1)

    daily = _table_rows(rollup_daily, per_day(counts), per_day(histogram), per_day(latency_sum),
                        per_day(latency_max, np.max), per_day(quality_count), per_day(quality_sum),
                        per_day(quality_min, np.min), per_day(cost), [day], services, zones)
    return hourly, daily


def _table_rows(table, counts, histogram, latency_sum, latency_max, quality_count, quality_sum, quality_min, cost,
                buckets: list[datetime], services: Sequence[str], zones: Sequence[str]) -> list[tuple]:
    n_regions, per_pair = len(zones), len(buckets)
    stamps = [b.strftime("%Y-%m-%d %H:%M:%S.%f") for b in buckets]
    total = counts.sum(axis=1)
    latency_count = histogram.sum(axis=1)
    rows = []
    for cell in np.flatnonzero(total).tolist():
        pair, slot = divmod(cell, per_pair)
        lat_max, q_min = float(latency_max[cell]), float(quality_min[cell])
        values = {
            "service_id": services[pair // n_regions], "region": zones[pair % n_regions], "bucket_start": stamps[slot],
            "n_total": int(total[cell]), **{f"n_{o.value}": int(counts[cell, i]) for i, o in enumerate(OUTCOMES)},
            "latency_count": int(latency_count[cell]), "latency_sum_ms": round(float(latency_sum[cell]), 3),
            "latency_max_ms": lat_max if math.isfinite(lat_max) else None,
            **{name: int(histogram[cell, i]) for i, name in enumerate(HISTOGRAM_COLUMNS)},
            "quality_count": int(quality_count[cell]), "quality_sum": round(float(quality_sum[cell]), 4),
            "quality_min": q_min if math.isfinite(q_min) else None, "cost_sum": round(float(cost[cell]), 4),
        }
        rows.append(tuple(values[c.name] for c in table.columns))
    return rows


def _insert(table_name: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table_name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _thumbnails() -> list[bytes]:
    """One production-sized WebP thumbnail (``monitor.scoring.profile.thumbnail``) per canary."""
    from PIL import Image

    from monitor.scoring.profile import thumbnail

    pictures = []
    for i in range(len(CANARIES)):
        noise = np.random.default_rng(i).integers(0, 255, (256, 256, 3), dtype=np.uint8)
        ramp = np.linspace(0, 255, 256, dtype=np.uint8)[None, :, None]
        pictures.append(thumbnail(Image.fromarray((noise // 4 + ramp * (i + 1) // 3).astype(np.uint8)).resize((1024, 1024))))
    return pictures


# -- the whole site -------------------------------------------------------------------------


def generate(path: str | Path, spec: SiteSpec = SiteSpec(), now: datetime | None = None, progress=None) -> Site:
    """Write the site's database at ``path`` (a new file).  ``now`` (default: the current time) ends the history."""
    began = time.perf_counter()
    path = Path(path)
    if path.exists():
        raise FileExistsError(path)
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    start = now - timedelta(days=spec.days)
    raw_since = raw_results_cutoff(RetentionSettings(), now) if spec.raw_days is None else now - timedelta(days=spec.raw_days)
    config = site_config(spec, f"sqlite:///{path}")
    services = [s.id for s in config.services]
    zones = regions(spec)
    rng = np.random.default_rng(spec.seed)
    site = Site(path, spec, config, now, max(raw_since, start))

    engine = make_engine(site.url)
    try:
        upgrade(engine)
        ResultStore(engine).sync_catalog(config)
        planned = plan_incidents(spec, services, zones, start, now, rng)
        with Session(engine) as session, session.begin():
            session.add_all(incident_rows(planned, {s.id: s.display_name for s in config.services}, now, rng))
            session.add_all(_maintenances(services, now))
        site.rows["incidents"] = len(planned)
    finally:
        engine.dispose()

    windows: dict[int, list[tuple[int, int, int]]] = {i: [] for i in range(len(services) * len(zones))}
    for p in planned:
        end_us = int((p.end or now + timedelta(days=1)).timestamp() * 1e6)
        for zone in p.regions:
            windows[services.index(p.service) * len(zones) + zones.index(zone)].append(
                (int(p.start.timestamp() * 1e6), end_us, p.effect))
    medians = rng.lognormal(math.log(9000), 0.5, len(services))  # each service's typical generation time, ms

    connection = sqlite3.connect(path, isolation_level=None)
    try:
        _fast_writes(connection)
        raw_sql = _insert("probe_results", RAW_COLUMNS)
        hourly_sql = _insert(rollup_hourly.name, [c.name for c in rollup_hourly.columns])
        daily_sql = _insert(rollup_daily.name, [c.name for c in rollup_daily.columns])
        counts = dict.fromkeys(("probe_results", "rollup_hourly", "rollup_daily"), 0)
        day = start.replace(hour=0, minute=0, second=0)
        while day < now:
            runs = simulate_day(day, start, now, spec, len(zones), windows, medians, rng)
            hourly, daily = rollup_rows(runs, day, services, zones)
            connection.execute("BEGIN")
            connection.executemany(hourly_sql, hourly)
            connection.executemany(daily_sql, daily)
            kept = runs.start_us >= int(site.raw_since.timestamp() * 1e6)
            if kept.any():
                recent = Runs(*(getattr(runs, f)[kept] for f in Runs.__dataclass_fields__))
                connection.executemany(raw_sql, raw_rows(recent, services, zones))
                counts["probe_results"] += int(kept.sum())
            connection.execute("COMMIT")
            counts["rollup_hourly"] += len(hourly)
            counts["rollup_daily"] += len(daily)
            site.runs += len(runs)
            if progress:
                progress(day, site.runs, counts["probe_results"])
            day += timedelta(days=1)
        counts["result_images"] = _write_thumbnails(connection, now)
        connection.execute("PRAGMA journal_mode=WAL")  # what make_engine sets for the app
    finally:
        connection.close()
    site.rows.update(counts)
    site.seconds = time.perf_counter() - began
    site.bytes = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))  # with its -wal and -shm
    return site


def _fast_writes(connection: sqlite3.Connection) -> None:
    """A throwaway file written once: no journal, no fsync, a big page cache.  Foreign keys are
    off for the bulk rows only (they all name services and canaries of the catalog)."""
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-262144", "temp_store=MEMORY",
                   "foreign_keys=OFF"):
        connection.execute(f"PRAGMA {pragma}")


def _write_thumbnails(connection: sqlite3.Connection, now: datetime) -> int:
    """The newest ``THUMBNAILS_KEPT`` image results per (service, canary) get a thumbnail, as the store keeps them."""
    pictures = _thumbnails()
    image_outcomes = ", ".join(f"'{o.value}'" for o in sorted(IMAGE_OUTCOMES))
    since = (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    connection.execute("BEGIN")
    for i, canary in enumerate(CANARIES):
        connection.execute(
            "INSERT INTO result_images (result_id, service_id, canary_id, created_at, thumbnail) "
            "SELECT id, service_id, canary_id, started_at, ? FROM ("
            "  SELECT id, service_id, canary_id, started_at, row_number() OVER ("
            "    PARTITION BY service_id ORDER BY id DESC) AS rank FROM probe_results"
            f"  WHERE started_at >= ? AND canary_id = ? AND outcome IN ({image_outcomes})"
            ") WHERE rank <= ?", (pictures[i], since, canary.id, THUMBNAILS_KEPT))
    connection.execute("COMMIT")
    return int(connection.execute("SELECT count(*) FROM result_images").fetchone()[0])


def _maintenances(services: Sequence[str], now: datetime) -> list[Maintenance]:
    """One completed window last week and one upcoming tomorrow, each for a few services."""
    return [
        Maintenance(title="Provider API migration", body="Requests may fail briefly.", services=list(services[:3]),
                    starts_at=now - timedelta(days=6, hours=2), ends_at=now - timedelta(days=6), status="completed",
                    author="ops", created_at=now - timedelta(days=9), updated_at=now - timedelta(days=6)),
        Maintenance(title="Scheduled model upgrade", body="New model build; short interruptions expected.",
                    services=list(services[3:5]), starts_at=now + timedelta(days=1), ends_at=now + timedelta(days=1, hours=1),
                    status="scheduled", author="ops", created_at=now - timedelta(days=1), updated_at=now - timedelta(days=1)),
    ]


def describe(site: Site) -> str:
    """One line: what was kept, how big, how long it took."""
    spec = site.spec
    rows = ", ".join(f"{n:,} {table}" for table, n in site.rows.items())
    return (f"{spec.services} services x {spec.regions} regions, {spec.days:g} days at "
            f"{spec.cadence.total_seconds() / 60:g}-minute cadence: {site.runs:,} runs simulated; raw rows kept from "
            f"{site.raw_since:%Y-%m-%d %H:%M} UTC ({(site.now - site.raw_since).total_seconds() / 86400:.1f} days), "
            f"rollups for all of it; {rows}; {site.bytes / 1e6:,.0f} MB in {site.seconds:.1f} s")


assert set(table_of(ProbeResultModel).c.keys()) >= set(RAW_COLUMNS), "probe_results columns changed: update RAW_COLUMNS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sitegen", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="the SQLite file to write (must not exist)")
    parser.add_argument("--services", type=int, default=SiteSpec.services)
    parser.add_argument("--regions", type=int, default=SiteSpec.regions)
    parser.add_argument("--days", type=float, default=SiteSpec.days)
    parser.add_argument("--cadence", type=float, default=1.0, help="minutes between scheduled runs")
    parser.add_argument("--raw-days", type=float, default=None, help="days of raw rows (default: what retention keeps)")
    parser.add_argument("--seed", type=int, default=SiteSpec.seed)
    args = parser.parse_args(argv)
    spec = SiteSpec(services=args.services, regions=args.regions, days=args.days,
                    cadence=timedelta(minutes=args.cadence), raw_days=args.raw_days, seed=args.seed)
    print(describe(generate(args.path, spec)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
