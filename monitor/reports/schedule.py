"""When the weekly report goes out: an APScheduler cron job at ``reports.weekly.at`` in the site timezone.

``genstatus run`` starts a ``WeeklyReportSchedule`` beside the probe scheduler (``MonitorRuntime``).  At
each firing it sends the last completed ISO week (``send_week``: stored once, claimed, sent, recorded),
so every ``run`` process may carry the job: the claim lets one of them send.  Besides the cron job:

* catch-up: a process that starts within ``CATCH_UP`` after a firing it missed (it was down or
  restarting at 09:00) sends that week then, unless it went out already;
* retries: when no channel took the report, or another process holds a claim (it may have died mid-send),
  the job runs again after ``RETRY_DELAY`` or when the claim's lease ends, at most ``MAX_ATTEMPTS``
  times per week and never past the next firing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Engine

from monitor.config import Config
from monitor.reports import archive
from monitor.reports.delivery import SendResult, send_week
from monitor.reports.weeks import Week, last_completed_week, local_midnight, week_of

log = logging.getLogger("genstatus.reports")

JOB_ID = "weekly-report"
RETRY_JOB_ID = "weekly-report-retry"
CATCH_UP = timedelta(hours=24)
RETRY_DELAY = timedelta(minutes=15)
MAX_ATTEMPTS = 5
EARLY = timedelta(minutes=1)  # a run this close before a firing belongs to it
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_at(at: str) -> tuple[str, int, int]:
    """``"mon 09:00"`` -> ``("mon", 9, 0)`` (the config has checked the form)."""
    day, _, clock = at.strip().lower().partition(" ")
    hour, _, minute = clock.partition(":")
    return day, int(hour), int(minute)


def cron_trigger(config: Config) -> CronTrigger:
    weekly = config.reports.weekly
    day, hour, minute = parse_at(weekly.at if weekly else "mon 09:00")
    return CronTrigger(day_of_week=day, hour=hour, minute=minute, timezone=ZoneInfo(config.site.timezone))


def firing_of(now: datetime, config: Config) -> datetime:
    """This ISO week's firing time (UTC), which sends the previous week; it may still lie ahead of ``now``."""
    weekly = config.reports.weekly
    day, hour, minute = parse_at(weekly.at if weekly else "mon 09:00")
    monday = week_of(now, config.site.timezone).monday
    local_day = monday + timedelta(days=DAYS.index(day))
    midnight = local_midnight(local_day, config.site.timezone).astimezone(ZoneInfo(config.site.timezone))
    return midnight.replace(hour=hour, minute=minute).astimezone(UTC)


def latest_firing(now: datetime, config: Config) -> datetime:
    """The newest firing at or before ``now`` (UTC)."""
    fired = firing_of(now, config)
    return fired if fired <= now else firing_of(now - timedelta(days=7), config)


def week_due(now: datetime, config: Config) -> Week:
    """The week the newest firing sends: the last one completed at that firing (a job that starts a
    moment early, or a retry after midnight, still sends the firing's week)."""
    return last_completed_week(latest_firing(now + EARLY, config), config.site.timezone)


class WeeklyReportSchedule:
    """The weekly report job and its retries, on a scheduler of its own (``start``/``stop``) or one given
    to ``register``."""

    def __init__(
        self,
        engine: Engine,
        config: Config,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        send: Callable[..., SendResult] = send_week,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.send = send
        self.scheduler: BaseScheduler | None = None
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        scheduler = BackgroundScheduler(timezone=ZoneInfo(self.config.site.timezone),
                                        job_defaults={"coalesce": True, "max_instances": 1})
        self.register(scheduler)
        scheduler.start()
        job = scheduler.get_job(JOB_ID)
        log.info("weekly report: next at %s", job.next_run_time if job else "never")

    def stop(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)

    def register(self, scheduler: BaseScheduler) -> None:
        """Add the cron job, and a run now when a firing was missed within ``CATCH_UP``."""
        self.scheduler = scheduler
        scheduler.add_job(self.run, cron_trigger(self.config), id=JOB_ID, name="weekly reliability report",
                          replace_existing=True, misfire_grace_time=int(CATCH_UP.total_seconds()), coalesce=True,
                          max_instances=1)
        now = self.clock()
        if self.catch_up_due(now):
            log.info("weekly report of %s: its firing at %s was missed; sending it now",
                     week_due(now, self.config), latest_firing(now, self.config))
            self._later(now)

    def catch_up_due(self, now: datetime) -> bool:
        if now >= latest_firing(now, self.config) + CATCH_UP:
            return False
        stored = archive.load(self.engine, str(week_due(now, self.config)))
        return stored is None or stored.sent_at is None

    # -- the job ---------------------------------------------------------------------------------

    def run(self) -> SendResult | None:
        """Send the last completed week; schedule a retry when it did not go out and may yet."""
        now = self.clock()
        week = week_due(now, self.config)
        key = str(week)
        with self._lock:
            self._attempts[key] = attempt = self._attempts.get(key, 0) + 1
        try:
            result = self.send(self.engine, self.config, week, now=now, clock=self.clock)
        except Exception:  # noqa: BLE001 - a database or rendering failure: log it, try again later
            log.exception("weekly report %s failed (attempt %d)", key, attempt)
            self._retry(week, now, now + RETRY_DELAY, attempt)
            return None
        if result.status in ("sent", "already_sent", "no_channels"):
            if result.status == "sent":
                log.info("weekly report %s sent through %s", key, ", ".join(result.receipts))
            return result
        if result.status == "partial":  # some channels took it: not again (they would get it twice)
            log.warning("weekly report %s: not sent through %s", key, "; ".join(f"{c} ({e})" for c, e in result.errors.items()))
            return result
        if result.status == "claimed" and result.retry_at:
            retry_at = result.retry_at + timedelta(seconds=1)  # the other sender's lease ends: then it is ours
        else:
            retry_at = now + RETRY_DELAY
        self._retry(week, now, retry_at, attempt)
        return result

    def _retry(self, week: Week, now: datetime, at: datetime, attempt: int) -> None:
        next_firing = firing_of(latest_firing(now + EARLY, self.config) + timedelta(days=7), self.config)
        if attempt >= MAX_ATTEMPTS or at >= next_firing:
            log.error("weekly report %s: giving up after %d attempt(s); send it with 'genstatus report --week %s "
                      "--send'", week, attempt, week)
            return
        log.info("weekly report %s: trying again at %s", week, at.isoformat(timespec="seconds"))
        self._later(at)

    def _later(self, at: datetime) -> None:
        if self.scheduler is None:
            return
        self.scheduler.add_job(self.run, DateTrigger(run_date=at), id=RETRY_JOB_ID, name="weekly report retry",
                               replace_existing=True, misfire_grace_time=int(CATCH_UP.total_seconds()))
