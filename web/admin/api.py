"""The write API under ``/admin/api/``: the admin side's writes as JSON, for automation.

Authenticated with ``Authorization: Bearer <API token>`` (made on the tokens page), or by a signed-in
session plus the ``X-CSRF-Token`` header.  Bodies are JSON objects (``Content-Type:
application/json``); times are ISO 8601 with an offset.  Errors are ``{"error": "..."}`` with 400
(invalid input), 401, 403, 404, 409 (clashes with the current state) or 413.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, jsonify, request
from werkzeug.exceptions import HTTPException

from monitor.store.models import Incident, IncidentUpdate, Maintenance, Subscriber
from web.admin import auth, fields, operations, reads
from web.admin import validate as v
from web.admin.blueprint import api_bp
from web.admin.operations import Conflict, NotFound
from web.context import db_session, state
from web.snapshot import pending_maintenances

Answer = tuple[Response, int] | Response


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not request.is_json:
        raise v.Invalid("send a JSON object with Content-Type: application/json")
    if not isinstance(data, dict):
        raise v.Invalid("the body must be a JSON object")
    return data


def _user_name() -> str:
    user = auth.current_user()
    assert user is not None
    return user.name


def _now() -> datetime:
    return datetime.now(UTC)


def update_json(update: IncidentUpdate) -> dict[str, Any]:
    return {"id": update.id, "status": update.status, "body": update.body, "author": update.author,
            "created_at": _iso(update.created_at), "display_at": _iso(update.display_at)}


def incident_json(row: Incident) -> dict[str, Any]:
    return {
        "id": row.id, "service": row.service_id, "kind": row.kind, "audience": row.audience, "source": row.source,
        "impact": row.impact, "status": row.status, "title": row.title, "public_title": row.public_title,
        "public_body": row.public_body, "started_at": _iso(row.started_at), "resolved_at": _iso(row.resolved_at),
        "postmortem": row.postmortem, "postmortem_at": _iso(row.postmortem_at),
        "updates": [update_json(u) for u in row.updates],
    }


def maintenance_json(row: Maintenance) -> dict[str, Any]:
    return {"id": row.id, "title": row.title, "body": row.body, "services": row.services, "status": row.status,
            "starts_at": _iso(row.starts_at), "ends_at": _iso(row.ends_at), "author": row.author}


def subscriber_json(row: Subscriber) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "address": row.address, "services": row.services,
            "created_at": _iso(row.created_at), "confirmed_at": _iso(row.confirmed_at)}


# -- errors as JSON -----------------------------------------------------------------------


def _error(message: str, code: int, headers: dict[str, str] | None = None) -> Answer:
    db_session().rollback()
    response = jsonify({"error": message})
    response.status_code = code
    response.headers.update(headers or {})
    return response


@api_bp.errorhandler(v.Invalid)
def _invalid(error: v.Invalid) -> Answer:
    return _error(str(error), 400)


@api_bp.errorhandler(Conflict)
def _conflict(error: Conflict) -> Answer:
    return _error(str(error), 409)


@api_bp.errorhandler(NotFound)
def _not_found(error: NotFound) -> Answer:
    return _error(str(error), 404)


@api_bp.errorhandler(HTTPException)
def _http(error: HTTPException) -> Answer:
    headers = {"WWW-Authenticate": 'Bearer realm="genstatus admin"'} if error.code == 401 else {}
    headers.update({k: val for k, val in error.get_headers() if k.lower() in ("allow", "retry-after")})
    return _error(error.description or error.name, error.code or 500, headers)


# -- incidents ----------------------------------------------------------------------------


@api_bp.get("/incidents")
def list_incidents() -> Answer:
    db = db_session()
    rows = reads.open_incidents(db) if request.args.get("open") in ("1", "true") else reads.recent_incidents(db)
    return jsonify({"incidents": [incident_json(r) for r in rows]})


@api_bp.post("/incidents")
def create_incidents() -> Answer:
    db = db_session()
    new = fields.new_incident(_body(), fields.known_services(db))
    rows = operations.create_incidents(db, services=new.services, title=new.title, impact=new.impact, status=new.status,
                                       kind=new.kind, body=new.body, author=_user_name(), now=_now())
    operations.commit(db)
    return jsonify({"incidents": [incident_json(r) for r in rows]}), 201


@api_bp.get("/incidents/<int:incident_id>")
def get_incident(incident_id: int) -> Answer:
    return jsonify(incident_json(operations.incident(db_session(), incident_id)))


@api_bp.post("/incidents/<int:incident_id>/updates")
def post_update(incident_id: int) -> Answer:
    db = db_session()
    row = operations.incident(db, incident_id)
    update = fields.update(_body())
    operations.post_update(db, row, body=update.body, status=update.status, impact=update.impact, author=_user_name(),
                           now=_now())
    operations.commit(db)
    return jsonify(incident_json(row)), 201


@api_bp.patch("/incidents/<int:incident_id>")
def patch_incident(incident_id: int) -> Answer:
    """``status``/``impact`` (with an optional ``body``; incidents by hand) and the public ``public_title``/``public_body``."""
    db = db_session()
    row = operations.incident(db, incident_id)
    data = _body()
    unknown = sorted(set(data) - {"status", "impact", "body", "public_title", "public_body"})
    if unknown:
        raise v.Invalid(f"unknown fields: {', '.join(unknown)[:200]}")
    if "public_title" in data or "public_body" in data:
        title, body = fields.public_override({"public_title": data.get("public_title", row.public_title),
                                              "public_body": data.get("public_body", row.public_body)})
        operations.override_public(row, title=title, body=body)
    if data.get("status") or data.get("impact"):
        update = fields.update(data, body_required=False)
        status = update.status or row.status
        body = update.body or (f"Status: {status}." if status != row.status else f"Impact: {update.impact}.")
        operations.post_update(db, row, body=body, status=update.status, impact=update.impact, author=_user_name(), now=_now())
    operations.commit(db)
    return jsonify(incident_json(row))


@api_bp.post("/incidents/<int:incident_id>/resolve")
def resolve(incident_id: int) -> Answer:
    db = db_session()
    row = operations.incident(db, incident_id)
    data = _body() if request.content_length else {}
    body = v.text(data.get("body"), "body", max_length=v.MAX_BODY, required=False)
    operations.resolve(db, row, body=body, author=_user_name(), now=_now())
    operations.commit(db)
    return jsonify(incident_json(row))


@api_bp.put("/incidents/<int:incident_id>/postmortem")
def postmortem(incident_id: int) -> Answer:
    db = db_session()
    row = operations.incident(db, incident_id)
    operations.write_postmortem(db, row, fields.postmortem(_body()), _now())
    operations.commit(db)
    return jsonify(incident_json(row))


@api_bp.post("/incidents/<int:incident_id>/takeover")
def take_over(incident_id: int) -> Answer:
    db = db_session()
    row = operations.incident(db, incident_id)
    operations.take_over(row)
    operations.commit(db)
    return jsonify(incident_json(row))


# -- maintenance --------------------------------------------------------------------------


@api_bp.get("/maintenances")
def list_maintenances() -> Answer:
    return jsonify({"maintenances": [maintenance_json(m) for m in pending_maintenances(db_session(), _now())]})


@api_bp.post("/maintenances")
def schedule_maintenance() -> Answer:
    db = db_session()
    now = _now()
    new = fields.new_maintenance(_body(), [s.id for s in state().services(db)], now, None)
    row = operations.schedule_maintenance(db, title=new.title, body=new.body, services=new.services, starts=new.starts,
                                          ends=new.ends, author=_user_name(), now=now)
    operations.commit(db)
    return jsonify(maintenance_json(row)), 201


@api_bp.patch("/maintenances/<int:maintenance_id>")
def patch_maintenance(maintenance_id: int) -> Answer:
    db = db_session()
    row = operations.get(db, Maintenance, maintenance_id)
    assert isinstance(row, Maintenance)
    operations.set_maintenance_status(row, fields.maintenance_status(_body()), _now())
    operations.commit(db)
    return jsonify(maintenance_json(row))


# -- subscribers --------------------------------------------------------------------------


@api_bp.get("/subscribers")
def list_subscribers() -> Answer:
    return jsonify({"subscribers": [subscriber_json(s) for s in reads.subscribers(db_session())]})


@api_bp.delete("/subscribers/<int:subscriber_id>")
def delete_subscriber(subscriber_id: int) -> Answer:
    db = db_session()
    row = operations.get(db, Subscriber, subscriber_id)
    assert isinstance(row, Subscriber)
    operations.delete_subscriber(db, row)
    operations.commit(db)
    return Response(status=204)

