"""What the detector reads and writes: observations, per-service rules, incidents, transitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from monitor.config.detection import DetectionSettings
from monitor.enums import (
    Audience,
    Impact,
    IncidentKind,
    IncidentStatus,
    MaintenancePeriod,
    Outcome,
    maintenance_active,
    maintenance_covers,
)

if TYPE_CHECKING:  # pragma: no cover
    from monitor.config import Config


#: a bad streak this many scheduled runs long opens an incident however noisy the service
MAX_STREAK_RUNS = 10


@dataclass(frozen=True)
class Observation:
    """One probe result as the detector sees it (a trace line or a stored result)."""

    ts: datetime
    service: str
    region: str
    outcome: Outcome
    canary: str | None = None
    latency_ms: float | None = None
    quality: float | None = None
    confirmation: bool = False  # an extra run asked for after a failure, not a scheduled one
    health: bool = False  # the provider's cheap check, not a generation: its failures are evidence, its successes not
    detail: str | None = None


@dataclass(frozen=True)
class ServiceRules:
    """What the detector needs to know about one service."""

    interval: timedelta
    group: str = ""
    latency_threshold_ms: float | None = None
    min_quality: float | None = None
    maintenance: tuple[tuple[datetime, datetime], ...] = ()

    def in_maintenance(self, now: datetime) -> bool:
        return any(maintenance_active(start, end, now) for start, end in self.maintenance)


@dataclass
class DetectorConfig:
    settings: DetectionSettings = field(default_factory=DetectionSettings)
    services: dict[str, ServiceRules] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config | None) -> DetectorConfig:
        """Detector parameters from a loaded config (the defaults when there is none)."""
        if config is None:
            return cls()
        services = {}
        for service in config.services:
            threshold = service.slow_threshold
            services[service.id] = ServiceRules(
                interval=service.interval,
                group=service.group,
                latency_threshold_ms=threshold.total_seconds() * 1000 if threshold else None,
                min_quality=service.slo.min_quality,
                maintenance=tuple((w.start, w.end) for w in config.maintenance if maintenance_covers(w, service.id)),
            )
        return cls(settings=config.detection, services=services)

    def with_maintenance(self, windows: Sequence[MaintenancePeriod]) -> DetectorConfig:
        """This config plus more planned-work windows (those scheduled on the admin side, read from the
        database each round); the config's own windows stay.  A window that names a service the
        config does not know gives that service the default rules with the window."""
        if not windows:
            return self
        services = dict(self.services)
        named = {sid for window in windows for sid in window.services}
        for sid in sorted(set(services) | named):
            extra = tuple((w.start, w.end) for w in windows if maintenance_covers(w, sid))
            if extra:
                rules = self.rules(sid)
                services[sid] = replace(rules, maintenance=rules.maintenance + extra)
        return replace(self, services=services)

    def rules(self, service: str) -> ServiceRules:
        return self.services.get(service) or ServiceRules(interval=self.settings.default_interval)

    def recovery(self, service: str) -> timedelta:
        return self.settings.recovery_period or self.rules(service).interval

    def probe_window(self, service: str) -> timedelta:
        """How far back a region counts as probing the service: two rounds plus a confirmation."""
        return 2 * self.rules(service).interval + self.settings.confirm_delay

    def lookback(self) -> timedelta:
        """How much history ``detect`` needs to see."""
        longest = max([r.interval for r in self.services.values()] + [self.settings.default_interval])
        return max((MAX_STREAK_RUNS + 2) * longest + self.settings.confirm_delay, self.settings.agent_timeout * 2, self.settings.latency_window)


class Action(StrEnum):
    OPEN = "open"
    REOPEN = "reopen"          # failing again soon after resolving: the same incident continues
    ESCALATE = "escalate"
    DEESCALATE = "deescalate"
    UPDATE = "update"          # still failing: new regions, or failing again while monitoring
    MONITORING = "monitoring"  # results look good; waiting out the recovery period
    RESOLVE = "resolve"


@dataclass(frozen=True)
class Incident:
    """The detector's view of an incident (open, or as it stands after a transition)."""

    service: str | None
    kind: IncidentKind
    audience: Audience
    impact: Impact
    regions: tuple[str, ...]
    started_at: datetime
    detected_at: datetime
    status: IncidentStatus = IncidentStatus.INVESTIGATING
    resolved_at: datetime | None = None
    id: int | None = None

    @property
    def key(self) -> tuple[str | None, IncidentKind, str | None]:
        """One open incident per service and kind (per region for agent incidents)."""
        return (self.service, self.kind, self.regions[0] if self.kind is IncidentKind.AGENT else None)


@dataclass(frozen=True)
class Transition:
    action: Action
    incident: Incident
    at: datetime
    message: str
    evidence: int | None = None  # an opening: how many bad results in a row it took
