"""Which channels an alert event goes to, from the ``alerts.routes`` of the config.

A route matches an event when every filter it sets matches: services, groups, incident kinds,
audience and minimum impact; ``resolved: false`` leaves out resolution messages.  Operator-only
events (a blind probe agent, an auth error, a failing alert channel) go to routes that ask for
the ``operator`` audience -- and, so they are never lost, to routes that set no filter at all.
An event for a service in a maintenance window goes nowhere.  A route's ``quiet_hours`` (site
timezone) hold back every event but a critical one until they end; a channel that another,
awake route also matches gets it at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from monitor.config import Config
from monitor.config.alerts import QuietHours, RouteConfig
from monitor.enums import IMPACT_RANK, Audience, Impact, MaintenancePeriod, maintenance_active, maintenance_covers


@dataclass(frozen=True)
class Event:
    """What routing needs to know about one outbox row."""

    event: str
    audience: Audience
    impact: Impact
    service: str | None = None
    kind: str | None = None


def channels_for(event: Event, config: Config, now: datetime, exclude: frozenset[str] = frozenset()) -> list[str]:
    """The channel ids the event goes to, each once, in config order."""
    return [channel for channel, _ in deliveries_for(event, config, now, exclude)]


def deliveries_for(event: Event, config: Config, now: datetime, exclude: frozenset[str] = frozenset(),
                   maintenance: Sequence[MaintenancePeriod] = ()) -> list[tuple[str, datetime]]:
    """``(channel id, when to send)`` for each channel the event goes to, in config order.

    ``maintenance``: windows besides the config's (those scheduled on the admin side).
    """
    if event.service and event.audience is Audience.PUBLIC and _in_maintenance(event.service, config, now, maintenance):
        return []
    when: dict[str, datetime] = {}
    for route in config.alerts.routes:
        if not _matches(route, event, config):
            continue
        at = now
        if route.quiet_hours is not None and event.impact is not Impact.CRITICAL:
            at = quiet_until(route.quiet_hours, now, config.site.timezone) or now
        for channel in route.channels:
            when[channel] = min(when.get(channel, at), at)
    return [(channel.id, when[channel.id]) for channel in config.alerts.channels
            if channel.id in when and channel.id not in exclude]


def quiet_until(quiet: QuietHours, now: datetime, timezone: str) -> datetime | None:
    """The end of the quiet period ``now`` falls in, or None when it is not quiet now."""
    local = now.astimezone(ZoneInfo(timezone))
    start, end = _clock(quiet.start), _clock(quiet.end)
    for day in (local.date() - timedelta(days=1), local.date()):
        begins = datetime.combine(day, start, tzinfo=local.tzinfo)
        ends = datetime.combine(day if end > start else day + timedelta(days=1), end, tzinfo=local.tzinfo)
        if begins <= local < ends:
            return ends.astimezone(now.tzinfo)
    return None


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _matches(route: RouteConfig, event: Event, config: Config) -> bool:
    unfiltered = (route.services is None and route.groups is None and route.kinds is None and route.audience is None
                  and route.min_impact is Impact.MINOR)
    if route.audience is not None:
        if event.audience not in route.audience:
            return False
    elif event.audience is Audience.OPERATOR and not unfiltered:
        return False
    if event.audience is Audience.PUBLIC and IMPACT_RANK[event.impact] < IMPACT_RANK[route.min_impact]:
        return False
    if event.event == "resolve" and not route.resolved:
        return False
    if route.services is not None and event.service not in route.services:
        return False
    if route.groups is not None:
        group = _group_of(event.service, config)
        if group not in route.groups:
            return False
    return route.kinds is None or event.kind in route.kinds


def _group_of(service: str | None, config: Config) -> str | None:
    for candidate in config.services:
        if candidate.id == service:
            return candidate.group
    return None


def _in_maintenance(service: str, config: Config, now: datetime, more: Sequence[MaintenancePeriod] = ()) -> bool:
    return any(maintenance_covers(window, service) and maintenance_active(window.start, window.end, now)
               for window in (*config.maintenance, *more))
