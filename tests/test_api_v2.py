"""The Statuspage-compatible JSON (/api/v2): shapes checked against a schema of Statuspage's v2 format
written out here, enums, groups as components, maintenance over time, public incidents only, escaping.

``jsonschema`` is not a dependency of the project, so ``validate`` below is a small recursive
validator of the JSON Schema keywords the schema uses (and ``test_the_validator_rejects_...`` shows it
rejects what it should).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from monitor.config import Config, MaintenanceWindow, ServiceConfig, SiteConfig
from monitor.store.models import Incident, IncidentUpdate, Maintenance, Service
from tests.webdb import add_result, add_service, engine, session  # noqa: F401 - fixtures
from web import api_v1, create_app
from web.caching import render_cache
from web.snapshot import snapshot

NOW = datetime(2026, 11, 10, 12, 30, tzinfo=UTC)  # the API's clock in these tests (``api_v1.clock``)

# ---------------------------------------------------------------------------------------
# a schema of Statuspage's v2 JSON, and a validator for it

ISO_WITH_OFFSET = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$"
TIME = {"type": "string", "pattern": ISO_WITH_OFFSET}
TIME_OR_NULL = {"type": ["string", "null"], "pattern": ISO_WITH_OFFSET}
ID = {"type": "string", "minLength": 1}
COMPONENT_STATUS = ["operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"]
IMPACT = ["none", "minor", "major", "critical"]
INCIDENT_STATUS = ["investigating", "identified", "monitoring", "resolved", "postmortem"]
MAINTENANCE_STATUS = ["scheduled", "in_progress", "verifying", "completed"]

PAGE = {
    "type": "object",
    "required": ["id", "name", "url", "time_zone", "updated_at"],
    "additionalProperties": False,
    "properties": {"id": ID, "name": {"type": "string"}, "url": {"type": "string", "pattern": r"^https?://"},
                   "time_zone": {"type": "string"}, "updated_at": TIME},
}
STATUS = {
    "type": "object",
    "required": ["indicator", "description"],
    "additionalProperties": False,
    "properties": {"indicator": {"enum": IMPACT}, "description": {"type": "string", "minLength": 1}},
}
COMPONENT_FIELDS = {
    "id": ID, "name": {"type": "string"}, "status": {"enum": COMPONENT_STATUS}, "created_at": TIME, "updated_at": TIME,
    "position": {"type": "integer", "minimum": 1}, "description": {"type": ["string", "null"]},
    "showcase": {"type": "boolean"}, "start_date": {"type": ["string", "null"], "pattern": r"^\d{4}-\d{2}-\d{2}$"},
    "group_id": {"type": ["string", "null"]}, "page_id": ID, "group": {"type": "boolean"},
    "only_show_if_degraded": {"type": "boolean"},
    "components": {"type": "array", "items": ID},  # group components only
}
COMPONENT = {
    "type": "object",
    "required": [k for k in COMPONENT_FIELDS if k != "components"],
    "additionalProperties": False,
    "properties": COMPONENT_FIELDS,
}
AFFECTED = {
    "type": "object",
    "required": ["code", "name", "old_status", "new_status"],
    "additionalProperties": False,
    "properties": {"code": ID, "name": {"type": "string"}, "old_status": {"enum": COMPONENT_STATUS},
                   "new_status": {"enum": COMPONENT_STATUS}},
}


def update_schema(statuses: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["id", "status", "body", "incident_id", "created_at", "updated_at", "display_at",
                     "affected_components"],
        "additionalProperties": False,
        "properties": {
            "id": ID, "status": {"enum": statuses}, "body": {"type": "string"}, "incident_id": ID,
            "created_at": TIME, "updated_at": TIME, "display_at": TIME,
            "affected_components": {"type": ["array", "null"], "items": AFFECTED},
            "deliver_notifications": {"type": "boolean"}, "custom_tweet": {"type": "null"}, "tweet_id": {"type": "null"},
        },
    }


INCIDENT_FIELDS = {
    "id": ID, "name": {"type": "string"}, "status": {"enum": INCIDENT_STATUS}, "created_at": TIME, "updated_at": TIME,
    "monitoring_at": TIME_OR_NULL, "resolved_at": TIME_OR_NULL, "impact": {"enum": IMPACT},
    "shortlink": {"type": "string", "pattern": r"^https?://"}, "started_at": TIME, "page_id": ID,
    "incident_updates": {"type": "array", "items": update_schema(INCIDENT_STATUS)},
    "components": {"type": "array", "items": COMPONENT},
    # ours, beside Statuspage's fields
    "postmortem_body": {"type": ["string", "null"]}, "postmortem_published_at": TIME_OR_NULL,
    "summary": {"type": ["string", "null"]},
}
INCIDENT = {
    "type": "object",
    "required": ["id", "name", "status", "created_at", "updated_at", "monitoring_at", "resolved_at", "impact",
                 "shortlink", "started_at", "page_id", "incident_updates", "components"],
    "additionalProperties": False,
    "properties": INCIDENT_FIELDS,
}
MAINTENANCE = {
    "type": "object",
    "required": [*INCIDENT["required"], "scheduled_for", "scheduled_until"],
    "additionalProperties": False,
    "properties": {
        **{k: v for k, v in INCIDENT_FIELDS.items() if k not in ("postmortem_body", "postmortem_published_at", "summary")},
        "status": {"enum": MAINTENANCE_STATUS},
        "incident_updates": {"type": "array", "items": update_schema(MAINTENANCE_STATUS)},
        "scheduled_for": TIME, "scheduled_until": TIME,
    },
}


def envelope(**parts: Any) -> dict[str, Any]:
    properties = {"page": PAGE, **parts}
    return {"type": "object", "required": list(properties), "additionalProperties": False, "properties": properties}


SCHEMAS = {
    "/api/v2/summary.json": envelope(components={"type": "array", "items": COMPONENT},
                                     incidents={"type": "array", "items": INCIDENT},
                                     scheduled_maintenances={"type": "array", "items": MAINTENANCE}, status=STATUS),
    "/api/v2/status.json": envelope(status=STATUS),
    "/api/v2/components.json": envelope(components={"type": "array", "items": COMPONENT}),
    "/api/v2/incidents.json": envelope(incidents={"type": "array", "items": INCIDENT}),
    "/api/v2/incidents/unresolved.json": envelope(incidents={"type": "array", "items": INCIDENT}),
    "/api/v2/scheduled-maintenances.json": envelope(scheduled_maintenances={"type": "array", "items": MAINTENANCE}),
    "/api/v2/scheduled-maintenances/upcoming.json": envelope(scheduled_maintenances={"type": "array", "items": MAINTENANCE}),
    "/api/v2/scheduled-maintenances/active.json": envelope(scheduled_maintenances={"type": "array", "items": MAINTENANCE}),
}

JSON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, JSON_TYPES[kind])


def validate(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """The ways ``value`` breaks ``schema`` (type, enum, required, properties, additionalProperties,
    items, pattern, minLength, minimum), each with its JSON path; [] when it conforms."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            return [f"{path}: {value!r} is not of type {'/'.join(kinds)}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: {value!r} is too short")
    if _is(value, "number") and "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: {value!r} is below {schema['minimum']}")
    if isinstance(value, dict):
        errors += [f"{path}: {key!r} is missing" for key in schema.get("required", []) if key not in value]
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                errors += validate(item, properties[key], f"{path}.{key}")
            elif schema.get("additionalProperties", True) is False:
                errors.append(f"{path}: unexpected field {key!r}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += validate(item, schema["items"], f"{path}[{index}]")
    return errors


def test_the_validator_rejects_what_the_schema_forbids():
    good = {"indicator": "none", "description": "All Systems Operational"}
    assert validate(good, STATUS) == []
    assert validate({"indicator": "red", "description": "x"}, STATUS)  # not an enum value
    assert validate({"indicator": "none"}, STATUS)  # a required field missing
    assert validate({**good, "extra": 1}, STATUS)  # an unknown field
    component = {"id": "a", "name": "A", "status": "operational", "created_at": "2026-11-10T10:00:00.000+00:00",
                 "updated_at": "2026-11-10T10:00:00.000+00:00", "position": 1, "description": None, "showcase": True,
                 "start_date": "2026-11-10", "group_id": None, "page_id": "p", "group": False,
                 "only_show_if_degraded": False}
    assert validate(component, COMPONENT) == []
    assert validate({**component, "position": True}, COMPONENT)  # a boolean is not an integer
    assert validate({**component, "created_at": "2026-11-10T10:00:00"}, COMPONENT)  # no offset
    assert validate({**component, "id": 7}, COMPONENT)  # ids are strings
    assert validate([component, {**component, "status": "down"}], {"type": "array", "items": COMPONENT}) == [
        "$[1].status: 'down' is not one of " + str(COMPONENT_STATUS)]


# ---------------------------------------------------------------------------------------
# fixtures


SERVICES = [("dalle3", "DALL·E 3", "OpenAI"), ("gpt-image", "GPT Image", "OpenAI"), ("flux", "FLUX", "Black Forest"),
            ("solo", "Solo", "")]


def make_config(maintenance: list[MaintenanceWindow] | None = None, **site: Any) -> Config:
    return Config(site=SiteConfig(**site), maintenance=maintenance or [],
                  services=[ServiceConfig(id=sid, name=name, group=group, provider="openai", canaries=["c"])
                            for sid, name, group in SERVICES])


@pytest.fixture
def clock(monkeypatch):
    """Sets the API's clock: ``clock(at)``; every answer is rendered afresh (no render cache)."""
    moment = [NOW]
    monkeypatch.setattr(api_v1, "clock", lambda: moment[0])
    return lambda at: moment.__setitem__(0, at)


def app_for(engine, config: Config | None = None):
    return create_app(config or make_config(url="https://status.example.com"), engine=engine, testing=True)


def get(app, path: str) -> Any:
    render_cache(app).clear()
    response = app.test_client().get(path)
    assert response.status_code == 200, (path, response.get_data(as_text=True))
    assert response.content_type == "application/json"
    return response.get_json()


CREATED = NOW - timedelta(days=30)


def add_services(session) -> None:
    for position, (sid, name, group) in enumerate(SERVICES):
        add_service(session, sid, name, group=group, position=position)
    session.execute(update(Service).values(created_at=CREATED, updated_at=CREATED))
    session.commit()


def incident(session, service_id: str, *, start: datetime, kind: str = "outage", impact: str = "major",
             audience: str = "public", status: str = "investigating", resolved: datetime | None = None,
             updates: tuple[tuple[str, str, datetime], ...] = (), **fields: Any) -> Incident:
    row = Incident(service_id=service_id, kind=kind, audience=audience, impact=impact, status=status,
                   title=fields.pop("title", f"{service_id}: {kind}"), started_at=start, detected_at=start,
                   resolved_at=resolved, created_at=start, updated_at=resolved or start, **fields)
    session.add(row)
    session.flush()
    for update_status, body, at in updates:
        session.add(IncidentUpdate(incident_id=row.id, status=update_status, body=body, created_at=at, display_at=at))
    session.commit()
    return row


def rich_data(session) -> None:
    """Services with results, open and resolved public incidents, an operator incident, stored maintenance."""
    add_services(session)
    for sid, _, _ in SERVICES[:3]:
        add_result(session, sid, "eu", "ok", NOW - timedelta(minutes=10))
    incident(session, "dalle3", start=NOW - timedelta(hours=1), impact="minor",
             updates=(("investigating", "Errors from the provider", NOW - timedelta(minutes=55)),
                      ("monitoring", "A fix is out", NOW - timedelta(minutes=20))))
    incident(session, "flux", start=NOW - timedelta(days=2), resolved=NOW - timedelta(days=2, hours=-1),
             status="postmortem", postmortem="What happened", postmortem_at=NOW - timedelta(days=1),
             updates=(("investigating", "Down", NOW - timedelta(days=2)),
                      ("resolved", "Back", NOW - timedelta(days=2, hours=-1))))
    incident(session, "gpt-image", start=NOW - timedelta(minutes=30), audience="operator", kind="operator",
             title="OPERATOR-ONLY: our key expired")
    session.add_all([
        Maintenance(title="Upgrade", body="Planned upgrade", services=["flux"], starts_at=NOW + timedelta(hours=2),
                    ends_at=NOW + timedelta(hours=3), created_at=NOW - timedelta(days=1),
                    updated_at=NOW - timedelta(days=1)),
        Maintenance(title="Done early", body="", services=None, starts_at=NOW - timedelta(days=3),
                    ends_at=NOW - timedelta(days=3, hours=-4), status="completed", created_at=NOW - timedelta(days=4),
                    updated_at=NOW - timedelta(days=3, hours=-1)),
    ])
    session.commit()


# ---------------------------------------------------------------------------------------
# shapes


def test_every_endpoint_matches_the_statuspage_schema(engine, session, clock):
    rich_data(session)
    config = make_config([MaintenanceWindow(title="Config window", services=["solo"], start=NOW - timedelta(minutes=30),
                                            end=NOW + timedelta(minutes=30))], url="https://status.example.com")
    app = app_for(engine, config)
    for path, schema in SCHEMAS.items():
        body = get(app, path)
        assert validate(body, schema) == [], path
        assert body["page"] == {"id": body["page"]["id"], "name": "Image Generation Status",
                                "url": "https://status.example.com", "time_zone": "UTC",
                                "updated_at": "2026-11-10T12:10:00.000+00:00"}  # the monitoring update
    assert all(get(app, "/api/v2/summary.json")[part] for part in ("components", "incidents", "scheduled_maintenances"))


def test_summary_holds_the_current_state(engine, session, clock):
    rich_data(session)
    config = make_config([MaintenanceWindow(title="Config window", services=["solo"], start=NOW - timedelta(minutes=30),
                                            end=NOW + timedelta(minutes=30))], url="https://status.example.com")
    body = get(app_for(engine, config), "/api/v2/summary.json")

    statuses = {c["id"]: c["status"] for c in body["components"]}
    assert statuses["dalle3"] == "partial_outage"  # a minor outage incident is open
    assert statuses["solo"] == "under_maintenance"
    assert statuses["flux"] == "operational" and statuses["gpt-image"] == "operational"  # operator incidents never count
    assert body["status"] == {"indicator": "major", "description": "Partial System Outage"}
    assert [i["name"] for i in body["incidents"]] == ["dalle3: outage"]  # unresolved only
    # upcoming and in progress, soonest first; the completed window is not here
    assert [(m["id"], m["status"]) for m in body["scheduled_maintenances"]] == [
        ("config-1", "in_progress"), ("maintenance-1", "scheduled")]


def test_statuses_and_indicator_are_the_snapshots(engine, session, clock):
    """The JSON reads ``web.snapshot`` like the pages do: the same statuses and the same indicator."""
    rich_data(session)
    incident(session, "flux", start=NOW - timedelta(minutes=5), kind="latency", impact="minor")
    config = make_config()
    body = get(app_for(engine, config), "/api/v2/summary.json")
    services = [c for c in body["components"] if not c["group"]]
    from web.context import WebState

    snap = snapshot(session, WebState(engine, None, config).services(session), config, NOW)  # type: ignore[arg-type]
    assert [(c["id"], c["status"]) for c in services] == [(c.info.id, c.status.value) for c in snap.components]
    assert body["status"] == {"indicator": snap.indicator.impact.value, "description": snap.indicator.description}
    assert dict((c["id"], c["status"]) for c in services)["flux"] == "degraded_performance"


@pytest.mark.parametrize("open_outages, indicator", [
    ((), "none"), (("dalle3",), "major"), (("dalle3", "gpt-image"), "critical"),
])
def test_indicator_enum(engine, session, clock, open_outages, indicator):
    add_services(session)
    for sid in open_outages:
        incident(session, sid, start=NOW - timedelta(minutes=5))
    for sid, _, _ in SERVICES:
        add_result(session, sid, "eu", "ok", NOW - timedelta(minutes=10))
    assert get(app_for(engine), "/api/v2/status.json")["status"]["indicator"] == indicator


# ---------------------------------------------------------------------------------------
# components and groups


def test_groups_are_components_with_stable_ids(engine, session, clock):
    add_services(session)
    add_result(session, "gpt-image", "eu", "ok", NOW - timedelta(minutes=10))
    incident(session, "gpt-image", start=NOW - timedelta(minutes=5), kind="quality", impact="minor")
    components = get(app_for(engine), "/api/v2/components.json")["components"]

    assert [(c["id"], c["group"]) for c in components] == [
        (components[0]["id"], True), ("dalle3", False), ("gpt-image", False),
        (components[3]["id"], True), ("flux", False), ("solo", False)]
    openai, forest = components[0], components[3]
    assert openai["name"] == "OpenAI" and openai["components"] == ["dalle3", "gpt-image"]
    assert forest["name"] == "Black Forest" and forest["components"] == ["flux"]
    assert openai["id"].startswith("group-") and openai["id"] != forest["id"]
    assert openai["status"] == "degraded_performance"  # the worst of its members
    by_id = {c["id"]: c for c in components}
    assert by_id["dalle3"]["group_id"] == by_id["gpt-image"]["group_id"] == openai["id"]
    assert by_id["solo"]["group_id"] is None and "components" not in by_id["solo"]
    assert [c["position"] for c in components] == [1, 1, 2, 2, 1, 3]  # within the group, or on the page
    assert by_id["dalle3"]["page_id"] == openai["page_id"]

    # the same group name gives the same id in another app on another database
    other = create_app(make_config(url="https://status.example.com"), engine=engine, testing=True)
    assert get(other, "/api/v2/components.json")["components"][0]["id"] == openai["id"]


def test_component_times_follow_status_changes(engine, session, clock):
    add_services(session)
    started = NOW - timedelta(minutes=40)
    incident(session, "flux", start=started, resolved=NOW - timedelta(minutes=10))
    by_id = {c["id"]: c for c in get(app_for(engine), "/api/v2/components.json")["components"]}
    assert by_id["flux"]["updated_at"] == "2026-11-10T12:20:00.000+00:00"  # when its incident resolved
    assert by_id["dalle3"]["updated_at"] == by_id["dalle3"]["created_at"] == "2026-10-11T12:30:00.000+00:00"
    assert by_id["flux"]["start_date"] == "2026-10-11"
    group = next(c for c in by_id.values() if c["name"] == "Black Forest")
    assert (group["created_at"], group["updated_at"]) == (by_id["flux"]["created_at"], by_id["flux"]["updated_at"])


def test_times_carry_the_site_timezone_offset(engine, session, clock):
    add_services(session)
    incident(session, "dalle3", start=datetime(2026, 11, 10, 9, 0, tzinfo=UTC))
    body = get(app_for(engine, make_config(timezone="Europe/Berlin")), "/api/v2/incidents.json")
    assert body["page"]["time_zone"] == "Europe/Berlin"
    assert body["incidents"][0]["started_at"] == "2026-11-10T10:00:00.000+01:00"  # CET in November


# ---------------------------------------------------------------------------------------
# incidents


def test_incident_fields(engine, session, clock):
    rich_data(session)
    body = get(app_for(engine), "/api/v2/incidents.json")
    open_one, resolved = body["incidents"]
    assert open_one["status"] == "investigating" and open_one["impact"] == "minor"
    assert open_one["monitoring_at"] == "2026-11-10T12:10:00.000+00:00" and open_one["resolved_at"] is None
    assert open_one["shortlink"] == f"https://status.example.com/incidents/{open_one['id']}"
    assert [u["body"] for u in open_one["incident_updates"]] == ["A fix is out", "Errors from the provider"]  # newest first
    first = open_one["incident_updates"][-1]
    assert first["incident_id"] == open_one["id"]
    assert first["affected_components"] == [{"code": "dalle3", "name": "DALL·E 3", "old_status": "operational",
                                             "new_status": "partial_outage"}]
    assert open_one["incident_updates"][0]["affected_components"] is None  # no change of status
    assert [c["id"] for c in open_one["components"]] == ["dalle3"]

    assert resolved["status"] == "postmortem" and resolved["postmortem_body"] == "What happened"
    assert resolved["incident_updates"][0]["affected_components"][0]["new_status"] == "operational"
    assert resolved["resolved_at"] == "2026-11-08T13:30:00.000+00:00"


def test_public_title_and_summary(engine, session, clock):
    add_services(session)
    incident(session, "dalle3", start=NOW - timedelta(minutes=5), title="dalle3: 3 timeouts in eu-west",
             public_title="Image generation is failing", public_body="We are looking into it.",
             updates=(("investigating", "detector text", NOW - timedelta(minutes=5)),))
    found = get(app_for(engine), "/api/v2/incidents/unresolved.json")["incidents"]
    assert found[0]["name"] == "Image generation is failing"
    assert found[0]["summary"] == "We are looking into it."
    assert [u["body"] for u in found[0]["incident_updates"]] == ["detector text"]  # as the incident page shows them


def test_operator_incidents_never_appear(engine, session, clock):
    rich_data(session)
    incident(session, "flux", start=NOW - timedelta(hours=5), audience="operator", resolved=NOW - timedelta(hours=4),
             title="OPERATOR-ONLY resolved")
    app = app_for(engine)
    for path in SCHEMAS:
        render_cache(app).clear()
        raw = app.test_client().get(path).get_data(as_text=True)
        assert "OPERATOR-ONLY" not in raw, path
    assert len(get(app, "/api/v2/incidents.json")["incidents"]) == 2


def test_incidents_list_holds_the_50_newest(engine, session, clock):
    add_services(session)
    for n in range(55):
        incident(session, "dalle3", start=NOW - timedelta(hours=60 - n), resolved=NOW - timedelta(hours=59 - n),
                 status="resolved", title=f"incident {n}")
    names = [i["name"] for i in get(app_for(engine), "/api/v2/incidents.json")["incidents"]]
    assert names == [f"incident {n}" for n in range(54, 4, -1)]
    assert get(app_for(engine), "/api/v2/incidents/unresolved.json")["incidents"] == []


HOSTILE = "<script>alert('x')</script>\"&amp;</title><img src=x onerror=alert(1)>\u2028"


def test_hostile_text_comes_back_verbatim_as_json(engine, session, clock):
    add_services(session)
    incident(session, "dalle3", start=NOW - timedelta(minutes=5), title=HOSTILE, public_body=HOSTILE,
             updates=(("investigating", HOSTILE, NOW - timedelta(minutes=5)),))
    app = app_for(engine)
    render_cache(app).clear()
    response = app.test_client().get("/api/v2/summary.json")
    raw = response.get_data(as_text=True)
    assert response.content_type == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "<" not in raw and ">" not in raw and "\u2028" not in raw  # escaped inside the strings
    found = json.loads(raw)["incidents"][0]
    assert found["name"] == found["summary"] == found["incident_updates"][0]["body"] == HOSTILE


# ---------------------------------------------------------------------------------------
# maintenance


def maintenance_ids(app, path: str) -> list[tuple[str, str]]:
    return [(m["id"], m["status"]) for m in get(app, path)["scheduled_maintenances"]]


def test_maintenance_status_follows_the_clock(engine, session, clock):
    add_services(session)
    start, end = NOW + timedelta(hours=1), NOW + timedelta(hours=3)
    session.add(Maintenance(title="Stored", body="Database upgrade", services=["flux"], starts_at=start, ends_at=end,
                            created_at=NOW - timedelta(days=1), updated_at=NOW - timedelta(days=1)))
    session.commit()
    app = app_for(engine, make_config([MaintenanceWindow(title="From the config", services=[], start=start, end=end)]))

    clock(start - timedelta(seconds=1))
    assert maintenance_ids(app, "/api/v2/scheduled-maintenances/upcoming.json") == [
        ("config-1", "scheduled"), ("maintenance-1", "scheduled")]
    assert maintenance_ids(app, "/api/v2/scheduled-maintenances/active.json") == []
    stored = get(app, "/api/v2/scheduled-maintenances.json")["scheduled_maintenances"]
    announced = next(m for m in stored if m["id"] == "maintenance-1")
    assert [(u["status"], u["body"]) for u in announced["incident_updates"]] == [("scheduled", "Database upgrade")]
    assert [c["id"] for c in announced["components"]] == ["flux"]
    assert announced["scheduled_for"] == "2026-11-10T13:30:00.000+00:00"
    assert announced["scheduled_until"] == "2026-11-10T15:30:00.000+00:00"

    clock(start)  # the start is inclusive
    assert maintenance_ids(app, "/api/v2/scheduled-maintenances/upcoming.json") == []
    assert maintenance_ids(app, "/api/v2/scheduled-maintenances/active.json") == [
        ("config-1", "in_progress"), ("maintenance-1", "in_progress")]
    components = {c["id"]: c["status"] for c in get(app, "/api/v2/components.json")["components"]}
    assert components["flux"] == "under_maintenance" and components["dalle3"] == "under_maintenance"
    config_window = get(app, "/api/v2/summary.json")["scheduled_maintenances"][0]
    assert [c["id"] for c in config_window["components"]] == ["dalle3", "gpt-image", "flux", "solo"]  # every service

    clock(end)  # the end is exclusive
    assert maintenance_ids(app, "/api/v2/scheduled-maintenances/active.json") == []
    assert get(app, "/api/v2/summary.json")["scheduled_maintenances"] == []
    done = {m["id"]: m for m in get(app, "/api/v2/scheduled-maintenances.json")["scheduled_maintenances"]}
    assert {i: m["status"] for i, m in done.items()} == {"config-1": "completed", "maintenance-1": "completed"}
    assert done["maintenance-1"]["resolved_at"] == "2026-11-10T15:30:00.000+00:00"
    assert [u["status"] for u in done["maintenance-1"]["incident_updates"]] == ["completed", "in_progress", "scheduled"]
    assert get(app, "/api/v2/status.json")["status"]["indicator"] == "none"


def test_maintenance_verifying_and_completed_early(engine, session, clock):
    add_services(session)
    session.add_all([
        Maintenance(title="Verifying", body="", services=["dalle3"], starts_at=NOW - timedelta(hours=1),
                    ends_at=NOW + timedelta(hours=1), status="verifying", created_at=NOW - timedelta(days=1),
                    updated_at=NOW - timedelta(minutes=5)),
        Maintenance(title="Ended early", body="", services=["flux"], starts_at=NOW - timedelta(hours=2),
                    ends_at=NOW - timedelta(hours=1), status="completed", created_at=NOW - timedelta(days=1),
                    updated_at=NOW - timedelta(hours=1)),
    ])
    session.commit()
    app = app_for(engine)
    assert maintenance_ids(app, "/api/v2/scheduled-maintenances/active.json") == [("maintenance-1", "verifying")]
    everything = {m["id"]: m for m in get(app, "/api/v2/scheduled-maintenances.json")["scheduled_maintenances"]}
    assert everything["maintenance-2"]["status"] == "completed"
    assert everything["maintenance-1"]["incident_updates"][0]["status"] == "verifying"


# ---------------------------------------------------------------------------------------
# errors


def test_errors_under_api_v2_are_json(engine, session, clock):
    client = app_for(engine).test_client()
    for path, code in (("/api/v2/nothing.json", 404), ("/api/v2/", 404), ("/api/v2/incidents/1.json", 404)):
        response = client.get(path)
        assert (response.status_code, response.content_type) == (code, "application/json"), path
        assert "error" in response.get_json()
    response = client.post("/api/v2/summary.json")
    assert response.status_code == 405 and response.get_json() == {"error": "the API is read-only"}
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_answers_may_be_read_from_other_sites(engine, session, clock):
    response = app_for(engine).test_client().get("/api/v2/status.json")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Set-Cookie" not in response.headers
