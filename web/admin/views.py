"""The admin pages: plain HTML forms (no JavaScript), each write a POST with the CSRF token that
redirects back (post/redirect/get) or, when refused, shows the form again with the reason."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from monitor.enums import Impact
from monitor.store.models import ApiToken, Maintenance, Subscriber
from web import timefmt
from web.admin import auth, fields, operations, reads
from web.admin import validate as v
from web.admin.blueprint import bp
from web.admin.operations import Conflict, NotFound
from web.context import db_session, state
from web.snapshot import pending_maintenances

Page = str | Response | tuple[str, int] | tuple[str, int, dict[str, str]]
LOGIN_FAILED = "Wrong user name or password."


def _now() -> datetime:
    return datetime.now(UTC)


def _user_name() -> str:
    user = auth.current_user()
    assert user is not None
    return user.name


def _form() -> dict[str, Any]:
    """The form as a dict; ``services`` is always the list of ticked services."""
    form: MultiDict[str, str] = request.form
    data: dict[str, Any] = {key: form.get(key) for key in form}
    data["services"] = form.getlist("services")
    return data


def _refused(error: Exception, page: Callable[..., Page], **context: Any) -> Page:
    """Show ``page`` again with the reason the write was refused (400, 404 or 409)."""
    code = 400 if isinstance(error, v.Invalid) else 404 if isinstance(error, NotFound) else 409
    result = page(error=str(error), **context)
    html = result[0] if isinstance(result, tuple) else result
    assert isinstance(html, str)
    return html, code


# -- signing in ---------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    """Only a path on the admin side (or an admin-only report); anything else (another host, ``//evil``)
    goes to the dashboard."""
    if target and target.startswith(("/admin", "/reports")) and not target.startswith("//") \
            and not urlsplit(target).netloc and "\\" not in target:
        return target
    return url_for("admin.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Page:
    db = db_session()
    if request.method == "GET":
        if auth.session_user(db) is not None:
            return redirect(_safe_next(request.args.get("next")))
        return render_template("admin/login.html", next=request.args.get("next", ""), name="")
    name = (request.form.get("name") or "").strip()[:64]
    password = request.form.get("password") or ""
    target = request.form.get("next") or ""
    limiter = auth.limiter(current_app)
    keys = [f"ip:{request.remote_addr or '-'}", f"user:{name.lower()}"]
    wait = limiter.retry_after(keys)
    if wait is not None:
        page = render_template("admin/login.html", next=target, name=name,
                               error=f"Too many failed sign-ins. Try again in {(wait + 59) // 60} minutes.")
        return page, 429, {"Retry-After": str(wait)}
    user = auth.authenticate(db, name, password)
    if user is None:
        limiter.failed(keys)
        return render_template("admin/login.html", next=target, name=name, error=LOGIN_FAILED), 401
    limiter.clear(keys[1])
    auth.start_session(user, _now())
    db.commit()
    return redirect(_safe_next(target))


@bp.post("/logout")
def logout() -> Response:
    auth.end_session()
    flash("Signed out.")
    return redirect(url_for("admin.login"))


# -- dashboard ----------------------------------------------------------------------------


@bp.get("/")
def dashboard() -> Page:
    db = db_session()
    config = state().config
    channels = [c.id for c in config.alerts.channels] if config is not None else []
    return render_template("admin/dashboard.html", incidents=reads.open_incidents(db),
                           maintenances=pending_maintenances(db, _now()), channels=reads.channel_health(db, channels))


# -- incidents ----------------------------------------------------------------------------


@bp.get("/incidents")
def incidents() -> Page:
    return render_template("admin/incidents.html", incidents=reads.recent_incidents(db_session()))


@bp.get("/incidents/new")
def new_incident(error: str | None = None, values: dict[str, Any] | None = None) -> Page:
    db = db_session()
    known = set(fields.known_services(db))
    services = [s for s in state().services(db) if s.id in known]
    return render_template("admin/incident_new.html", services=services, kinds=[k.value for k in v.MANUAL_KINDS],
                           impacts=[i.value for i in Impact], statuses=[s.value for s in v.OPEN_STATUSES],
                           values=values or {}, error=error)


@bp.post("/incidents")
def create_incident() -> Page:
    db = db_session()
    data = _form()
    try:
        new = fields.new_incident(data, fields.known_services(db))
        rows = operations.create_incidents(db, services=new.services, title=new.title, impact=new.impact, status=new.status,
                                           kind=new.kind, body=new.body, author=_user_name(), now=_now())
        operations.commit(db)
    except (v.Invalid, Conflict) as error:
        db.rollback()
        return _refused(error, new_incident, values=data)
    flash(f"Incident #{', #'.join(str(r.id) for r in rows)} posted.")
    return redirect(url_for("admin.incident", incident_id=rows[0].id))


@bp.get("/incidents/<int:incident_id>")
def incident(incident_id: int, error: str | None = None) -> Page:
    db = db_session()
    try:
        row = operations.incident(db, incident_id)
    except NotFound as missing:
        return render_template("error.html", code=404, title="Not Found", message=str(missing)), 404
    return render_template("admin/incident.html", incident=row, impacts=[i.value for i in Impact],
                           statuses=[s.value for s in v.UPDATE_STATUSES], error=error)


def _incident_write(incident_id: int, write: Callable[..., Any], message: str) -> Page:
    """Run ``write(db, row, form, user, now)`` on an incident, commit, and go back to its page."""
    db = db_session()
    try:
        row = operations.incident(db, incident_id)
        write(db, row, _form(), _user_name(), _now())
        operations.commit(db)
    except NotFound as missing:
        return render_template("error.html", code=404, title="Not Found", message=str(missing)), 404
    except (v.Invalid, Conflict) as error:
        db.rollback()
        return _refused(error, incident, incident_id=incident_id)
    flash(message)
    return redirect(url_for("admin.incident", incident_id=incident_id))


def _post_update(db, row, data, user, now) -> None:
    update = fields.update(data)
    operations.post_update(db, row, body=update.body, status=update.status, impact=update.impact, author=user, now=now)


@bp.post("/incidents/<int:incident_id>/updates")
def post_update(incident_id: int) -> Page:
    return _incident_write(incident_id, _post_update, "Update posted.")


def _resolve(db, row, data, user, now) -> None:
    body = v.text(data.get("body"), "body", max_length=v.MAX_BODY, required=False)
    operations.resolve(db, row, body=body, author=user, now=now)


@bp.post("/incidents/<int:incident_id>/resolve")
def resolve(incident_id: int) -> Page:
    return _incident_write(incident_id, _resolve, "Incident resolved.")


@bp.post("/incidents/<int:incident_id>/postmortem")
def postmortem(incident_id: int) -> Page:
    return _incident_write(incident_id, lambda db, row, data, user, now: operations.write_postmortem(
        db, row, fields.postmortem(data), now), "Postmortem published.")


def _override(db, row, data, user, now) -> None:
    title, body = fields.public_override(data)
    operations.override_public(row, title=title, body=body)


@bp.post("/incidents/<int:incident_id>/public")
def override(incident_id: int) -> Page:
    return _incident_write(incident_id, _override, "Public text saved.")


@bp.post("/incidents/<int:incident_id>/takeover")
def take_over(incident_id: int) -> Page:
    return _incident_write(incident_id, lambda db, row, data, user, now: operations.take_over(row),
                           "The incident is yours now: the detector no longer changes it.")


# -- maintenance --------------------------------------------------------------------------


def _site_zone():
    return timefmt.zone(state().site.timezone)


@bp.get("/maintenance")
def maintenance(error: str | None = None, values: dict[str, Any] | None = None) -> Page:
    db = db_session()
    now = _now()
    tz = _site_zone()
    start = (now + timedelta(hours=1)).astimezone(tz).replace(minute=0, second=0, microsecond=0)
    defaults = {"starts_at": start.strftime("%Y-%m-%dT%H:%M"),
                "ends_at": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"), "scope": "all"}
    return render_template("admin/maintenance.html", pending=pending_maintenances(db, now),
                           services=state().services(db), statuses=v.MAINTENANCE_STATUSES,
                           values=values or defaults, error=error, zone=timefmt.zone_name(tz))


@bp.post("/maintenance")
def schedule_maintenance() -> Page:
    db = db_session()
    data = _form()
    if data.get("scope") != "some":
        data["services"] = None
    now = _now()
    try:
        new = fields.new_maintenance(data, [s.id for s in state().services(db)], now, _site_zone())
        row = operations.schedule_maintenance(db, title=new.title, body=new.body, services=new.services, starts=new.starts,
                                              ends=new.ends, author=_user_name(), now=now)
        operations.commit(db)
    except v.Invalid as error:
        db.rollback()
        return _refused(error, maintenance, values=data)
    flash(f"Maintenance #{row.id} scheduled.")
    return redirect(url_for("admin.maintenance"))


@bp.post("/maintenance/<int:maintenance_id>/status")
def maintenance_status(maintenance_id: int) -> Page:
    db = db_session()
    try:
        row = operations.get(db, Maintenance, maintenance_id)
        assert isinstance(row, Maintenance)
        operations.set_maintenance_status(row, fields.maintenance_status(_form()), _now())
        operations.commit(db)
    except (v.Invalid, Conflict, NotFound) as error:
        db.rollback()
        return _refused(error, maintenance)
    flash(f"Maintenance #{maintenance_id} is now {row.status.replace('_', ' ')}.")
    return redirect(url_for("admin.maintenance"))


# -- subscribers --------------------------------------------------------------------------


@bp.get("/subscribers")
def subscribers(error: str | None = None) -> Page:
    return render_template("admin/subscribers.html", subscribers=reads.subscribers(db_session()), error=error)


@bp.post("/subscribers/<int:subscriber_id>/delete")
def delete_subscriber(subscriber_id: int) -> Page:
    db = db_session()
    try:
        row = operations.get(db, Subscriber, subscriber_id)
        assert isinstance(row, Subscriber)
        operations.delete_subscriber(db, row)
        operations.commit(db)
    except NotFound as error:
        return _refused(error, subscribers)
    flash(f"Subscriber #{subscriber_id} deleted.")
    return redirect(url_for("admin.subscribers"))


# -- API tokens ---------------------------------------------------------------------------


@bp.get("/tokens")
def tokens(error: str | None = None, created: tuple[ApiToken, str] | None = None) -> str:
    return render_template("admin/tokens.html", tokens=reads.api_tokens(db_session()), error=error, created=created)


@bp.post("/tokens")
def create_token() -> Page:
    db = db_session()
    user = auth.current_user()
    assert user is not None
    try:
        row, token = operations.create_token(db, user, fields.token_name(_form()), _now())
        operations.commit(db)
    except v.Invalid as error:
        db.rollback()
        return _refused(error, tokens)
    return tokens(created=(row, token)), 201  # shown this once: the database keeps only its hash


@bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int) -> Page:
    db = db_session()
    try:
        row = operations.get(db, ApiToken, token_id)
        assert isinstance(row, ApiToken)
        operations.revoke_token(row, _now())
        operations.commit(db)
    except (Conflict, NotFound) as error:
        db.rollback()
        return _refused(error, tokens)
    flash(f"API token #{token_id} revoked.")
    return redirect(url_for("admin.tokens"))
