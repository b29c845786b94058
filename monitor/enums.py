"""Outcome taxonomy and status enums (DESIGN.md §3 and §6 are contracts)."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    OK = "ok"
    SLOW = "slow"
    DEGRADED_QUALITY = "degraded_quality"
    BAD_OUTPUT = "bad_output"
    CONTENT_FILTERED = "content_filtered"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    CLIENT_ERROR = "client_error"
    AUTH_ERROR = "auth_error"
    PROBE_ERROR = "probe_error"

    @property
    def uptime_effect(self) -> "UptimeEffect":
        return _UPTIME_EFFECT[self]

    @property
    def is_good(self) -> bool:
        return self is Outcome.OK


class UptimeEffect(StrEnum):
    """How an outcome counts against public uptime (DESIGN.md §3, last column)."""

    NONE = "none"          # ok
    DEGRADED = "degraded"  # slow, quality, filtered, rate limited
    DOWN = "down"          # counts as downtime
    OPERATOR = "operator"  # our side or credentials: excluded from public uptime


_UPTIME_EFFECT = {
    Outcome.OK: UptimeEffect.NONE,
    Outcome.SLOW: UptimeEffect.DEGRADED,
    Outcome.DEGRADED_QUALITY: UptimeEffect.DEGRADED,
    Outcome.BAD_OUTPUT: UptimeEffect.DOWN,
    Outcome.CONTENT_FILTERED: UptimeEffect.DEGRADED,
    Outcome.RATE_LIMITED: UptimeEffect.DEGRADED,
    Outcome.SERVER_ERROR: UptimeEffect.DOWN,
    Outcome.TIMEOUT: UptimeEffect.DOWN,
    Outcome.CONNECTION_ERROR: UptimeEffect.DOWN,
    Outcome.CLIENT_ERROR: UptimeEffect.DOWN,
    Outcome.AUTH_ERROR: UptimeEffect.OPERATOR,
    Outcome.PROBE_ERROR: UptimeEffect.OPERATOR,
}


class ProbeKind(StrEnum):
    CANARY = "canary"            # a scheduled generation with a canary prompt
    CONFIRMATION = "confirmation"  # an extra canary run asked for by the detector
    HEALTH = "health"            # the provider's cheap check (no generation)


class ComponentStatus(StrEnum):
    OPERATIONAL = "operational"
    DEGRADED_PERFORMANCE = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"
    UNDER_MAINTENANCE = "under_maintenance"


class Impact(StrEnum):
    NONE = "none"
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


class IncidentStatus(StrEnum):
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"
    POSTMORTEM = "postmortem"


class IncidentKind(StrEnum):
    OUTAGE = "outage"
    LATENCY = "latency"
    QUALITY = "quality"
    SAFETY = "safety"
    AGENT = "agent"
    OPERATOR = "operator"


class Audience(StrEnum):
    PUBLIC = "public"
    OPERATOR = "operator"


class Verdict(StrEnum):
    PASS = "pass"
    DEGRADED = "degraded"
    FAIL = "fail"
