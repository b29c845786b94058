"""The archived weekly reports: ``/reports`` lists them, ``/reports/<week>`` shows one as it was archived.

The page of a week is the stored HTML document itself (``weekly_reports.html``, written by
``monitor.reports.archive``): the same layout as the email, with inline styles and its charts as
``data:`` URIs, so it needs no chart rendering here and no other request.  It is served with a
Content-Security-Policy of its own that allows those inline styles and ``data:`` images and nothing
else (no scripts, no requests).  The stored copy leaves out operator incidents.

``reports.weekly.public: false`` puts both pages behind the admin sign-in (and ``no-store``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from monitor.store.models import WeeklyReport
from web.admin import auth
from web.context import db_session, state

bp = Blueprint("reports", __name__)

#: the week's document: its own inline styles and data: images, nothing else
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
              "form-action 'none'; frame-ancestors 'none'")
WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True)
class Listed:
    week: str
    first_day: date
    last_day: date
    generated_at: datetime
    sent_at: datetime | None


def public() -> bool:
    config = state().config
    weekly = config.reports.weekly if config is not None else None
    return weekly.public if weekly is not None else True


@bp.before_request
def _guard() -> BaseResponse | None:
    if public():
        return None
    if auth.session_user(db_session()) is None:
        return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
    return None


@bp.get("/reports")
def index() -> str:
    rows = db_session().execute(
        select(WeeklyReport.week, WeeklyReport.generated_at, WeeklyReport.sent_at).order_by(WeeklyReport.week.desc())
    ).all()
    listed = []
    for week, generated_at, sent_at in rows:
        monday = monday_of(week)
        if monday is not None:
            listed.append(Listed(week, monday, monday + timedelta(days=6), generated_at, sent_at))
    return render_template("reports.html", reports=listed, private=not public())


@bp.get("/reports/<week>")
def report(week: str) -> Response:
    if monday_of(week) is None:
        abort(404, "There is no such week.")
    html = db_session().scalar(select(WeeklyReport.html).where(WeeklyReport.week == week))
    if html is None:
        abort(404, f"There is no report for {week}.")
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = REPORT_CSP
    return response


def monday_of(week: str) -> date | None:
    """The Monday of an ISO week "2026-W47"; None for anything else."""
    match = WEEK.match(week)
    if not match:
        return None
    try:
        return date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        return None
