"""Who is asking: a signed-in admin (Flask's signed session cookie) or an API token.

A session ends ``SESSION_LIFETIME`` after sign-in whatever happens in between (absolute, not
sliding), when its user is removed, and when their password changes (the session carries a
fingerprint of the stored hash).  Sign-in failures are counted per client address and per user
name (``web.admin.ratelimit``); an unknown name and a wrong password get the same answer, after
the same amount of hashing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from datetime import UTC, datetime, timedelta

from flask import g, request, session
from flask.sansio.app import App
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store.models import User
from web.admin import csrf, tokens
from web.admin.passwords import DUMMY_HASH, verify_password
from web.admin.ratelimit import FailureLimiter

log = logging.getLogger("genstatus.web.admin")

SESSION_LIFETIME = timedelta(hours=12)
SECRET_ENV = "GENSTATUS_SECRET_KEY"
SECURE_ENV = "GENSTATUS_SECURE_COOKIES"  # 1/0: force the Secure cookie flag on or off
MIN_SECRET_LENGTH = 32
LIMITER_KEY = "genstatus.admin.limiter"

_process_key: bytes | None = None


def configure(app: App, site_url: str | None) -> None:
    """The app's session settings: secret key, cookie flags and lifetime; a sign-in limiter."""
    secret = os.environ.get(SECRET_ENV, "")
    if secret:
        if len(secret) < MIN_SECRET_LENGTH:
            log.warning("%s is shorter than %d characters: use e.g. 'python -c \"import secrets; "
                        "print(secrets.token_urlsafe(48))\"'", SECRET_ENV, MIN_SECRET_LENGTH)
        app.secret_key = secret
    elif not app.secret_key:
        app.secret_key = _random_process_key()
    forced = os.environ.get(SECURE_ENV)
    secure = forced.strip().lower() in ("1", "true", "yes") if forced else bool(site_url and site_url.lower().startswith("https://"))
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    app.extensions.setdefault(LIMITER_KEY, FailureLimiter())


def _random_process_key() -> bytes:
    global _process_key
    if _process_key is None:
        _process_key = secrets.token_bytes(32)
        log.warning("%s is not set: admin sessions are signed with a random key and end when this process "
                    "restarts (set it to a long random string, the same in every web process)", SECRET_ENV)
    return _process_key


def limiter(app: App) -> FailureLimiter:
    return app.extensions[LIMITER_KEY]


def fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()[:16]


def authenticate(db: Session, name: str, password: str) -> User | None:
    """The user when name and password match; None otherwise (after the same work either way)."""
    user = db.scalar(select(User).where(User.name == name)) if name else None
    matches = verify_password(password, user.password_hash if user is not None else DUMMY_HASH)
    return user if user is not None and matches else None


def start_session(user: User, now: datetime) -> None:
    session.clear()
    session.permanent = True
    session["uid"] = user.id
    session["pwf"] = fingerprint(user.password_hash)
    session["login_at"] = time.time()
    csrf.rotate()
    user.last_login_at = now


def end_session() -> None:
    session.clear()


def session_user(db: Session) -> User | None:
    """The signed-in user of this request's session, or None (an expired or stale session is cleared)."""
    uid, login_at = session.get("uid"), session.get("login_at")
    if uid is None:
        return None
    if not isinstance(uid, int) or not isinstance(login_at, int | float) or \
            not 0 <= time.time() - login_at < SESSION_LIFETIME.total_seconds():
        session.clear()
        return None
    user = db.get(User, uid)
    if user is None or session.get("pwf") != fingerprint(user.password_hash):
        session.clear()
        return None
    return user


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header ("" for a malformed one); None without the header."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def token_user(db: Session, token: str) -> User | None:
    return tokens.authenticate(db, token, datetime.now(UTC)) if token else None


def current_user() -> User | None:
    """Set by the admin blueprint's request hook for every admin request."""
    return g.get("admin_user")
