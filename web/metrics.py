"""``/metrics``: the public state in Prometheus text format, read from the database at each scrape.

No probe runs in the web process and nothing is counted in its memory: a ``StatusCollector`` reads
the rollups, incidents and the shared ``web.snapshot`` when Prometheus scrapes, into a
``CollectorRegistry`` made for that scrape (never the global default registry, which would mix in
this process's own Python metrics and keep state between scrapes).

The endpoint is public like the page, so it shows what the page shows and no more: public
incidents only, and never the operator-only outcomes (``auth_error``, ``probe_error``).

* ``genstatus_probe_results_total{service,region,outcome}`` -- counter: canary and confirmation
  runs since the service was first probed, summed from ``rollup_daily``.  Rollups are only ever
  incremented and retention never deletes them, so this really is monotonic (``rate()`` works).
* ``genstatus_probe_latency_seconds{service}`` -- histogram of total latency of the runs that
  returned an image, all regions, over the same history.  Buckets are the rollups' fixed
  log-spaced buckets (``monitor.store.histogram``; a bucket's upper bound is exclusive there, ``le``
  is printed to six significant digits).  ``rollup_daily`` holds exactly the sums of
  ``rollup_hourly`` with 24 times fewer rows, so it is the one read.
* ``genstatus_quality_score_mean{service}`` -- gauge: the mean quality score over the last 24 hours
  (from ``rollup_hourly``; absent when nothing was scored).
* ``genstatus_uptime_30d_ratio{service}`` -- gauge (0..1): uptime over the last 30 days, counted
  like the pages and badges do (``web.uptime``).
* ``genstatus_open_incidents{service,kind,impact}`` -- gauge: open public incidents; every
  service has a series for each public kind and impact (0 when none).  Site-wide incidents (no
  service) have ``service=""``.
* ``genstatus_component_status{service,status}`` -- gauge, 1 for the current status and 0 for the
  others (``unknown`` when there is no recent data).
* ``genstatus_page_status{indicator}`` -- the page indicator (none, minor, major, critical), 1/0.
* ``genstatus_last_result_timestamp_seconds{service}`` -- the newest public result within the last
  24 hours (absent when none): how fresh the page's data is.  Scheduler lag itself is not stored
  in the database, so it is not exported here.
* ``genstatus_service_info{service,name,group}`` -- 1 per service, for joins by display name.

Summing a long history is not free (about 0.7 s for 20 services and a year of rollups on SQLite),
and the endpoint is public: one reading serves every scrape for ``SCRAPE_TTL`` seconds, and
concurrent scrapes wait for the one reading under way instead of starting their own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.enums import IMPACT_RANK, OPERATOR_OUTCOMES, Audience, ComponentStatus, Impact, IncidentKind, Outcome
from monitor.store.histogram import COLUMN_NAMES as HISTOGRAM_COLUMNS
from monitor.store.histogram import UPPER_BOUNDS_MS
from monitor.store.models import Incident, rollup_daily, rollup_hourly
from web import timefmt
from web.context import db_session, state
from web.queries import NO_DATA, ServiceInfo
from web.snapshot import Snapshot, snapshot
from web.uptime import calendar, histories

bp = Blueprint("metrics", __name__)

PREFIX = "genstatus"
PUBLIC_OUTCOMES = tuple(o for o in Outcome if o not in OPERATOR_OUTCOMES)
#: incident kinds the public sees (agent and operator incidents are the operator's)
PUBLIC_KINDS = (IncidentKind.OUTAGE, IncidentKind.LATENCY, IncidentKind.QUALITY, IncidentKind.SAFETY)
INCIDENT_IMPACTS = tuple(i for i in sorted(IMPACT_RANK, key=IMPACT_RANK.__getitem__) if i is not Impact.NONE)
STATUSES = (*(s.value for s in ComponentStatus), NO_DATA)
QUALITY_WINDOW = timedelta(hours=24)
UPTIME_DAYS = 30
#: seconds one reading of the database serves scrapes for
SCRAPE_TTL = 10.0
SCRAPE_EXTENSION = "genstatus.metrics"
#: ``le`` of each finite latency bucket, in seconds
BUCKET_BOUNDS = [f"{bound / 1000:.6g}" for bound in UPPER_BOUNDS_MS]


@dataclass
class Readings:
    """Everything one scrape exports, read from the database before any metric is built."""

    services: list[ServiceInfo]
    snapshot: Snapshot
    counts: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)  # (service, region) -> outcome -> n
    latency: dict[str, tuple[list[int], float]] = field(default_factory=dict)  # service -> (bucket counts, sum ms)
    quality: dict[str, float] = field(default_factory=dict)  # service -> mean over QUALITY_WINDOW
    uptime: dict[str, float] = field(default_factory=dict)  # service -> percent
    incidents: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (service, kind, impact) -> open


def read(session: Session, services: list[ServiceInfo], config: Config | None, now: datetime) -> Readings:
    ids = [s.id for s in services]
    readings = Readings(services, snapshot(session, services, config, now))
    d, h = rollup_daily, rollup_hourly
    for service_id, region, *counts in session.execute(
        select(d.c.service_id, d.c.region, *(func.sum(d.c[f"n_{o.value}"]) for o in PUBLIC_OUTCOMES))
        .where(d.c.service_id.in_(ids)).group_by(d.c.service_id, d.c.region)
    ):
        readings.counts[(service_id, region)] = {o.value: int(n or 0) for o, n in zip(PUBLIC_OUTCOMES, counts)}
    for service_id, sum_ms, *cells in session.execute(
        select(d.c.service_id, func.sum(d.c.latency_sum_ms), *(func.sum(d.c[name]) for name in HISTOGRAM_COLUMNS))
        .where(d.c.service_id.in_(ids)).group_by(d.c.service_id)
    ):
        readings.latency[service_id] = ([int(n or 0) for n in cells], float(sum_ms or 0.0))
    since = (now - QUALITY_WINDOW).replace(minute=0, second=0, microsecond=0)
    for service_id, total, count in session.execute(
        select(h.c.service_id, func.sum(h.c.quality_sum), func.sum(h.c.quality_count))
        .where(h.c.service_id.in_(ids), h.c.bucket_start >= since).group_by(h.c.service_id)
    ):
        if count:
            readings.quality[service_id] = float(total) / int(count)
    for service_id, kind, impact, n in session.execute(
        select(Incident.service_id, Incident.kind, Incident.impact, func.count())
        .where(Incident.resolved_at.is_(None), Incident.audience == Audience.PUBLIC.value)
        .group_by(Incident.service_id, Incident.kind, Incident.impact)
    ):
        if service_id is None or service_id in ids:
            readings.incidents[(service_id or "", kind, impact)] = int(n)
    readings.uptime = _uptime(session, ids, config, now)
    return readings


def _uptime(session: Session, ids: Sequence[str], config: Config | None, now: datetime) -> dict[str, float]:
    tz = timefmt.zone(config.site.timezone if config else None)
    days = calendar(UPTIME_DAYS, now, tz)
    found = {sid: bars.uptime for sid, bars in histories(session, ids, days, now, tz,
                                                           config.maintenance if config else ()).items()}
    return {sid: value for sid, value in found.items() if value is not None}


class StatusCollector:
    """A prometheus_client collector over one scrape's ``Readings``."""

    def __init__(self, readings: Readings) -> None:
        self.readings = readings

    def collect(self) -> Iterator[Metric]:
        r = self.readings
        ids = [s.id for s in r.services]

        info = InfoMetricFamily(f"{PREFIX}_service", "Monitored services and their display names.",
                                labels=["service"])
        for s in r.services:
            info.add_metric([s.id], {"name": s.name, "group": s.group})
        yield info

        results = CounterMetricFamily(f"{PREFIX}_probe_results", "Canary and confirmation runs by outcome "
                                      "(operator-only outcomes left out).", labels=["service", "region", "outcome"])
        for (service_id, region), counts in sorted(r.counts.items()):
            for outcome, n in counts.items():
                results.add_metric([service_id, region, outcome], n)
        yield results

        latency = HistogramMetricFamily(f"{PREFIX}_probe_latency_seconds", "Total latency of runs that returned "
                                        "an image, all regions.", labels=["service"])
        for service_id in ids:
            if service_id not in r.latency:
                continue
            cells, sum_ms = r.latency[service_id]
            cumulative, buckets = 0, []
            for bound, count in zip(BUCKET_BOUNDS, cells):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            buckets.append(("+Inf", float(sum(cells))))
            latency.add_metric([service_id], buckets, sum_ms / 1000)
        yield latency

        quality = GaugeMetricFamily(f"{PREFIX}_quality_score_mean", "Mean image quality score over the last 24 hours.",
                                    labels=["service"])
        for service_id in ids:
            if service_id in r.quality:
                quality.add_metric([service_id], r.quality[service_id])
        yield quality

        uptime = GaugeMetricFamily(f"{PREFIX}_uptime_30d_ratio", "Uptime over the last 30 days (0..1), as on the page.",
                                   labels=["service"])
        for service_id in ids:
            if service_id in r.uptime:
                uptime.add_metric([service_id], r.uptime[service_id] / 100)
        yield uptime

        incidents = GaugeMetricFamily(f"{PREFIX}_open_incidents", "Open public incidents.",
                                      labels=["service", "kind", "impact"])
        series = {(sid, k.value, i.value): 0 for sid in ids for k in PUBLIC_KINDS for i in INCIDENT_IMPACTS}
        series.update(r.incidents)
        for (service_id, kind, impact), n in sorted(series.items()):
            incidents.add_metric([service_id, kind, impact], n)
        yield incidents

        status = GaugeMetricFamily(f"{PREFIX}_component_status", "1 for the component's current status, 0 for the "
                                   "others (unknown: no recent data).", labels=["service", "status"])
        fresh = GaugeMetricFamily(f"{PREFIX}_last_result_timestamp_seconds", "Start of the newest public result "
                                  "within the last 24 hours (Unix time).", labels=["service"])
        for component in r.snapshot.components:
            for key in STATUSES:
                status.add_metric([component.info.id, key], 1 if component.state.key == key else 0)
            if component.state.checked_at is not None:
                fresh.add_metric([component.info.id], component.state.checked_at.timestamp())
        yield status
        yield fresh

        page = GaugeMetricFamily(f"{PREFIX}_page_status", "The page indicator: 1 for the current one, 0 for the others.",
                                 labels=["indicator"])
        for impact in Impact:
            page.add_metric([impact.value], 1 if r.snapshot.indicator.impact is impact else 0)
        yield page


def exposition(readings: Readings, accept: str | None) -> tuple[bytes, str]:
    """The scrape's body and content type (text format, or OpenMetrics when the scraper asks for it)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(readings))
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type


# the scrape cache's clock (tests replace it)
monotonic = time.monotonic


class ScrapeCache:
    """The latest reading and its encodings, for ``SCRAPE_TTL`` seconds; one reading at a time."""

    def __init__(self, ttl: float = SCRAPE_TTL) -> None:
        self.ttl = ttl
        self.readings_taken = 0
        self._lock = threading.Lock()
        self._readings: Readings | None = None
        self._expires = 0.0
        self._bodies: dict[str, bytes] = {}

    def scrape(self, take_reading: Callable[[], Readings], accept: str | None) -> tuple[bytes, str]:
        with self._lock:
            now = monotonic()
            if self._readings is None or now >= self._expires:
                self._readings, self._bodies = take_reading(), {}
                self._expires = now + self.ttl
                self.readings_taken += 1
            _, content_type = choose_encoder(accept or "")
            if content_type not in self._bodies:
                self._bodies[content_type] = exposition(self._readings, accept)[0]
            return self._bodies[content_type], content_type


def scrape_cache(app: Flask | None = None) -> ScrapeCache:
    return (app or current_app).extensions.setdefault(SCRAPE_EXTENSION, ScrapeCache())


@bp.get("/metrics")
def metrics() -> Response:
    def take_reading() -> Readings:
        session = db_session()
        web = state()
        return read(session, web.services(session), web.config, datetime.now(UTC))

    body, content_type = scrape_cache().scrape(take_reading, request.headers.get("Accept"))
    return Response(body, content_type=content_type)
