"""The write API under /admin/api/: API tokens (made, used, revoked), CSRF for session-signed JSON,
strict input with clear 400s, 409 on clashes, and the same writes as the forms."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from monitor.store.models import AlertOutbox, ApiToken, Incident, Maintenance, Subscriber
from tests.test_admin import add_user, admin, app, cheap_dummy, client, csrf_of, login, text_of  # noqa: F401 - fixtures
from tests.webdb import add_service, engine, session  # noqa: F401 - fixtures
from web.admin.tokens import token_hash
from web.queries import active_services
from web.snapshot import snapshot


def make_token(client, csrf: str, name: str = "ci") -> str:
    answer = client.post("/admin/tokens", data={"name": name, "csrf_token": csrf})
    assert answer.status_code == 201
    return re.search(r'<code id="token-value">([^<]+)</code>', text_of(answer)).group(1)


@pytest.fixture
def api(admin, app):
    """A fresh client (no session) and a valid API token made on the tokens page."""
    client, csrf = admin
    token = make_token(client, csrf)
    return app.test_client(), {"Authorization": f"Bearer {token}"}


INCIDENT = {"services": ["svc"], "title": "Generation errors", "impact": "minor", "body": "Looking into it."}


def test_token_is_shown_once_and_stored_as_its_hash(admin, session):
    client, csrf = admin
    token = make_token(client, csrf)
    assert token.startswith("gs_") and len(token) > 40
    row = session.scalar(select(ApiToken))
    assert row.token_hash == token_hash(token) and token not in row.token_hash
    assert token not in text_of(client.get("/admin/tokens"))  # never shown again


def test_token_creates_reads_and_updates_incidents_without_csrf(api, session):
    client, auth = api
    made = client.post("/admin/api/incidents", json=INCIDENT, headers=auth)
    assert made.status_code == 201, made.json
    (incident,) = made.json["incidents"]
    assert incident["source"] == "manual" and incident["audience"] == "public" and incident["kind"] == "outage"
    assert incident["updates"][0]["author"] == "ada"
    assert incident["started_at"].endswith("+00:00")  # ISO 8601 with the offset
    path = f"/admin/api/incidents/{incident['id']}"
    assert client.get(path, headers=auth).json["title"] == "Generation errors"
    changed = client.patch(path, json={"status": "identified", "impact": "major", "public_title": "Errors for some users"},
                           headers=auth)
    assert changed.status_code == 200
    assert (changed.json["status"], changed.json["impact"], changed.json["public_title"]) == \
        ("identified", "major", "Errors for some users")
    assert changed.json["updates"][-1]["body"] == "Status: identified."
    posted = client.post(f"{path}/updates", json={"body": "A fix is rolling out.", "status": "monitoring"}, headers=auth)
    assert posted.status_code == 201 and posted.json["status"] == "monitoring"
    assert client.put(f"{path}/postmortem", json={"postmortem": "x"}, headers=auth).status_code == 409
    resolved = client.post(f"{path}/resolve", json={"body": "Fixed."}, headers=auth)
    assert resolved.status_code == 200 and resolved.json["resolved_at"] is not None
    done = client.put(f"{path}/postmortem", json={"postmortem": "## Cause\n\nA bad deploy."}, headers=auth)
    assert done.status_code == 200 and done.json["status"] == "postmortem"
    assert client.put(f"{path}/postmortem", json={"postmortem": "## Cause\n\nA bad deploy, v2."}, headers=auth).status_code == 200
    assert session.scalar(select(ApiToken.last_used_at)) is not None
    # every change a person makes reaches the alert routes and subscribers through the outbox, once
    events = session.execute(select(AlertOutbox.event, AlertOutbox.body).where(AlertOutbox.incident_id == incident["id"])
                             .order_by(AlertOutbox.id)).all()
    assert [e for e, _ in events] == ["open", "identified", "monitoring", "resolve", "postmortem"]
    assert events[0][1] == "Looking into it." and events[2][1] == "A fix is rolling out."


def test_revoked_or_unknown_tokens_are_401(admin, app, session):
    client, csrf = admin
    token = make_token(client, csrf)
    fresh = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    assert fresh.get("/admin/api/incidents", headers=auth).status_code == 200
    token_id = session.scalar(select(ApiToken.id))
    assert client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf}).status_code == 302
    for headers in (auth, {"Authorization": f"Bearer {token}x"}, {"Authorization": "Bearer "},
                    {"Authorization": f"Basic {token}"}, {}):
        answer = fresh.post("/admin/api/incidents", json=INCIDENT, headers=headers)
        assert answer.status_code == 401 and "error" in answer.json, headers
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert answer.headers["Cache-Control"] == "no-store"
    assert session.scalars(select(Incident)).all() == []
    assert client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf}).status_code == 409


def test_a_bearer_header_is_never_traded_for_the_session(admin, session):
    """A wrong token with a valid session cookie is still refused: the header decides."""
    client, csrf = admin
    answer = client.post("/admin/api/incidents", json=INCIDENT, headers={"Authorization": "Bearer gs_nope", "X-CSRF-Token": csrf})
    assert answer.status_code == 401


def test_session_signed_json_needs_the_csrf_header(admin, session):
    client, csrf = admin
    assert client.get("/admin/api/incidents").status_code == 200  # reading needs no token
    assert client.post("/admin/api/incidents", json=INCIDENT).status_code == 403
    assert client.post("/admin/api/incidents", json=INCIDENT, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert session.scalars(select(Incident)).all() == []
    assert client.post("/admin/api/incidents", json=INCIDENT, headers={"X-CSRF-Token": csrf}).status_code == 201


@pytest.mark.parametrize("path", ["/admin/api/incidents", "/admin/api/incidents/1/updates", "/admin/api/incidents/1/resolve",
                                  "/admin/api/incidents/1/takeover", "/admin/api/maintenances"])
def test_writes_without_auth_are_401(client, session, path):
    answer = client.post(path, json={})
    assert answer.status_code == 401 and answer.json["error"]


INVALID = [
    ({**INCIDENT, "services": "svc,other"}, "no such service"),
    ({**INCIDENT, "services": [1]}, "services must be a list of service ids"),
    ({**INCIDENT, "impact": "catastrophic"}, "impact must be one of"),
    ({**INCIDENT, "title": 7}, "title must be text"),
    ({**INCIDENT, "title": "t" * 301}, "title is longer than 300 characters"),
    ({**INCIDENT, "body": None}, "body is required"),
    ({**INCIDENT, "kind": "operator"}, "kind must be one of outage, latency, quality, safety"),
]


def test_invalid_input_is_400_with_a_clear_message(api, session):
    client, auth = api
    for body, message in INVALID:
        answer = client.post("/admin/api/incidents", json=body, headers=auth)
        assert answer.status_code == 400 and message in answer.json["error"], (body, answer.json)
    answer = client.post("/admin/api/incidents", data="title=x", headers=auth)
    assert answer.status_code == 400 and "Content-Type: application/json" in answer.json["error"]
    answer = client.post("/admin/api/incidents", json=["a"], headers=auth)
    assert answer.status_code == 400 and "JSON object" in answer.json["error"]
    assert client.get("/admin/api/incidents/999", headers=auth).status_code == 404
    assert client.post("/admin/api/incidents", json={**INCIDENT, "body": "x" * 2_000_000}, headers=auth).status_code == 413
    assert session.scalars(select(Incident)).all() == []


def test_detector_incident_status_needs_a_take_over(api, session):
    client, auth = api
    now = datetime.now(UTC)
    auto = Incident(service_id="svc", kind="outage", audience="public", impact="major", status="investigating",
                    title="svc: major outage", regions=["eu"], started_at=now, detected_at=now)
    session.add(auto)
    session.commit()
    path = f"/admin/api/incidents/{auto.id}"
    clash = client.post("/admin/api/incidents", json=INCIDENT, headers=auth)
    assert clash.status_code == 409 and f"#{auto.id}" in clash.json["error"] and "take it over" in clash.json["error"]
    assert client.patch(path, json={"status": "resolved"}, headers=auth).status_code == 409
    assert client.patch(path, json={"public_body": "We see errors."}, headers=auth).json["public_body"] == "We see errors."
    assert client.patch(path, json={"colour": "red"}, headers=auth).status_code == 400
    assert client.post(f"{path}/takeover", headers=auth).json["source"] == "manual"
    assert client.post(f"{path}/takeover", headers=auth).status_code == 409
    assert client.post(f"{path}/resolve", headers=auth).json["status"] == "resolved"


def test_maintenance_over_the_api(api, session):
    client, auth = api
    now = datetime.now(UTC).replace(microsecond=0)
    window = {"title": "Upgrade", "starts_at": (now - timedelta(minutes=1)).isoformat(),
              "ends_at": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), "services": ["svc"]}
    made = client.post("/admin/api/maintenances", json=window, headers=auth)
    assert made.status_code == 201 and made.json["status"] == "in_progress" and made.json["services"] == ["svc"]
    shown = snapshot(session, active_services(session), None, datetime.now(UTC))
    assert {c.info.id: c.status.value for c in shown.components} == {"svc": "under_maintenance", "other": "operational"}
    assert [m.title for m in shown.maintenances] == ["Upgrade"]
    assert session.scalars(select(AlertOutbox.event)).all() == ["maintenance_scheduled"]  # subscribers hear of it
    naive = client.post("/admin/api/maintenances", json={**window, "starts_at": "2030-01-01T10:00:00"}, headers=auth)
    assert naive.status_code == 400 and "no UTC offset" in naive.json["error"]
    empty = client.post("/admin/api/maintenances", json={**window, "services": []}, headers=auth)
    assert empty.status_code == 400 and "at least one service" in empty.json["error"]
    everyone = client.post("/admin/api/maintenances", json={**window, "services": None}, headers=auth)
    assert everyone.status_code == 201 and everyone.json["services"] is None
    listed = client.get("/admin/api/maintenances", headers=auth).json["maintenances"]
    assert len(listed) == 2
    done = client.patch(f"/admin/api/maintenances/{made.json['id']}", json={"status": "completed"}, headers=auth)
    assert done.status_code == 200 and done.json["status"] == "completed"
    assert client.patch(f"/admin/api/maintenances/{made.json['id']}", json={"status": "later"}, headers=auth).status_code == 400
    session.expire_all()
    assert session.get(Maintenance, made.json["id"]).ends_at <= datetime.now(UTC)  # completed early: it ended now


def test_subscribers_over_the_api(api, session):
    client, auth = api
    session.add(Subscriber(kind="webhook", address="https://hooks.example.com/x", token="s" * 32))
    session.commit()
    (listed,) = client.get("/admin/api/subscribers", headers=auth).json["subscribers"]
    assert listed["address"] == "https://hooks.example.com/x" and "token" not in listed
    assert client.delete(f"/admin/api/subscribers/{listed['id']}", headers=auth).status_code == 204
    assert client.delete(f"/admin/api/subscribers/{listed['id']}", headers=auth).status_code == 404
