"""The ``weekly_reports`` table: each completed week's report stored once, and a guarded claim to send it.

* ``generate`` stores a week the first time it is asked for and returns the stored row every time
  after (two processes racing: the database's primary key keeps one, the other reads it back).  The
  stored copy is what the status site shows: its HTML carries the charts as ``data:`` URIs and, like
  the Markdown, leaves out operator incidents (``/reports`` may be public).  ``data`` is the
  documented JSON (``monitor.reports.schema``), from which every other rendering is made again.
* ``claim`` is one guarded ``UPDATE``: it succeeds for one caller only while the week is unsent and
  unclaimed or its claim is older than the lease (the claimer died mid-send).  ``finish`` records the
  outcome only for the claim's owner, so a claimer that outlived its lease cannot overwrite the
  next one's result.  A restart during the send window, or two coordinators, therefore send a week once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.reports.charts import render_charts
from monitor.reports.figures import build_report
from monitor.reports.model import WeeklyReportData
from monitor.reports.render_html import render_html
from monitor.reports.render_md import render_md
from monitor.reports.schema import from_json, to_json
from monitor.reports.weeks import Week, parse_week
from monitor.store.models import WeeklyReport

log = logging.getLogger("genstatus.reports")

#: how long a claim holds before another sender may take the week over (a send takes seconds)
LEASE = timedelta(minutes=15)
#: the stored page is served at /reports/<week>: its way back to the list, relative so a path prefix works
SITE_LIST = "../reports"


class WeekNotOver(ValueError):
    """Only weeks that have ended are archived and sent."""


@dataclass(frozen=True)
class Stored:
    """A stored week (detached from any session)."""

    week: str
    generated_at: datetime
    data: dict
    html: str
    markdown: str
    claimed_by: str | None
    claimed_at: datetime | None
    sent_at: datetime | None
    send_error: str | None

    def report(self) -> WeeklyReportData:
        return from_json(self.data)


def render_for_archive(data: WeeklyReportData) -> tuple[str, str]:
    """(HTML, Markdown) as stored and shown on the site: charts inline, no operator incidents."""
    html = render_html(data, render_charts(data), images="inline", internal=False, link=False, back=SITE_LIST)
    return html, render_md(data, internal=False)


def load(engine: Engine, week: str) -> Stored | None:
    with Session(engine) as session:
        row = session.get(WeeklyReport, week)
        return _stored(row) if row is not None else None


def generate(engine: Engine, config: Config, week: Week | str, now: datetime) -> Stored:
    """The stored report of ``week``, computed and stored first if it is not stored yet.

    ``WeekNotOver`` for a week that has not ended at ``now`` (its figures would still change).
    """
    week = parse_week(week) if isinstance(week, str) else week
    key = str(week)
    stored = load(engine, key)
    if stored is not None:
        return stored
    if week.bounds(config.site.timezone)[1] > now:
        raise WeekNotOver(f"week {key} has not ended yet (it ends {week.bounds(config.site.timezone)[1]:%Y-%m-%d %H:%M} UTC)")
    with Session(engine) as session:
        data = build_report(session, config, key, now)
    html, markdown = render_for_archive(data)
    try:
        with Session(engine) as session, session.begin():
            session.add(WeeklyReport(week=key, generated_at=now, data=to_json(data), html=html, markdown=markdown))
        log.info("weekly report %s generated", key)
    except IntegrityError:  # another process stored it first: theirs is the report
        log.info("weekly report %s was stored by another process meanwhile", key)
    stored = load(engine, key)
    assert stored is not None
    return stored


def claim(engine: Engine, week: str, owner: str, now: datetime, lease: timedelta = LEASE) -> bool:
    """Take the right to send ``week``; False when it is sent, or claimed by another within the lease."""
    with Session(engine) as session, session.begin():
        won = session.execute(
            update(WeeklyReport)
            .where(WeeklyReport.week == week, WeeklyReport.sent_at.is_(None),
                   or_(WeeklyReport.claimed_at.is_(None), WeeklyReport.claimed_at < now - lease))
            .values(claimed_by=owner, claimed_at=now)
        ).rowcount  # type: ignore[attr-defined]
    return bool(won)


def finish(engine: Engine, week: str, owner: str, *, sent_at: datetime | None, error: str | None) -> bool:
    """Record the claimed send: ``sent_at`` set = done for good; None = failed, the claim is released so the
    next attempt may claim at once.  False when ``owner`` no longer holds the claim (its lease ran out)."""
    values: dict = {"send_error": error}
    if sent_at is not None:
        values["sent_at"] = sent_at
    else:
        values |= {"claimed_by": None, "claimed_at": None}
    with Session(engine) as session, session.begin():
        done = session.execute(
            update(WeeklyReport).where(WeeklyReport.week == week, WeeklyReport.claimed_by == owner,
                                       WeeklyReport.sent_at.is_(None)).values(**values)
        ).rowcount  # type: ignore[attr-defined]
    return bool(done)


def claim_expires(stored: Stored, lease: timedelta = LEASE) -> datetime | None:
    return stored.claimed_at + lease if stored.claimed_at is not None and stored.sent_at is None else None


def weeks(engine: Engine) -> list[str]:
    """Every stored week, newest first."""
    with Session(engine) as session:
        return list(session.scalars(select(WeeklyReport.week).order_by(WeeklyReport.week.desc())))


def _stored(row: WeeklyReport) -> Stored:
    return Stored(week=row.week, generated_at=row.generated_at, data=row.data, html=row.html, markdown=row.markdown,
                  claimed_by=row.claimed_by, claimed_at=row.claimed_at, sent_at=row.sent_at, send_error=row.send_error)
