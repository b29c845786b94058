"""Outcome taxonomy, status enums, and what each outcome means -- defined here once.

The values are contracts (docs/contracts.md).  Every module that asks "does this outcome count
as down / degraded / good / operator-only?", "which impact or status is worse?" or "is this
service in maintenance now?" uses the sets, ranks and rule below; ``tests/test_outcome_sets.py``
fails when a module writes out its own.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from enum import StrEnum
from typing import Protocol


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
    def uptime_effect(self) -> UptimeEffect:
        return _UPTIME_EFFECT[self]

    @property
    def public_phrase(self) -> str:
        """What the public page says about a run with this outcome (the raw error detail is for the operator)."""
        return _PUBLIC_PHRASE[self]


class UptimeEffect(StrEnum):
    """How an outcome counts against public uptime (docs/contracts.md, outcome taxonomy)."""

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


_PUBLIC_PHRASE = {
    Outcome.OK: "",
    Outcome.SLOW: "slower than the latency threshold",
    Outcome.DEGRADED_QUALITY: "the image failed a quality check",
    Outcome.BAD_OUTPUT: "the answer was not a usable image",
    Outcome.CONTENT_FILTERED: "a benign prompt was blocked by the safety system",
    Outcome.RATE_LIMITED: "the provider asked us to slow down",
    Outcome.SERVER_ERROR: "the provider answered with a server error",
    Outcome.TIMEOUT: "no image within the deadline",
    Outcome.CONNECTION_ERROR: "could not reach the provider",
    Outcome.CLIENT_ERROR: "the provider refused the request",
    Outcome.AUTH_ERROR: "",  # operator-only: never on the public page
    Outcome.PROBE_ERROR: "",
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


# -- what each outcome means ------------------------------------------------------------
#
# ``rate_limited`` is degraded, never down: a 429 to our canary usually reflects the limits of
# the monitor's own key (burst limits, quota tiers), not the provider being unavailable to its
# customers, so it must not post a public outage or spend error budget.  Uptime, the SLO burn
# check and the detector all read the sets below, so they agree on this.

#: counts as downtime: public uptime, SLO error budget, evidence of an outage
DOWN_OUTCOMES = frozenset(o for o in Outcome if o.uptime_effect is UptimeEffect.DOWN)
#: a usable answer of lower grade: degraded on the page, never downtime
DEGRADED_OUTCOMES = frozenset(o for o in Outcome if o.uptime_effect is UptimeEffect.DEGRADED)
#: our side or our credentials: alerts the operator, left out of every public figure
OPERATOR_OUTCOMES = frozenset(o for o in Outcome if o.uptime_effect is UptimeEffect.OPERATOR)
#: the service did its job (an image that passed): probe exit 0, no confirmation run, a usable baseline sample
HEALTHY_OUTCOMES = frozenset({Outcome.OK, Outcome.SLOW})
#: an image came back and was scored (whatever the verdict): latency and image fields are meaningful
IMAGE_OUTCOMES = frozenset({Outcome.OK, Outcome.SLOW, Outcome.DEGRADED_QUALITY})
#: down, but also common in bursts without an outage (an overloaded provider): the detector weighs
#: these by their own background rate, apart from the other down outcomes
BURSTY_OUTCOMES = frozenset({Outcome.TIMEOUT})


# -- which is worse ---------------------------------------------------------------------

#: impacts from least to most severe
IMPACT_RANK: dict[Impact, int] = {impact: rank for rank, impact in enumerate(
    (Impact.NONE, Impact.MINOR, Impact.MAJOR, Impact.CRITICAL))}
#: component statuses from best to worst (maintenance outranks every other state on the page)
STATUS_RANK: dict[ComponentStatus, int] = {status: rank for rank, status in enumerate(
    (ComponentStatus.OPERATIONAL, ComponentStatus.DEGRADED_PERFORMANCE, ComponentStatus.PARTIAL_OUTAGE,
     ComponentStatus.MAJOR_OUTAGE, ComponentStatus.UNDER_MAINTENANCE))}


def worst_impact(impacts: Iterable[Impact]) -> Impact:
    return max(impacts, key=IMPACT_RANK.__getitem__, default=Impact.NONE)


def worst_status(statuses: Iterable[ComponentStatus]) -> ComponentStatus:
    return max(statuses, key=STATUS_RANK.__getitem__, default=ComponentStatus.OPERATIONAL)


# -- maintenance ------------------------------------------------------------------------


class MaintenancePeriod(Protocol):
    """A planned-work window: ``services`` empty means every service."""

    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...
    @property
    def services(self) -> Collection[str]: ...


def maintenance_covers(window: MaintenancePeriod, service_id: str) -> bool:
    return not window.services or service_id in window.services


def maintenance_active(start: datetime, end: datetime, now: datetime) -> bool:
    """Start inclusive, end exclusive."""
    return start <= now < end


def in_maintenance(windows: Iterable[MaintenancePeriod], service_id: str, now: datetime) -> bool:
    """Is this service inside a planned-work window now?  The one rule the detector and the page share."""
    return any(maintenance_covers(w, service_id) and maintenance_active(w.start, w.end, now) for w in windows)
