"""What the admin side decides and the detector honours: maintenance windows scheduled there, and
incidents written (or taken over) by hand.

* A window in the ``maintenances`` table counts like one in the config: no public incident opens
  for a service inside it (``DetectorConfig.with_maintenance``).  ``completed`` ends it early.
* An incident with ``source = "manual"`` is the operator's: the detector never updates, escalates,
  resolves or reopens it.  While it is open it still holds its key (service, kind, audience), so the
  detector does not open a second incident of the same kind for that service either -- the open
  manual incident is the one the public sees, and the database's unique index on open incidents
  would refuse the duplicate anyway.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.detection.model import Incident, Transition
from monitor.store.models import Incident as IncidentRow
from monitor.store.models import Maintenance

MANUAL = "manual"
#: a window with this status is over, whatever its end time says
COMPLETED = "completed"


@dataclass(frozen=True)
class StoredWindow:
    """A ``maintenances`` row as a ``monitor.enums.MaintenancePeriod`` (no services: every service)."""

    start: datetime
    end: datetime
    services: tuple[str, ...]


def stored_maintenance(session: Session, now: datetime) -> list[StoredWindow]:
    """Windows scheduled on the admin side that are in progress at ``now`` (not completed early)."""
    rows = session.execute(
        select(Maintenance.starts_at, Maintenance.ends_at, Maintenance.services)
        .where(Maintenance.starts_at <= now, Maintenance.ends_at > now, Maintenance.status != COMPLETED)
        .order_by(Maintenance.starts_at, Maintenance.id))
    return [StoredWindow(start, end, tuple(services or ())) for start, end, services in rows]


def manual_incident_ids(session: Session, ids: Collection[int]) -> set[int]:
    """Which of these incidents are the operator's."""
    if not ids:
        return set()
    return set(session.scalars(select(IncidentRow.id).where(IncidentRow.id.in_(sorted(ids)), IncidentRow.source == MANUAL)))


def leave_manual_alone(known: Sequence[Incident], manual: Collection[int]) -> list[Incident]:
    """The incidents the detector may build on: a resolved manual one is never reopened, so it is left out."""
    return [incident for incident in known if not (incident.id in manual and incident.resolved_at is not None)]


def without_manual(transitions: Sequence[Transition], manual: Collection[int]) -> list[Transition]:
    """The transitions less any on a manual incident (the operator decides its status and impact)."""
    return [t for t in transitions if t.incident.id is None or t.incident.id not in manual]
