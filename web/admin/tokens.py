"""API tokens for the write API: random, shown once, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store.models import ApiToken, User

PREFIX = "gs_"  # recognisable in logs and by secret scanners
MAX_LENGTH = 200


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create(session: Session, user: User, name: str, now: datetime) -> tuple[ApiToken, str]:
    """A new token for ``user``: the row (hash only) and the token itself, to show once."""
    token = new_token()
    row = ApiToken(user_id=user.id, name=name, token_hash=token_hash(token), created_at=now)
    session.add(row)
    session.flush()
    return row, token


def authenticate(session: Session, token: str, now: datetime) -> User | None:
    """The user of a valid, unrevoked token (its ``last_used_at`` set); None otherwise.

    The lookup is by the token's hash: a timing difference could at most reveal a hash prefix, never
    the token.
    """
    if not token.startswith(PREFIX) or len(token) > MAX_LENGTH:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None)))
    if row is None:
        return None
    user = session.get(User, row.user_id)
    if user is not None:
        row.last_used_at = now
    return user
