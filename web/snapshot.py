"""What the public sees right now: every component's status, the page indicator, open incidents and
maintenance — computed once per request and shared by the pages, the Statuspage JSON, badges,
feeds and metrics, so they can never disagree.  No Flask here.

The page indicator follows Statuspage: ``none`` (all operational), ``minor`` (something degraded),
``major`` (a partial outage, or a major outage of fewer than half the components) and ``critical``
(a major outage of at least half of them).  Maintenance alone leaves the indicator at ``none``
and says so in the description.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.enums import ComponentStatus, Impact, in_maintenance
from monitor.store.models import Maintenance
from web.queries import ActiveIncident, ServiceInfo, ServiceState, active_incidents, service_states

#: (indicator, description) by the worst component status
INDICATOR_TEXT = {
    Impact.NONE: "All Systems Operational",
    Impact.MINOR: "Partially Degraded Service",
    Impact.MAJOR: "Partial System Outage",
    Impact.CRITICAL: "Major System Outage",
}
MAINTENANCE_TEXT = "Service Under Maintenance"
NO_DATA_TEXT = "No Data Yet"


@dataclass(frozen=True)
class Component:
    info: ServiceInfo
    state: ServiceState

    @property
    def status(self) -> ComponentStatus:
        """The Statuspage status: a service without recent data shows as operational there (``state.key`` says unknown)."""
        return self.state.status or ComponentStatus.OPERATIONAL


@dataclass(frozen=True)
class Indicator:
    impact: Impact
    description: str


@dataclass(frozen=True)
class Snapshot:
    now: datetime
    components: list[Component]
    incidents: list[ActiveIncident]  # open public incidents, newest first
    maintenances: list[Maintenance]  # windows stored on the admin side that have not ended, soonest first
    indicator: Indicator

    def groups(self) -> list[tuple[str, list[Component]]]:
        """Components grouped by their group, groups in order of first appearance."""
        groups: dict[str, list[Component]] = {}
        for component in self.components:
            groups.setdefault(component.info.group, []).append(component)
        return list(groups.items())


def indicator(states: Sequence[ServiceState]) -> Indicator:
    known = [s.status for s in states if s.status is not None]
    if not known:
        return Indicator(Impact.NONE, NO_DATA_TEXT)
    majors = sum(1 for s in known if s is ComponentStatus.MAJOR_OUTAGE)
    if majors and majors * 2 >= len(states):
        return Indicator(Impact.CRITICAL, INDICATOR_TEXT[Impact.CRITICAL])
    if majors or ComponentStatus.PARTIAL_OUTAGE in known:
        return Indicator(Impact.MAJOR, INDICATOR_TEXT[Impact.MAJOR])
    if ComponentStatus.DEGRADED_PERFORMANCE in known:
        return Indicator(Impact.MINOR, INDICATOR_TEXT[Impact.MINOR])
    if ComponentStatus.UNDER_MAINTENANCE in known:
        return Indicator(Impact.NONE, MAINTENANCE_TEXT)
    return Indicator(Impact.NONE, INDICATOR_TEXT[Impact.NONE])


def pending_maintenances(session: Session, now: datetime) -> list[Maintenance]:
    """Admin-scheduled windows that have not ended (upcoming and in progress), soonest first."""
    return list(session.scalars(
        select(Maintenance).where(Maintenance.ends_at > now, Maintenance.status != "completed")
        .order_by(Maintenance.starts_at, Maintenance.id)))


def services_in_maintenance(config: Config | None, stored: Iterable[Maintenance], service_ids: Sequence[str],
                            now: datetime) -> set[str]:
    """Services inside a maintenance window now: the config's windows and those scheduled on the admin side."""
    inside = {sid for sid in service_ids if config is not None and in_maintenance(config.maintenance, sid, now)}
    for window in stored:
        if window.starts_at <= now < window.ends_at:
            inside |= {sid for sid in service_ids if not window.services or sid in window.services}
    return inside


def snapshot(session: Session, services: list[ServiceInfo], config: Config | None, now: datetime) -> Snapshot:
    ids = [s.id for s in services]
    maintenances = pending_maintenances(session, now)
    states = service_states(session, ids, now, maintenance=services_in_maintenance(config, maintenances, ids, now))
    components = [Component(s, states[s.id]) for s in services]
    return Snapshot(now, components, active_incidents(session, ids), maintenances,
                    indicator([c.state for c in components]))
