"""CSRF protection for the admin side: one random token per session, in every form and checked on
every request that changes something.

Forms carry it in the hidden field ``csrf_token``; JSON requests signed in by the session cookie
send it in the ``X-CSRF-Token`` header.  Requests authenticated by an API token (``Authorization:
Bearer``) need none: a browser never adds that header on its own.
"""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SESSION_KEY = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def token() -> str:
    """This session's token, made on first use."""
    value = session.get(SESSION_KEY)
    if not isinstance(value, str) or not value:
        value = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return value


def rotate() -> str:
    """A fresh token (at sign-in: nothing handed out before it stays valid)."""
    session[SESSION_KEY] = secrets.token_urlsafe(32)
    return session[SESSION_KEY]


def valid(sent: str | None) -> bool:
    expected = session.get(SESSION_KEY)
    if not isinstance(expected, str) or not expected or not sent:
        return False
    return hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode("utf-8"))


def protect() -> None:
    """Refuse (403) a state-changing request without the session's token."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(HEADER) or request.form.get(FIELD)
    if not valid(sent):
        abort(403, "The form has expired or did not come from this site (missing or wrong CSRF token). "
                   "Reload the page and try again.")
