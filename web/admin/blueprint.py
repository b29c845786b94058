"""The admin blueprints (``/admin`` and ``/admin/api``) and the checks every request to them passes.

Every page needs a signed-in user (else a redirect to the sign-in page); every request that
changes something needs the session's CSRF token, except API requests authenticated with an API
token.  Every answer carries ``Cache-Control: no-store``.  Writes touch only the admin side's rows.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, g, redirect, request, url_for
from flask.blueprints import BlueprintSetupState
from werkzeug.wrappers import Response as BaseResponse

from web.admin import auth, csrf
from web.context import EXTENSION, db_session
from web.richtext import render as render_markdown

bp = Blueprint("admin", __name__, url_prefix="/admin")
api_bp = Blueprint("api", __name__, url_prefix="/api")
API_BLUEPRINT = "admin.api"
#: pages anyone may open: the sign-in form (CSRF still applies to its POST)
OPEN_ENDPOINTS = frozenset({"admin.login"})
#: the largest request body the admin side reads (a postmortem is at most 100,000 characters)
MAX_REQUEST_BYTES = 1024 * 1024


@bp.record_once
def _configure(setup: BlueprintSetupState) -> None:
    web = setup.app.extensions.get(EXTENSION)
    auth.configure(setup.app, web.site.url if web is not None else None)


@bp.before_request
def _guard() -> BaseResponse | None:
    request.max_content_length = MAX_REQUEST_BYTES
    db = db_session()
    if request.blueprint == API_BLUEPRINT:
        _guard_api()
        return None
    if request.endpoint in OPEN_ENDPOINTS:
        csrf.protect()
        return None
    user = auth.session_user(db)
    if user is None:
        target = request.full_path.rstrip("?") if request.method in csrf.SAFE_METHODS else None
        return redirect(url_for("admin.login", next=target))
    g.admin_user = user
    csrf.protect()
    return None


def _guard_api() -> None:
    db = db_session()
    token = auth.bearer_token()
    if token is not None:  # an API token: no cookie, so no CSRF to fear
        user = auth.token_user(db, token)
        if user is None:
            abort(401, "The API token is missing, malformed, unknown or revoked.")
        db.commit()  # its last use
        g.admin_user = user
        return
    user = auth.session_user(db)
    if user is None:
        abort(401, "Sign in at /admin/login or send 'Authorization: Bearer <API token>'.")
    g.admin_user = user
    csrf.protect()


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_template_filter("markdown")
def _markdown(text: str | None):
    """Markdown written on the admin side as sanitised HTML (``web.richtext``); for every page."""
    return render_markdown(text)


@bp.context_processor
def _forms() -> dict:
    return {"csrf_token": csrf.token, "admin_user": auth.current_user()}


bp.register_blueprint(api_bp)
