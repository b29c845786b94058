"""The fields of each admin write, checked (``web.admin.validate``), from a form or a JSON body alike."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.enums import Impact, IncidentStatus
from monitor.store.models import Service
from web.admin import validate as v
from web.context import state


def known_services(db: Session) -> list[str]:
    """Services an incident may name: the page's services that are in the database (incidents refer to them)."""
    stored = set(db.scalars(select(Service.id)))
    return [s.id for s in state().services(db) if s.id in stored]


@dataclass(frozen=True)
class NewIncident:
    services: list[str]
    title: str
    impact: str
    status: str
    kind: str
    body: str


def new_incident(data: Mapping[str, Any], known: Collection[str]) -> NewIncident:
    services = v.services(data.get("services"), "services", known)
    assert services is not None
    return NewIncident(
        services=services,
        title=v.text(data.get("title"), "title", max_length=v.MAX_TITLE, single_line=True),
        impact=v.impact(data.get("impact"), Impact.MINOR.value),
        status=v.choice(data.get("status"), "status", [s.value for s in v.OPEN_STATUSES], IncidentStatus.INVESTIGATING.value),
        kind=v.kind(data.get("kind")),
        body=v.text(data.get("body"), "body", max_length=v.MAX_BODY),
    )


@dataclass(frozen=True)
class Update:
    body: str
    status: str | None
    impact: str | None


def update(data: Mapping[str, Any], *, body_required: bool = True) -> Update:
    return Update(
        body=v.text(data.get("body"), "body", max_length=v.MAX_BODY, required=body_required),
        status=v.choice(data.get("status"), "status", [s.value for s in v.UPDATE_STATUSES]) if data.get("status") else None,
        impact=v.impact(data.get("impact")) if data.get("impact") else None,
    )


def public_override(data: Mapping[str, Any]) -> tuple[str, str]:
    return (v.text(data.get("public_title"), "public_title", max_length=v.MAX_TITLE, required=False, single_line=True),
            v.text(data.get("public_body"), "public_body", max_length=v.MAX_BODY, required=False))


def postmortem(data: Mapping[str, Any]) -> str:
    return v.text(data.get("postmortem"), "postmortem", max_length=v.MAX_POSTMORTEM)


@dataclass(frozen=True)
class NewMaintenance:
    title: str
    body: str
    services: list[str] | None
    starts: datetime
    ends: datetime


def new_maintenance(data: Mapping[str, Any], known: Collection[str], now: datetime, local: tzinfo | None) -> NewMaintenance:
    """Times are ISO 8601 with an offset (the API) or, given ``local``, wall-clock times there (the form)."""
    def when(field: str) -> datetime:
        return v.local_time(data.get(field), field, local) if local is not None else v.iso_time(data.get(field), field)

    starts, ends = when("starts_at"), when("ends_at")
    v.window(starts, ends, now)
    return NewMaintenance(
        title=v.text(data.get("title"), "title", max_length=v.MAX_TITLE, single_line=True),
        body=v.text(data.get("body"), "body", max_length=v.MAX_BODY, required=False),
        services=v.services(data.get("services"), "services", known, allow_all=True),
        starts=starts,
        ends=ends,
    )


def maintenance_status(data: Mapping[str, Any]) -> str:
    return v.choice(data.get("status"), "status", v.MAINTENANCE_STATUSES)


def token_name(data: Mapping[str, Any]) -> str:
    return v.text(data.get("name"), "name", max_length=v.MAX_TOKEN_NAME, single_line=True)
