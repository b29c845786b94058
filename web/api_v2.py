"""Statuspage-compatible JSON, ``/api/v2/*.json``: the format existing widgets and aggregators read.

Field names, types and enum values follow Atlassian Statuspage's public API v2.  What is ours:

* components are the services (id: the service id) and, for each service group of the config,
  a group component (``group: true``, ``components: [ids]``, id ``group-<digest of the name>``)
  whose status is the worst of its members';
* statuses and the page indicator come from ``web.snapshot``, so the JSON and the pages agree;
* incidents are the public ones only, named by ``public_title`` when set; their updates are the
  ones the incident page shows, and the admin's ``public_body`` (the page's summary above them)
  is the extra field ``summary``;
* maintenance windows come from the config (ids ``config-<n>``, by position in the config) and
  from the ``maintenances`` table (ids ``maintenance-<id>``); their updates are written from the
  window's own moments (scheduled, started, verifying, completed), and their ``impact`` is
  ``none`` as in Statuspage's documentation;
* times are in the site's timezone with its offset, to the millisecond, as Statuspage writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import cached_property
from typing import Any

from flask import Blueprint, Response, request

from monitor.enums import ComponentStatus, Impact, IncidentStatus, maintenance_covers, worst_status
from monitor.store.models import Incident as IncidentRow
from monitor.store.models import Service
from web import api_v1 as common
from web.api_queries import (
    COMPLETED,
    IN_PROGRESS,
    SCHEDULED,
    VERIFYING,
    MaintenanceView,
    group_id,
    last_change,
    maintenance_views,
    public_impact,
    public_incidents,
    public_name,
    public_status,
    public_summary,
    public_updates,
    published_postmortem,
    recent_maintenances,
    service_rows,
    stable_id,
    status_changes,
)
from web.caching import cached_view
from web.context import db_session, state
from web.queries import incident_status
from web.snapshot import Component, Snapshot, snapshot

bp = Blueprint("api_v2", __name__, url_prefix="/api/v2")
common.install_json_api(bp)

#: how many incidents and scheduled maintenances the full lists hold (as Statuspage)
LIST_LIMIT = 50
#: where an incident's ``shortlink`` points, under the page's URL
INCIDENT_PATH = "/incidents/{id}"
#: the update texts Statuspage writes itself when a maintenance starts, is verified or completes
MAINTENANCE_TEXT = {
    IN_PROGRESS: "Scheduled maintenance is currently in progress. We will provide updates as necessary.",
    VERIFYING: "Verification is currently underway for the maintenance items.",
    COMPLETED: "The scheduled maintenance has been completed.",
}
ENDED = (IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM)


@dataclass
class Page:
    """Everything one answer needs, computed once per request."""

    now: datetime
    tz: tzinfo
    snap: Snapshot
    rows: dict[str, Service]
    changes: dict[str, datetime]
    updated_at: datetime
    url: str
    id: str

    def time(self, value: datetime | None) -> str | None:
        return common.iso(value, self.tz)

    @cached_property
    def components(self) -> list[dict[str, Any]]:
        """Services and group components in page order: each group, then its members."""
        found: list[dict[str, Any]] = []
        top = 0
        for group, members in self.snap.groups():
            members_json = [self._component(c, group, n) for n, c in enumerate(members, start=1)]
            if group:
                top += 1
                found.append(self._group(group, members, top))
            else:
                members_json = [dict(m, position=top + n) for n, m in enumerate(members_json, start=1)]
                top += len(members_json)
            found += members_json
        return found

    @cached_property
    def by_id(self) -> dict[str, dict[str, Any]]:
        return {c["id"]: c for c in self.components if not c["group"]}

    def _times(self, sid: str) -> tuple[datetime, datetime]:
        """A component's creation (the ``services`` row's) and its last change, never later than now."""
        row = self.rows.get(sid)
        created = row.created_at if row else self.changes.get(sid, self.now)
        updated = max([at for at in (row.updated_at if row else None, self.changes.get(sid)) if at] or [created])
        return min(created, self.now), min(updated, self.now)

    def _component(self, component: Component, group: str, position: int) -> dict[str, Any]:
        sid = component.info.id
        created, updated = self._times(sid)
        return {
            "id": sid,
            "name": component.info.name,
            "status": component.status.value,
            "created_at": self.time(created),
            "updated_at": self.time(updated),
            "position": position,
            "description": None,
            "showcase": True,  # the page draws uptime bars for every service
            "start_date": created.astimezone(self.tz).date().isoformat() if sid in self.rows else None,
            "group_id": group_id(group) if group else None,
            "page_id": self.id,
            "group": False,
            "only_show_if_degraded": False,
        }

    def _group(self, group: str, members: list[Component], position: int) -> dict[str, Any]:
        times = [self._times(c.info.id) for c in members]
        return {
            "id": group_id(group),
            "name": group,
            "status": worst_status(c.status for c in members).value,
            "created_at": self.time(min(created for created, _ in times)),
            "updated_at": self.time(max(updated for _, updated in times)),
            "position": position,
            "description": None,
            "showcase": False,
            "start_date": None,
            "group_id": None,
            "page_id": self.id,
            "group": True,
            "only_show_if_degraded": False,
            "components": [c.info.id for c in members],
        }

    # -- incidents ---------------------------------------------------------------------------

    def incident(self, row: IncidentRow) -> dict[str, Any]:
        updates = public_updates(row)
        status = public_status(row)
        component = self.by_id.get(row.service_id or "")
        hit = incident_status(row.kind, row.impact)
        shown: list[dict[str, Any]] = []
        before = ComponentStatus.OPERATIONAL
        for u in updates:
            after = ComponentStatus.OPERATIONAL if u.status in ENDED else hit
            affected = [{"code": component["id"], "name": component["name"], "old_status": before.value,
                         "new_status": after.value}] if component and after is not before else None
            before = after
            shown.append({"id": u.id, "status": u.status.value, "body": u.body, "incident_id": str(row.id),
                          "created_at": self.time(u.created_at), "updated_at": self.time(u.created_at),
                          "display_at": self.time(u.display_at), "affected_components": affected,
                          "deliver_notifications": True, "custom_tweet": None, "tweet_id": None})
        monitoring = next((u.created_at for u in updates if u.status is IncidentStatus.MONITORING), None)
        postmortem = published_postmortem(row)
        return {
            "id": str(row.id),
            "name": public_name(row),
            "status": status.value,
            "created_at": self.time(row.created_at),
            "updated_at": self.time(max([row.updated_at, *(u.created_at for u in updates)])),
            "monitoring_at": self.time(monitoring),
            "resolved_at": self.time(row.resolved_at),
            "impact": public_impact(row).value,
            "shortlink": self.url + INCIDENT_PATH.format(id=row.id),
            "started_at": self.time(row.started_at),
            "page_id": self.id,
            "incident_updates": shown[::-1],  # newest first, as Statuspage
            "components": [component] if component else [],
            "postmortem_body": postmortem[0] if postmortem else None,
            "postmortem_published_at": self.time(postmortem[1]) if postmortem else None,
            "summary": public_summary(row),
        }

    # -- maintenance -------------------------------------------------------------------------

    def maintenance(self, window: MaintenanceView) -> dict[str, Any]:
        status = window.status(self.now)
        completed = window.completed_at(self.now)
        moments: list[tuple[str, datetime, str]] = []
        if window.stored:  # config windows have no announcement of their own
            moments.append((SCHEDULED, window.created_at, window.body or window.title))
        if window.start <= self.now and (completed is None or completed > window.start):
            moments.append((IN_PROGRESS, window.start, MAINTENANCE_TEXT[IN_PROGRESS]))
        if status == VERIFYING:
            moments.append((VERIFYING, max(window.updated_at, window.start), MAINTENANCE_TEXT[VERIFYING]))
        if completed is not None:
            moments.append((COMPLETED, completed, MAINTENANCE_TEXT[COMPLETED]))
        updates = [{"id": f"{window.id}-{state}", "status": state, "body": body, "incident_id": window.id,
                    "created_at": self.time(at), "updated_at": self.time(at), "display_at": self.time(at),
                    "affected_components": None, "deliver_notifications": True, "custom_tweet": None, "tweet_id": None}
                   for state, at, body in moments]
        return {
            "id": window.id,
            "name": window.title,
            "status": status,
            "created_at": self.time(window.created_at),
            "updated_at": self.time(window.changed_at(self.now)),
            "monitoring_at": None,
            "resolved_at": self.time(completed),
            "impact": Impact.NONE.value,
            "shortlink": self.url + "/",
            "started_at": self.time(window.start),
            "page_id": self.id,
            "incident_updates": updates[::-1],
            "components": [c for sid, c in self.by_id.items() if maintenance_covers(window, sid)],
            "scheduled_for": self.time(window.start),
            "scheduled_until": self.time(window.end),
        }

    def config_windows(self) -> list[MaintenanceView]:
        config = state().config
        return maintenance_views(config.maintenance if config else (), ())

    def pending_windows(self) -> list[MaintenanceView]:
        """Upcoming and in-progress windows (config and stored, as ``web.snapshot`` sees them), soonest first."""
        windows = self.config_windows() + maintenance_views((), self.snap.maintenances)
        return sorted((w for w in windows if w.status(self.now) != COMPLETED), key=lambda w: (w.start, w.id))

    # -- the parts of an answer --------------------------------------------------------------

    def page(self) -> dict[str, Any]:
        site = state().site
        return {"id": self.id, "name": site.title, "url": self.url, "time_zone": site.timezone,
                "updated_at": self.time(self.updated_at)}

    def status(self) -> dict[str, str]:
        return {"indicator": self.snap.indicator.impact.value, "description": self.snap.indicator.description}

    def unresolved(self) -> list[dict[str, Any]]:
        """The open public incidents ``web.snapshot`` found, newest first."""
        ids = [i.id for i in self.snap.incidents]
        if not ids:
            return []
        rows = public_incidents(db_session(), list(self.by_id), limit=len(ids), only=ids, unresolved=True)
        return [self.incident(r) for r in rows]


def build() -> Page:
    session, web = db_session(), state()
    now = common.clock()
    services = web.services(session)
    ids = [s.id for s in services]
    snap = snapshot(session, services, web.config, now)
    changes = status_changes(session, ids, web.config.maintenance if web.config else (), now)
    url = (web.site.url or request.host_url).rstrip("/")
    return Page(now=now, tz=common.site_zone(), snap=snap, rows=service_rows(session, ids), changes=changes,
                updated_at=last_change(session, ids, changes, now), url=url,
                id=stable_id("page", web.site.url or web.site.title))


@bp.get("/summary.json")
@cached_view(seconds=common.RENDER_SECONDS, on_results=False)
def summary() -> Response:
    page = build()
    return common.json_response({
        "page": page.page(),
        "components": page.components,
        "incidents": page.unresolved(),
        "scheduled_maintenances": [page.maintenance(w) for w in page.pending_windows()],
        "status": page.status(),
    })


@bp.get("/status.json")
@cached_view(seconds=common.RENDER_SECONDS, on_results=False)
def status() -> Response:
    page = build()
    return common.json_response({"page": page.page(), "status": page.status()})


@bp.get("/components.json")
@cached_view(seconds=common.RENDER_SECONDS, on_results=False)
def components() -> Response:
    page = build()
    return common.json_response({"page": page.page(), "components": page.components})


@bp.get("/incidents.json")
@cached_view(seconds=common.RENDER_SECONDS, on_results=False)
def incidents() -> Response:
    """The 50 newest public incidents, resolved or not."""
    page = build()
    rows = public_incidents(db_session(), list(page.by_id), limit=LIST_LIMIT)
    return common.json_response({"page": page.page(), "incidents": [page.incident(r) for r in rows]})


@bp.get("/incidents/unresolved.json")
@cached_view(seconds=common.RENDER_SECONDS, on_results=False)
def unresolved_incidents() -> Response:
    page = build()
    return common.json_response({"page": page.page(), "incidents": page.unresolved()})


@bp.get("/scheduled-maintenances.json")
@cached_view(seconds=common.RENDER_SECONDS, on_results=False)
def scheduled_maintenances() -> Response:
    """The 50 maintenance windows that start latest, whatever their status."""
    page = build()
    windows = page.config_windows() + maintenance_views((), recent_maintenances(db_session(), LIST_LIMIT))
    latest = sorted(windows, key=lambda w: (w.start, w.id), reverse=True)[:LIST_LIMIT]
    return common.json_response({"page": page.page(), "scheduled_maintenances": [page.maintenance(w) for w in latest]})


@bp.get("/scheduled-maintenances/upcoming.json")
@cached_view(seconds=common.RENDER_SECONDS, on_results=False)
def upcoming_maintenances() -> Response:
    page = build()
    windows = [w for w in page.pending_windows() if w.status(page.now) == SCHEDULED]
    return common.json_response({"page": page.page(), "scheduled_maintenances": [page.maintenance(w) for w in windows]})


@bp.get("/scheduled-maintenances/active.json")
@cached_view(seconds=common.RENDER_SECONDS, on_results=False)
def active_maintenances() -> Response:
    page = build()
    windows = [w for w in page.pending_windows() if w.status(page.now) in (IN_PROGRESS, VERIFYING)]
    return common.json_response({"page": page.page(), "scheduled_maintenances": [page.maintenance(w) for w in windows]})
