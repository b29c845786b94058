"""Visitor subscriptions: the ``/subscribe`` form, the confirmation link, and unsubscribing.

The web side only writes rows -- a ``Subscriber`` and an outbox row asking for its confirmation
message (``web.outbox``); the alert dispatcher sends it.  Nothing else reaches an address before
it is confirmed.

* ``GET /subscribe`` shows the form (email, or a webhook URL when ``subscriptions.webhooks``; all
  services or chosen ones); without ``site.url`` it says subscriptions are unavailable (the links
  in messages need an absolute URL).  ``POST /subscribe`` needs the form's CSRF token, is limited
  per client address (``subscriptions.per_ip_per_hour``) and answers the same whether the
  address was new or known, so the form cannot tell who is subscribed.
* ``/subscribe/confirm/<token>`` and ``/unsubscribe/<token>``: a GET shows a page with a button;
  only its POST (with the CSRF token) confirms or unsubscribes, so a link scanner that opens the
  link changes nothing.  ``POST /unsubscribe/<token>`` with the body ``List-Unsubscribe=One-Click``
  (RFC 8058, what mail clients send for the ``List-Unsubscribe-Post`` header) unsubscribes without
  a CSRF token: the token in the URL is the capability.  Unsubscribing deletes the row.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, make_response, render_template, request
from flask.blueprints import BlueprintSetupState
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.config.subscriptions import SubscriptionsConfig, unavailable_reason
from monitor.store.models import Subscriber
from web.admin import csrf
from web.admin.ratelimit import FailureLimiter
from web.context import EXTENSION, db_session, state
from web.outbox import queue_subscriber_confirmation

bp = Blueprint("subscribe", __name__)

LIMITER_KEY = "genstatus.subscribe_limiter"
HOUR = 3600.0
MAX_EMAIL = 254  # RFC 5321's path limit, less the brackets
MAX_LOCAL_PART = 64
MAX_URL = 500  # the column's width
TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL = re.compile(rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+")
ONE_CLICK = "One-Click"
URL_UNSAFE = frozenset('<>"{}|\\^`')  # never unencoded in a URL (RFC 3986)


@bp.record_once
def _configure(setup: BlueprintSetupState) -> None:
    web = setup.app.extensions.get(EXTENSION)
    per_hour = web.config.subscriptions.per_ip_per_hour if web is not None and web.config is not None else 10
    setup.app.extensions.setdefault(LIMITER_KEY, FailureLimiter(max_failures=per_hour, window=HOUR))


@bp.after_request
def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"  # tokens in forms and URLs: never kept by a cache
    response.headers["Referrer-Policy"] = "no-referrer"  # nor sent on in a Referer
    return response


@dataclass
class Form:
    """What the visitor entered, and what is wrong with it."""

    kind: str = "email"
    email: str = ""
    url: str = ""
    scope: str = "all"
    services: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@bp.get("/subscribe")
def subscribe_form() -> Response:
    settings = _settings()
    reason = unavailable_reason(state().site.url, settings)
    return _form_page(Form(), unavailable=reason is not None)


@bp.post("/subscribe")
def subscribe() -> Response:
    settings = _settings()
    if unavailable_reason(state().site.url, settings):
        return _form_page(Form(), unavailable=True, status=503)
    limiter: FailureLimiter = current_app.extensions[LIMITER_KEY]
    client = _client_key()
    wait = limiter.retry_after([client])
    if wait is not None:
        response = _form_page(Form(errors=["Too many subscription requests from your address. Please try again later."]),
                              status=429)
        response.headers["Retry-After"] = str(wait)
        return response
    limiter.failed([client])  # every request counts, valid or not
    if not csrf.valid(request.form.get(csrf.FIELD)):
        return _form_page(Form(errors=["The form has expired or did not come from this site. Please try again."]),
                          status=400)
    db = db_session()
    form = _read_form(settings, [s.id for s in state().services(db)])
    if form.errors:
        return _form_page(form, status=400)
    address = form.email if form.kind == "email" else form.url
    services = sorted(set(form.services)) if form.scope == "some" else None
    subscriber = _subscriber(db, form.kind, address, services)
    if subscriber.confirmed_at is None:
        queue_subscriber_confirmation(db, subscriber, resend_after=settings.resend_confirmation_after)
    db.commit()
    return _page("subscribe_done.html", kind=form.kind)


@bp.get("/subscribe/confirm/<token>")
def confirm_page(token: str) -> Response:
    if not _settings().enabled:
        abort(404)
    subscriber = _by_token(db_session(), token)
    if subscriber is None or _expired(subscriber):
        return _page("confirm.html", state="unknown", status=404)
    done = subscriber.confirmed_at is not None
    return _page("confirm.html", state="done" if done else "ask", token=token, scope=_scope(subscriber))


@bp.post("/subscribe/confirm/<token>")
def confirm(token: str) -> Response:
    if not _settings().enabled:
        abort(404)
    db = db_session()
    subscriber = _by_token(db, token)
    if subscriber is None or _expired(subscriber):
        return _page("confirm.html", state="unknown", status=404)
    if not csrf.valid(request.form.get(csrf.FIELD)):
        return _page("confirm.html", state="ask", token=token, scope=_scope(subscriber), expired_form=True, status=400)
    if subscriber.confirmed_at is None:
        subscriber.confirmed_at = datetime.now(UTC)
        db.commit()
    return _page("confirm.html", state="done", scope=_scope(subscriber))


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> Response:
    subscriber = _by_token(db_session(), token)
    if subscriber is None:
        return _page("unsubscribe.html", state="unknown", status=404)
    return _page("unsubscribe.html", state="ask", token=token, kind=subscriber.kind)


@bp.post("/unsubscribe/<token>")
def unsubscribe(token: str) -> Response:
    one_click = request.form.get("List-Unsubscribe") == ONE_CLICK
    db = db_session()
    subscriber = _by_token(db, token)
    if not one_click and not csrf.valid(request.form.get(csrf.FIELD)):
        if subscriber is None:
            return _page("unsubscribe.html", state="unknown", status=404)
        return _page("unsubscribe.html", state="ask", token=token, kind=subscriber.kind, expired_form=True, status=400)
    if subscriber is not None:
        db.delete(subscriber)
        db.commit()
    if one_click:  # a mail client, not a person: a short plain answer, the same whether it was still subscribed
        return Response("Unsubscribed.\n", mimetype="text/plain")
    return _page("unsubscribe.html", state="done")


# -- helpers --------------------------------------------------------------------------


def _settings() -> SubscriptionsConfig:
    config = state().config
    return config.subscriptions if config is not None else SubscriptionsConfig()


def _page(template: str, *, status: int = 200, **values: object) -> Response:
    return make_response(render_template(template, csrf_token=csrf.token(), **values), status)


def _form_page(form: Form, *, unavailable: bool = False, status: int = 200) -> Response:
    settings = _settings()
    if not settings.enabled:
        abort(404)
    groups: dict[str, list] = {}
    for service in state().services(db_session()):
        groups.setdefault(service.group, []).append(service)
    return _page("subscribe.html", form=form, groups=list(groups.items()), unavailable=unavailable,
                 email=settings.email_channel is not None, webhooks=settings.webhooks, status=status)


def _read_form(settings: SubscriptionsConfig, service_ids: list[str]) -> Form:
    values = request.form
    form = Form(kind=values.get("kind", "email"), email=values.get("email", "").strip(), url=values.get("url", "").strip(),
                scope=values.get("scope", "all"), services=values.getlist("service"))
    offered = (["email"] if settings.email_channel else []) + (["webhook"] if settings.webhooks else [])
    if form.kind not in offered:
        form.errors.append("Choose how to be notified.")
    elif form.kind == "email":
        form.email = form.email.lower()
        problem = email_problem(form.email)
        if problem:
            form.errors.append(problem)
    else:
        problem = webhook_problem(form.url, allow_private=settings.allow_private_webhooks)
        if problem:
            form.errors.append(problem)
    if form.scope not in ("all", "some"):
        form.errors.append("Choose all services or some.")
    elif form.scope == "some":
        if not form.services or any(s not in service_ids for s in form.services):
            form.errors.append("Choose at least one of the services listed.")
    return form


def email_problem(address: str) -> str | None:
    """Why ``address`` is not an email address we send to (syntax and length only), or None."""
    if not address:
        return "Enter your email address."
    if len(address) > MAX_EMAIL or not EMAIL.fullmatch(address) or len(address.split("@", 1)[0]) > MAX_LOCAL_PART:
        return "Enter a valid email address, such as name@example.com."
    local = address.split("@", 1)[0]
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return "Enter a valid email address, such as name@example.com."
    return None


def webhook_problem(url: str, *, allow_private: bool) -> str | None:
    """Why ``url`` cannot be a webhook, or None.  Names resolving to private addresses are refused when sending."""
    if not url:
        return "Enter the webhook URL."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError:
        return "Enter a valid http or https URL."
    if (len(url) > MAX_URL or parts.scheme not in ("http", "https") or not parts.hostname
            or any(c.isspace() or ord(c) < 32 or c in URL_UNSAFE for c in url)):
        return f"Enter a valid http or https URL (at most {MAX_URL} characters)."
    if not allow_private:
        try:
            address = ipaddress.ip_address(parts.hostname)
        except ValueError:
            return None  # a name: checked against what it resolves to at each send
        if not address.is_global:
            return "The webhook URL must be reachable on the public internet."
    return None


def _subscriber(db: Session, kind: str, address: str, services: list[str] | None) -> Subscriber:
    """The subscriber row of this address: the existing one (its choice of services updated until it is
    confirmed; a confirmed subscriber changes them by unsubscribing and subscribing again), else a new one."""
    now = datetime.now(UTC)
    existing = db.scalar(select(Subscriber).where(Subscriber.kind == kind, Subscriber.address == address))
    if existing is None:
        row = Subscriber(kind=kind, address=address, services=services, token=secrets.token_urlsafe(32), created_at=now)
        try:
            with db.begin_nested():
                db.add(row)
            return row
        except IntegrityError:  # the same address, subscribed at the same moment by another request
            existing = db.scalar(select(Subscriber).where(Subscriber.kind == kind, Subscriber.address == address))
            if existing is None:
                raise
    if existing.confirmed_at is None:
        existing.services = services
        existing.created_at = now  # the confirmation link lives ``confirm_within`` from the latest request
    return existing


def _by_token(db: Session, token: str) -> Subscriber | None:
    if not TOKEN.fullmatch(token):
        return None
    return db.scalar(select(Subscriber).where(Subscriber.token == token))


def _expired(subscriber: Subscriber) -> bool:
    """An unconfirmed subscription older than ``confirm_within`` (the dispatcher deletes it soon)."""
    return (subscriber.confirmed_at is None
            and datetime.now(UTC) - subscriber.created_at > _settings().confirm_within)


def _scope(subscriber: Subscriber) -> str:
    if not subscriber.services:
        return "all services"
    names = {s.id: s.name for s in state().services(db_session())}
    return ", ".join(names.get(sid, sid) for sid in subscriber.services)


def _client_key() -> str:
    """The client's address; IPv6 by its /64 (one host often holds a whole /64)."""
    remote = request.remote_addr or "unknown"
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return f"subscribe:{remote}"
    if address.version == 6:
        return f"subscribe:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    return f"subscribe:{address}"
