"""The admin side's pages: sign-in, sessions, CSRF, the rate limit, incidents and maintenance by hand,
subscribers, Markdown sanitising, and what reaches the public page."""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from monitor.config import Config, ServiceConfig
from monitor.store.models import Incident, IncidentUpdate, Maintenance, Subscriber, User
from tests.webdb import add_service, engine, session  # noqa: F401 - fixtures
from web import create_app
from web.admin import auth
from web.admin.passwords import hash_password, verify_password
from web.admin.ratelimit import FailureLimiter
from web.queries import active_services
from web.richtext import render
from web.snapshot import snapshot

PASSWORD = "correct horse battery"
CHEAP = {"n": 2**4, "r": 1, "p": 1}  # the tests' hashes: the format and code path are the real ones


@pytest.fixture(autouse=True)
def cheap_dummy(monkeypatch):
    """An unknown name is checked against a dummy hash of the real cost; the tests use a cheap one."""
    monkeypatch.setattr(auth, "DUMMY_HASH", hash_password("x" * 12, **CHEAP))


def add_user(session, name: str = "ada", password: str = PASSWORD) -> User:
    user = User(name=name, password_hash=hash_password(password, **CHEAP))
    session.add(user)
    session.commit()
    return user


@pytest.fixture
def app(engine):
    return create_app(engine=engine, testing=True)


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(client, name: str = "ada", password: str = PASSWORD, ip: str = "127.0.0.1"):
    token = csrf_of(client.get("/admin/login").get_data(as_text=True))
    return client.post("/admin/login", data={"name": name, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": ip})


@pytest.fixture
def admin(session, client):
    """A signed-in client and its CSRF token."""
    add_service(session, "svc", "Service One")
    add_service(session, "other", "Other")
    add_user(session)
    assert login(client).status_code == 302
    return client, csrf_of(client.get("/admin/").get_data(as_text=True))


def text_of(response) -> str:
    return response.get_data(as_text=True)


# -- sign-in and sessions ----------------------------------------------------------------


def test_sign_in_and_out(session, client):
    add_user(session)
    assert client.get("/admin/").status_code == 302
    answer = login(client)
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/admin/")
    page = client.get("/admin/")
    assert page.status_code == 200 and "Sign out ada" in text_of(page)
    assert session.scalar(select(User.last_login_at)) is not None
    token = csrf_of(text_of(page))
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/admin/").status_code == 302


def test_wrong_password_and_unknown_user_get_the_same_answer(session, client, monkeypatch):
    add_user(session)
    checked = []
    real = auth.verify_password
    monkeypatch.setattr(auth, "verify_password", lambda pw, stored: checked.append(stored) or real(pw, stored))
    wrong = login(client, password="not the password")
    unknown = login(client, name="nobody")
    assert wrong.status_code == unknown.status_code == 401
    message = "Wrong user name or password."
    assert message in text_of(wrong) and message in text_of(unknown)
    assert text_of(wrong).replace('value="ada"', "") == text_of(unknown).replace('value="nobody"', "")
    assert checked[1] == auth.DUMMY_HASH  # an unknown name still costs one hash
    assert client.get("/admin/").status_code == 302


def test_next_goes_back_to_the_admin_page_asked_for_and_nowhere_else(session, client):
    add_user(session)
    answer = client.get("/admin/tokens")
    assert answer.status_code == 302 and "next=/admin/tokens" in answer.headers["Location"]
    token = csrf_of(text_of(client.get("/admin/login")))
    for target, expected in [("/admin/tokens", "/admin/tokens"), ("https://evil.example/", "/admin/"),
                             ("//evil.example/admin", "/admin/"), ("/admin\\@evil", "/admin/")]:
        client.post("/admin/logout", data={"csrf_token": token})
        token = csrf_of(text_of(client.get("/admin/login")))
        answer = client.post("/admin/login", data={"name": "ada", "password": PASSWORD, "csrf_token": token, "next": target})
        assert answer.headers["Location"] == expected, target
        token = csrf_of(text_of(client.get("/admin/")))


def test_session_expires_12_hours_after_sign_in(admin):
    client, _ = admin
    with client.session_transaction() as cookie:
        cookie["login_at"] -= 11.9 * 3600
    assert client.get("/admin/").status_code == 200
    with client.session_transaction() as cookie:
        cookie["login_at"] -= 0.2 * 3600
    answer = client.get("/admin/")
    assert answer.status_code == 302 and "/admin/login" in answer.headers["Location"]
    with client.session_transaction() as cookie:
        assert "uid" not in cookie  # cleared, not just refused


def test_session_from_the_future_or_forged_fields_is_refused(admin):
    client, _ = admin
    with client.session_transaction() as cookie:
        cookie["login_at"] = time.time() + 3600
    assert client.get("/admin/").status_code == 302


def test_removed_user_or_changed_password_ends_the_session(admin, session):
    client, _ = admin
    user = session.scalar(select(User))
    user.password_hash = hash_password("a new password!", **CHEAP)
    session.commit()
    assert client.get("/admin/").status_code == 302
    assert login(client, password="a new password!").status_code == 302
    session.delete(user)
    session.commit()
    assert client.get("/admin/").status_code == 302


def test_cookie_flags_and_no_store(session, engine):
    add_user(session)
    config = Config(site={"url": "https://status.example.com"})
    client = create_app(config, engine=engine, testing=True).test_client()
    answer = login(client)
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie and "Expires=" in cookie
    assert answer.headers["Cache-Control"] == "no-store"
    assert client.get("/admin/login").headers["Cache-Control"] == "no-store"
    plain = create_app(engine=engine, testing=True).test_client()
    assert "Secure" not in login(plain).headers["Set-Cookie"]  # site.url is not https: no Secure flag


def test_secret_key_from_the_environment(engine, monkeypatch):
    monkeypatch.setenv("GENSTATUS_SECRET_KEY", "k" * 40)
    assert create_app(engine=engine, testing=True).secret_key == "k" * 40


def test_random_secret_key_is_per_process_with_one_warning(engine, monkeypatch, caplog):
    monkeypatch.delenv("GENSTATUS_SECRET_KEY", raising=False)
    monkeypatch.setattr(auth, "_process_key", None)
    with caplog.at_level(logging.WARNING, "genstatus.web.admin"):
        first = create_app(engine=engine, testing=True)
        second = create_app(engine=engine, testing=True)
    assert first.secret_key == second.secret_key and len(first.secret_key) == 32
    assert sum("GENSTATUS_SECRET_KEY is not set" in r.message for r in caplog.records) == 1


# -- rate limit --------------------------------------------------------------------------


def test_five_failures_per_user_name_lock_it_out_with_429(session, client):
    add_user(session)
    for attempt in range(5):
        assert login(client, password="wrong password", ip=f"10.0.0.{attempt}").status_code == 401
    locked = login(client, ip="10.0.0.99")  # the right password, a fresh address: still locked
    assert locked.status_code == 429
    assert 14 * 60 <= int(locked.headers["Retry-After"]) <= 15 * 60
    assert "Too many failed sign-ins" in text_of(locked)
    assert login(client, name="someone-else", ip="10.0.0.99").status_code == 401  # other names are not locked


def test_five_failures_from_one_address_lock_it_out(session, client):
    add_user(session)
    for attempt in range(5):
        assert login(client, name=f"guess{attempt}", password="wrong password", ip="10.1.1.1").status_code == 401
    assert login(client, ip="10.1.1.1").status_code == 429
    assert login(client, ip="10.1.1.2").status_code == 302  # another address with the right password


def test_limiter_window_and_bounded_size():
    now = [1000.0]
    limiter = FailureLimiter(max_failures=2, window=60, max_keys=3, clock=lambda: now[0])
    limiter.failed(["a"])
    now[0] += 10
    limiter.failed(["a"])
    assert limiter.retry_after(["a"]) == 50
    now[0] += 50
    assert limiter.retry_after(["a"]) is None  # the first failure left the window
    for key in "bcdef":
        limiter.failed([key])
    assert len(limiter) == 3  # the least recently failed were dropped
    limiter.clear("f")
    assert len(limiter) == 2


# -- CSRF and authentication of writes ---------------------------------------------------

WRITES = ["/admin/logout", "/admin/incidents", "/admin/incidents/1/updates", "/admin/incidents/1/resolve",
          "/admin/incidents/1/postmortem", "/admin/incidents/1/public", "/admin/incidents/1/takeover",
          "/admin/maintenance", "/admin/maintenance/1/status", "/admin/subscribers/1/delete", "/admin/tokens",
          "/admin/tokens/1/revoke"]


def test_every_write_needs_a_signed_in_user(session, client):
    for path in WRITES:
        answer = client.post(path, data={"title": "x", "body": "y"})
        assert answer.status_code == 302 and "/admin/login" in answer.headers["Location"], path


def test_every_write_needs_the_csrf_token(admin, session):
    client, good = admin
    now = datetime.now(UTC)
    session.add(Incident(service_id="svc", kind="outage", audience="public", impact="major", status="investigating",
                         title="t", started_at=now, detected_at=now, source="manual"))
    session.commit()
    for path in WRITES[1:]:
        for token in (None, "wrong", good[:-1]):
            data = {"title": "x", "body": "y", "services": ["svc"], "name": "n", "status": "resolved"}
            if token:
                data["csrf_token"] = token
            answer = client.post(path, data=data)
            assert answer.status_code == 403 and "CSRF" in text_of(answer), (path, token)
    assert session.scalar(select(func.count(Incident.id))) == 1
    assert session.scalar(select(func.count(IncidentUpdate.id))) == 0
    assert session.scalar(select(Incident.status)) == "investigating"


def test_login_form_needs_its_csrf_token(session, client):
    add_user(session)
    client.get("/admin/login")
    assert client.post("/admin/login", data={"name": "ada", "password": PASSWORD}).status_code == 403


def test_logout_needs_csrf(admin):
    client, _ = admin
    assert client.post("/admin/logout").status_code == 403
    assert client.get("/admin/").status_code == 200


def test_admin_pages_render_with_the_token_in_every_form(admin):
    client, token = admin
    for path in ("/admin/", "/admin/incidents", "/admin/incidents/new", "/admin/maintenance", "/admin/subscribers",
                 "/admin/tokens"):
        html = text_of(client.get(path))
        forms = re.findall(r'<form[^>]*method="post".*?</form>', html, re.S)
        assert forms and all(f'name="csrf_token" value="{token}"' in form for form in forms), path
        assert "<script" not in html and "style=" not in html  # the CSP allows neither


# -- incidents by hand -------------------------------------------------------------------


def create(client, token, **fields):
    data = {"services": ["svc"], "title": "Image generation fails", "impact": "major", "status": "investigating",
            "kind": "outage", "body": "We are **looking** into it.", "csrf_token": token} | fields
    return client.post("/admin/incidents", data=data)


def test_manual_incident_reaches_the_snapshot_and_the_public_page(admin, session):
    client, token = admin
    answer = create(client, token)
    assert answer.status_code == 302
    incident = session.scalar(select(Incident))
    assert (incident.source, incident.audience, incident.kind, incident.impact, incident.status) == \
        ("manual", "public", "outage", "major", "investigating")
    (update,) = incident.updates
    assert update.author == "ada" and update.body == "We are **looking** into it."  # the Markdown source is kept
    now = datetime.now(UTC)
    shown = snapshot(session, active_services(session), None, now)
    assert [i.title for i in shown.incidents] == ["Image generation fails"]
    assert {c.info.id: c.status.value for c in shown.components}["svc"] == "major_outage"
    assert shown.indicator.impact.value in ("major", "critical")
    public = text_of(client.get("/"))
    assert "Image generation fails" in public and f'data-incident="{incident.id}"' in public


def test_one_incident_per_service_and_a_clash_is_409(admin, session):
    client, token = admin
    assert create(client, token, services=["svc", "other"]).status_code == 302
    assert [i.service_id for i in session.scalars(select(Incident).order_by(Incident.id))] == ["svc", "other"]
    again = create(client, token, services=["svc"])
    assert again.status_code == 409 and "already open for svc" in text_of(again)
    assert create(client, token, services=["svc"], kind="latency").status_code == 302  # another kind: fine


INVALID_INCIDENTS = [
    ({"services": []}, "choose at least one service"),
    ({"services": ["nope"]}, "no such service"),
    ({"title": ""}, "title is required"),
    ({"title": "x" * 301}, "title is longer than 300"),
    ({"title": "two\nlines"}, "line breaks"),
    ({"impact": "huge"}, "impact must be one of none, minor, major, critical"),
    ({"status": "resolved"}, "status must be one of investigating, identified, monitoring"),
    ({"kind": "agent"}, "kind must be one of outage, latency, quality, safety"),
    ({"body": " "}, "body is required"),
    ({"body": "x" * 20_001}, "body is longer than 20000"),
]


def test_incident_input_is_validated(admin, session):
    client, token = admin
    for fields, message in INVALID_INCIDENTS:
        answer = create(client, token, **fields)
        assert answer.status_code == 400 and message in text_of(answer), fields
    assert session.scalars(select(Incident)).all() == []


def incident_page(client, incident_id: int) -> str:
    return text_of(client.get(f"/admin/incidents/{incident_id}"))


def test_update_status_resolve_and_postmortem(admin, session):
    client, token = admin
    create(client, token)
    incident = session.scalar(select(Incident))
    answer = client.post(f"/admin/incidents/{incident.id}/updates",
                         data={"body": "Found it.", "status": "identified", "impact": "minor", "csrf_token": token})
    assert answer.status_code == 302
    early = client.post(f"/admin/incidents/{incident.id}/postmortem", data={"postmortem": "x", "csrf_token": token})
    assert early.status_code == 409 and "resolve it before" in text_of(early)
    assert client.post(f"/admin/incidents/{incident.id}/resolve", data={"csrf_token": token}).status_code == 302
    session.expire_all()
    incident = session.get(Incident, incident.id)
    assert incident.resolved_at is not None and incident.status == "resolved" and incident.impact == "minor"
    assert [u.status for u in incident.updates] == ["investigating", "identified", "resolved"]
    assert incident.updates[-1].body == "This incident has been resolved."
    twice = client.post(f"/admin/incidents/{incident.id}/resolve", data={"csrf_token": token})
    assert twice.status_code == 409
    assert client.post(f"/admin/incidents/{incident.id}/postmortem",
                       data={"postmortem": "## What happened\n\nA bad deploy.", "csrf_token": token}).status_code == 302
    session.expire_all()
    incident = session.get(Incident, incident.id)
    assert incident.status == "postmortem" and incident.postmortem_at is not None
    page = incident_page(client, incident.id)
    assert "<h4>What happened</h4>" in page and '<option value="" selected>unchanged</option>' in page
    # the form's default leaves status and impact as they are: a note after the postmortem reopens nothing
    assert client.post(f"/admin/incidents/{incident.id}/updates",
                       data={"body": "Follow-up.", "status": "", "impact": "", "csrf_token": token}).status_code == 302
    session.expire_all()
    incident = session.get(Incident, incident.id)
    assert (incident.status, incident.impact, incident.resolved_at is not None) == ("postmortem", "minor", True)


def test_automatic_incident_text_can_be_overridden_but_its_status_needs_a_take_over(admin, session):
    client, token = admin
    now = datetime.now(UTC)
    auto = Incident(service_id="svc", kind="outage", audience="public", impact="major", status="investigating",
                    title="svc: major outage", regions=["eu"], started_at=now, detected_at=now)
    session.add(auto)
    session.commit()
    path = f"/admin/incidents/{auto.id}"
    assert client.post(f"{path}/public", data={"public_title": "Slow image generation for some users",
                                               "public_body": "We are on it.", "csrf_token": token}).status_code == 302
    refused = client.post(f"{path}/updates", data={"body": "x", "status": "monitoring", "csrf_token": token})
    assert refused.status_code == 409 and "take it over" in text_of(refused)
    assert client.post(f"{path}/resolve", data={"csrf_token": token}).status_code == 409
    assert client.post(f"{path}/updates", data={"body": "A note.", "csrf_token": token}).status_code == 302  # text only
    assert client.post(f"{path}/takeover", data={"csrf_token": token}).status_code == 302
    assert client.post(f"{path}/resolve", data={"csrf_token": token}).status_code == 302
    session.expire_all()
    auto = session.get(Incident, auto.id)
    assert (auto.source, auto.status, auto.public_title) == ("manual", "resolved", "Slow image generation for some users")
    assert "Slow image generation for some users" in incident_page(client, auto.id)


def test_overridden_title_is_what_the_public_sees(admin, session):
    client, token = admin
    now = datetime.now(UTC)
    auto = Incident(service_id="svc", kind="outage", audience="public", impact="major", status="investigating",
                    title="svc: major outage", regions=["eu"], started_at=now, detected_at=now)
    session.add(auto)
    session.commit()
    client.post(f"/admin/incidents/{auto.id}/public", data={"public_title": "Errors for some users <b>now</b>",
                                                            "csrf_token": token})
    public = text_of(client.get("/"))
    assert "Errors for some users &lt;b&gt;now&lt;/b&gt;" in public and "svc: major outage" not in public


def test_markdown_is_sanitised_on_the_admin_page_and_on_the_public_one(admin, session):
    client, token = admin
    payload = ('Hello <script>alert(1)</script> <img src=x onerror="alert(2)"> [link](javascript:alert(3)) '
               '<a href="https://example.com" onclick="alert(4)">ok</a> <iframe src="//evil"></iframe> **bold**')
    assert create(client, token, body=payload, title='<b onmouseover="x">T</b>').status_code == 302
    incident = session.scalar(select(Incident))
    html = incident_page(client, incident.id)
    body = html[html.index('<div class="admin-markdown">'):]
    for bad in ("<script", "onerror", "javascript:", "onclick", "<iframe", "<img", 'onmouseover="x"'):
        assert bad not in body, bad
    assert "<strong>bold</strong>" in body and 'href="https://example.com"' in body
    assert "&lt;b onmouseover=&#34;x&#34;&gt;T&lt;/b&gt;" in html  # the title is escaped text
    public = text_of(client.get("/"))
    for bad in ("<script", "onerror", "javascript:", "onclick", "<iframe", "<img"):
        assert bad not in public, bad
    assert "<strong>bold</strong>" in public  # the same sanitised Markdown as on the admin side


@pytest.mark.parametrize("payload", [
    "<script>alert(1)</script>", "<svg onload=alert(1)>", "[x](JaVaScRiPt:alert(1))", "<a href='javascript:x'>y</a>",
    "<div style=\"background:url(javascript:x)\">z</div>", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "[x](data:text/html;base64,PHNjcmlwdD4=)", "<object data=x></object>", "<form action=x><button>go</button></form>",
])
def test_markdown_render_keeps_no_active_content(payload):
    html = str(render(payload)).lower()
    for bad in ("<script", "onload", "onerror", "javascript:", "data:", "style=", "<object", "<form", "<svg", "<img"):
        assert bad not in html, (payload, html)


def test_markdown_render_keeps_formatting():
    html = str(render("# Title\n\n* one\n* two\n\n`code` and [docs](https://example.com/a?b=1&c=2)"))
    assert "<h3>Title</h3>" in html and "<li>one</li>" in html and "<code>code</code>" in html
    assert 'href="https://example.com/a?b=1&amp;c=2"' in html and 'rel="noopener noreferrer nofollow"' in html


# -- maintenance -------------------------------------------------------------------------


def test_maintenance_in_the_site_timezone(session, engine):
    add_service(session, "svc")
    add_user(session)
    config = Config(site={"timezone": "Europe/Berlin"},
                    services=[ServiceConfig(id="svc", provider="openai", canaries=["c"])])
    client = create_app(config, engine=engine, testing=True).test_client()
    login(client)
    token = csrf_of(text_of(client.get("/admin/maintenance")))
    year = datetime.now(UTC).year + 1
    data = {"title": "Database upgrade", "starts_at": f"{year}-01-15T10:00", "ends_at": f"{year}-01-15T12:30",
            "scope": "some", "services": ["svc"], "csrf_token": token}
    assert client.post("/admin/maintenance", data=data).status_code == 302
    window = session.scalar(select(Maintenance))
    assert window.starts_at == datetime(year, 1, 15, 9, 0, tzinfo=UTC)  # CET is UTC+1
    assert window.services == ["svc"] and window.author == "ada" and window.status == "scheduled"
    assert "Database upgrade" in text_of(client.get("/admin/"))
    last_sunday = max(day for day in range(25, 32) if datetime(year, 3, day).weekday() == 6)
    gap = client.post("/admin/maintenance", data=data | {"starts_at": f"{year}-03-{last_sunday}T02:30",
                                                         "ends_at": f"{year}-03-{last_sunday}T04:00"})
    assert gap.status_code == 400 and "does not exist" in text_of(gap)  # the clocks skip 02:00-03:00 that night


def test_maintenance_input_is_validated(admin, session):
    client, token = admin

    def when(text: str) -> str:
        if not text.startswith("+"):
            return text
        return (datetime.now(UTC) + timedelta(hours=int(text[1:-1]))).strftime("%Y-%m-%dT%H:%M")

    for starts, ends, message in [("2020-01-01T10:00", "2020-01-01T11:00", "already ended"),
                                  ("+1h", "+0h", "must end after it starts"),
                                  ("+1h", "+800h", "at most 31 days"),
                                  ("tomorrow", "+2h", "must be a date and time"),
                                  ("2030-02-30T10:00", "+2h", "not a valid date")]:
        answer = client.post("/admin/maintenance", data={"title": "w", "starts_at": when(starts), "ends_at": when(ends),
                                                         "csrf_token": token})
        assert answer.status_code == 400 and message in text_of(answer), starts
    answer = client.post("/admin/maintenance", data={"title": "w", "starts_at": when("+1h"), "ends_at": when("+2h"),
                                                     "scope": "some", "services": ["ghost"], "csrf_token": token})
    assert answer.status_code == 400 and "no such service: &#39;ghost&#39;" in text_of(answer)
    assert session.scalars(select(Maintenance)).all() == []


def test_completing_a_window_early_ends_it_and_the_page_no_longer_shows_maintenance(admin, session):
    client, token = admin
    now = datetime.now(UTC)
    window = Maintenance(title="Upgrade", services=None, starts_at=now - timedelta(minutes=5),
                         ends_at=now + timedelta(hours=1), status="in_progress")
    session.add(window)
    session.commit()
    assert snapshot(session, active_services(session), None, datetime.now(UTC)).components[0].status.value == "under_maintenance"
    answer = client.post(f"/admin/maintenance/{window.id}/status", data={"status": "completed", "csrf_token": token})
    assert answer.status_code == 302
    session.expire_all()
    window = session.get(Maintenance, window.id)
    assert window.status == "completed" and window.ends_at <= datetime.now(UTC)
    assert snapshot(session, active_services(session), None, datetime.now(UTC)).maintenances == []
    again = client.post(f"/admin/maintenance/{window.id}/status", data={"status": "verifying", "csrf_token": token})
    assert again.status_code == 409


# -- subscribers, dashboard --------------------------------------------------------------


def test_subscribers_are_listed_escaped_and_deleted(admin, session):
    client, token = admin
    session.add(Subscriber(kind="email", address="<b>a@example.com</b>", token="t" * 32))
    session.commit()
    html = text_of(client.get("/admin/subscribers"))
    assert "&lt;b&gt;a@example.com&lt;/b&gt;" in html
    sid = session.scalar(select(Subscriber.id))
    assert client.post(f"/admin/subscribers/{sid}/delete", data={"csrf_token": token}).status_code == 302
    assert session.scalars(select(Subscriber)).all() == []
    assert client.post(f"/admin/subscribers/{sid}/delete", data={"csrf_token": token}).status_code == 404


def test_dashboard_shows_operator_incidents_and_channel_health(admin, session):
    from monitor.store.models import AlertDelivery, AlertOutbox

    client, _ = admin
    now = datetime.now(UTC)
    session.add(Incident(service_id="svc", kind="operator", audience="operator", impact="minor", status="investigating",
                         title="svc: probe credentials or configuration problem", started_at=now, detected_at=now))
    outbox = AlertOutbox(event="open", audience="public", impact="major", title="t", body="b")
    session.add(outbox)
    session.flush()
    session.add_all([AlertDelivery(outbox_id=outbox.id, channel_id="slack", key="k1", state="sent"),
                     AlertDelivery(outbox_id=outbox.id, channel_id="slack", key="k2", state="failed",
                                   last_error="HTTP 404 <no such webhook>")])
    session.commit()
    html = text_of(client.get("/admin/"))
    assert "probe credentials or configuration problem" in html and 'data-audience="operator"' in html
    assert 'data-channel="slack" data-state="failed"' in html and "HTTP 404 &lt;no such webhook&gt;" in html


def test_updates_and_author_are_stored(admin, session):
    client, token = admin
    create(client, token)
    incident_id = session.scalar(select(Incident.id))
    client.post(f"/admin/incidents/{incident_id}/updates", data={"body": "More soon.", "csrf_token": token})
    authors = session.scalars(select(IncidentUpdate.author).order_by(IncidentUpdate.id)).all()
    assert authors == ["ada", "ada"]


def test_stored_hash_format_and_cost(session):
    stored = hash_password(PASSWORD, **CHEAP)
    assert stored.startswith("scrypt$n=16,r=1,p=1$") and verify_password(PASSWORD, stored)
    assert not verify_password("wrong", stored) and not verify_password(PASSWORD, "scrypt$n=3,r=1,p=1$AA$AA")
    assert hash_password(PASSWORD, **CHEAP) != stored  # a fresh salt each time
