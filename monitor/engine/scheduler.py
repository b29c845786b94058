"""Schedules canary runs and health checks with APScheduler and hands results to the store.

One job per (service, canary) at the service interval with jitter, ``max_instances=1`` and
coalescing; a per-service semaphore caps concurrent runs against one provider; the monthly
budget stretches the interval when the configured cadence would cost more than allowed.

A scheduled canary that fails is run again after ``detection.confirm_delay`` (a confirmation
run), so an outage is confirmed in seconds instead of a whole interval.  The first failure
of a streak gets a burst of up to ``detection.max_confirmations`` runs, further apart each
time (``confirmation_delays``), for as long as they keep failing: a noisy service needs more
evidence before it opens an incident, and the burst gathers it in about two minutes.  A
failure that continues a streak gets one confirmation; a 429 ends a burst (the provider asks
us to slow down); no confirmation is due after the canary's next scheduled run.
Confirmation runs are paid from a reserve of the budget (``CONFIRM_RESERVE``): the
scheduled cadence is planned against the rest, and confirmations stop for the month once
the reserve is spent.

A run due while the job's previous run is still going is skipped (``max_instances=1``): each
skip is counted per service and reported as scheduler lag (``monitor.engine.skips``) instead
of APScheduler's warning per occurrence.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
    JobSubmissionEvent,
    SchedulerEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config import CanaryConfig, Config, ServiceConfig
from monitor.config.durations import format_duration
from monitor.engine.runner import ProbeRunner
from monitor.engine.skips import SkipLedger
from monitor.enums import HEALTHY_OUTCOMES, OPERATOR_OUTCOMES, Outcome, ProbeKind
from monitor.store.record import ResultRecord

log = logging.getLogger("genstatus.scheduler")


class _NoSkipWarnings(logging.Filter):
    """Drops APScheduler's warning per skipped run: ``SkipLedger`` counts them and reports the lag."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in str(record.msg)


#: APScheduler's own logger for the probe scheduler (a child of ``apscheduler``: same levels and handlers)
_apscheduler_log = logging.getLogger("apscheduler.scheduler.probes")
_apscheduler_log.addFilter(_NoSkipWarnings())

BUDGET_MONTH = timedelta(days=30)
CONFIRM_RESERVE = 0.1  # share of monthly_budget kept for confirmation runs
JITTER_FRACTION = 0.1
MAX_JITTER_S = 30.0
BURST_STEPS = (1, 1, 1, 1, 2, 2, 3, 3, 4, 4)  # gaps of a confirmation burst, in confirm_delays


def confirmation_delays(confirm_delay: timedelta, max_confirmations: int, streak_start: bool) -> list[timedelta]:
    """The gaps before each confirmation run after a failed scheduled canary (each waits for the one before to fail)."""
    steps = BURST_STEPS if streak_start else BURST_STEPS[:1]
    return [confirm_delay * step for step in steps[:max_confirmations]]


def keeps_confirming(outcome: Outcome) -> bool:
    """After a failed confirmation, is another one worth it?  Not after a 429 or a credentials problem."""
    return outcome not in HEALTHY_OUTCOMES and outcome is not Outcome.RATE_LIMITED and outcome not in OPERATOR_OUTCOMES


@dataclass(frozen=True)
class Plan:
    """The cadence the scheduler will actually use for one service."""

    service_id: str
    configured: timedelta
    effective: timedelta
    monthly_spend: float  # USD planned at the effective interval, per region
    reason: str | None = None


def plan_interval(service: ServiceConfig) -> Plan:
    """Stretch the interval so that the planned monthly spend never exceeds ``monthly_budget``.

    Spend = cost_per_image x canaries x runs per 30 days.  Jitter only delays runs, so it never
    raises the spend above plan.
    """
    configured = service.interval
    per_round = service.cost_per_image * len(service.canaries)
    spend = per_round * (BUDGET_MONTH / configured)
    budget = service.monthly_budget * (1 - CONFIRM_RESERVE) if service.monthly_budget else None
    if not budget or per_round == 0 or spend <= budget:
        return Plan(service.id, configured, configured, round(spend, 4))
    stretched = timedelta(seconds=int(BUDGET_MONTH.total_seconds() * per_round / budget) + 1)
    new_spend = per_round * (BUDGET_MONTH / stretched)
    reason = (
        f"service {service.id}: every {format_duration(configured)} would cost ${spend:.2f}/month, over the "
        f"${service.monthly_budget:g} budget less {CONFIRM_RESERVE:.0%} kept for confirmation runs; probing every "
        f"{format_duration(stretched)} instead (${new_spend:.2f}/month)"
    )
    return Plan(service.id, configured, stretched, round(new_spend, 4), reason)


class ProbeScheduler:
    def __init__(
        self,
        config: Config,
        runner: ProbeRunner,
        on_result: Callable[[ResultRecord], None],
        *,
        jitter_fraction: float = JITTER_FRACTION,
    ) -> None:
        self.config = config
        self.runner = runner
        self.on_result = on_result
        self.jitter_fraction = jitter_fraction
        self.plans = {service.id: plan_interval(service) for service in config.services}
        self._limits = {service.id: threading.BoundedSemaphore(service.concurrency) for service in config.services}
        workers = max(4, sum(service.concurrency for service in config.services))
        self._executor = ThreadPoolExecutor(max_workers=workers)
        self._scheduler = BackgroundScheduler(
            executors={"default": self._executor},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
            logger=_apscheduler_log,
        )
        self._stopping = threading.Event()
        self._discarding = threading.Event()  # stopping without keeping the results of runs still in flight
        self.skips = SkipLedger()
        self._job_services: dict[str, tuple[str, float]] = {}  # job id -> (service id, interval s)
        self._busy_since: dict[str, datetime] = {}  # job id -> when its run in flight was due
        self._busy_lock = threading.Lock()
        self._scheduler.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED)
        self._scheduler.add_listener(self._on_finished, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        self._scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        self.confirm_delay = config.detection.confirm_delay
        self.max_confirmations = config.detection.max_confirmations
        self._failing: dict[tuple[str, str], bool] = {}  # (service, canary) -> its last run failed
        self._confirm_spend: dict[tuple[str, str], float] = {}  # (service, "YYYY-MM") -> USD
        self._reserve_spent_logged: set[tuple[str, str]] = set()

    def start(self) -> None:
        for plan in self.plans.values():
            if plan.reason:
                log.warning("%s", plan.reason)
        now = datetime.now(UTC)
        jobs = [(service, canary) for service in self.config.services for canary in self.config.canaries_of(service)]
        for index, (service, canary) in enumerate(jobs):
            interval = self.plans[service.id].effective
            # spread the first round over a few seconds instead of firing every job at once
            first = now + timedelta(seconds=min(index * 0.5, interval.total_seconds()))
            job_id = f"{service.id}:{canary.id}"
            self._job_services[job_id] = (service.id, interval.total_seconds())
            self._scheduler.add_job(
                self._run_canary,
                IntervalTrigger(seconds=interval.total_seconds(), jitter=self._jitter(interval), timezone=UTC),
                args=(service, canary),
                id=job_id,
                name=f"canary {canary.id} on {service.id}",
                next_run_time=first,
            )
        for service in self.config.services:
            if service.health_interval:
                self._job_services[f"{service.id}:health"] = (service.id, service.health_interval.total_seconds())
                self._scheduler.add_job(
                    self._run_health,
                    IntervalTrigger(seconds=service.health_interval.total_seconds(), timezone=UTC),
                    args=(service,),
                    id=f"{service.id}:health",
                    name=f"health check of {service.id}",
                    next_run_time=now + timedelta(seconds=1),
                )
        self._scheduler.start()
        log.info("scheduler started: %d canary jobs, region %s", len(jobs), self.runner.region)

    @property
    def skipped_runs(self) -> dict[str, int]:
        """Scheduled runs skipped per service since start (a run due while the previous one was still going)."""
        return self.skips.counts()

    def _on_submitted(self, event: SchedulerEvent) -> None:
        if isinstance(event, JobSubmissionEvent) and event.job_id in self._job_services and event.scheduled_run_times:
            with self._busy_lock:
                self._busy_since[event.job_id] = min(event.scheduled_run_times)

    def _on_finished(self, event: SchedulerEvent) -> None:
        if isinstance(event, JobExecutionEvent):
            with self._busy_lock:
                self._busy_since.pop(event.job_id, None)

    def _on_skipped(self, event: SchedulerEvent) -> None:
        job = self._job_services.get(getattr(event, "job_id", ""))
        if job is None:
            return  # a confirmation run (a one-off) or a job of no service
        service_id, interval_s = job
        with self._busy_lock:
            since = self._busy_since.get(event.job_id)
        due = getattr(event, "scheduled_run_times", None) or [getattr(event, "scheduled_run_time", None)]
        now = max((t for t in due if t is not None), default=datetime.now(UTC))
        lag = (now - since).total_seconds() if since is not None else interval_s
        self.skips.skipped(service_id, max(lag, 0.0), interval_s)

    def _jitter(self, interval: timedelta) -> float:
        return min(interval.total_seconds() * self.jitter_fraction, MAX_JITTER_S)

    def _run_canary(self, service: ServiceConfig, canary: CanaryConfig) -> None:
        self._run(service, canary, ProbeKind.CANARY)

    def _run_health(self, service: ServiceConfig) -> None:
        self._run(service, None, ProbeKind.HEALTH)

    def _run_confirmation(self, service: ServiceConfig, canary: CanaryConfig, gaps: list[timedelta]) -> None:
        result = self._run(service, canary, ProbeKind.CONFIRMATION)
        if result is not None and gaps and keeps_confirming(result.outcome):
            self._confirm(service, canary, gaps)

    def _run(self, service: ServiceConfig, canary: CanaryConfig | None, kind: ProbeKind) -> ResultRecord | None:
        if self._stopping.is_set():
            return None
        with self._limits[service.id]:
            if self._stopping.is_set():  # waited for the service's slot while the scheduler stopped
                return None
            result = self.runner.run(service, canary, kind)
        if self._discarding.is_set():  # finished during a shutdown that keeps nothing: it may measure the shutdown
            log.debug("%s %s: result dropped, the scheduler is stopping", kind, service.id)
            return None
        try:
            self.on_result(result)
        except Exception:  # noqa: BLE001 - one failed hand-off must not stop the schedule
            log.exception("could not hand over the result of %s", service.id)
        log.info("%s %s %s: %s in %.0f ms", kind, service.id, canary.id if canary else "-", result.outcome,
                 result.latency_ms.get("total") or 0)
        if canary is not None and kind is not ProbeKind.HEALTH:
            key = (service.id, canary.id)
            was_failing = self._failing.get(key, False)
            self._failing[key] = result.outcome not in HEALTHY_OUTCOMES
            if kind is ProbeKind.CANARY and result.outcome not in HEALTHY_OUTCOMES:
                gaps = confirmation_delays(self.confirm_delay, self.max_confirmations, streak_start=not was_failing)
                if gaps:
                    self._confirm(service, canary, gaps)
        return result

    def _confirm(self, service: ServiceConfig, canary: CanaryConfig, gaps: list[timedelta]) -> None:
        """Schedule the next confirmation run of a failed canary, if the budget's reserve allows and it comes
        before the canary's next scheduled run."""
        if self._stopping.is_set():
            return
        run_date = datetime.now(UTC) + gaps[0]
        scheduled = self._scheduler.get_job(f"{service.id}:{canary.id}")
        if scheduled is not None and scheduled.next_run_time is not None and run_date >= scheduled.next_run_time:
            return  # the scheduled run is sooner and carries on the evidence
        month = datetime.now(UTC).strftime("%Y-%m")
        key = (service.id, month)
        if service.monthly_budget:
            spent = self._confirm_spend.get(key, 0.0)
            if spent + service.cost_per_image > service.monthly_budget * CONFIRM_RESERVE:
                if key not in self._reserve_spent_logged:
                    self._reserve_spent_logged.add(key)
                    log.warning("service %s: the confirmation reserve of this month's budget is spent; "
                                "failures are confirmed by the next scheduled run instead", service.id)
                return
            self._confirm_spend[key] = spent + service.cost_per_image
        try:
            self._scheduler.add_job(
                self._run_confirmation,
                "date",
                run_date=run_date,
                args=(service, canary, gaps[1:]),
                id=f"{service.id}:{canary.id}:confirm",
                name=f"confirmation of {canary.id} on {service.id}",
                replace_existing=True,
            )
        except Exception:  # noqa: BLE001 - shutting down, or the scheduler is gone: nothing to confirm
            log.debug("confirmation of %s not scheduled", service.id, exc_info=True)

    def shutdown(self, wait: bool = True, *, keep_in_flight: bool = True) -> None:
        """Stop scheduling; with ``wait`` also wait for the runs in flight.

        Those runs' results are handed over as usual, unless ``keep_in_flight`` is False: then
        nothing that finishes from now on is kept (``genstatus demo`` stops its emulator right after,
        and a run cut short by that measures the shutdown, not the service).  Can be called again,
        e.g. first without waiting and keeping nothing, then with ``wait`` to join the workers.
        """
        if not keep_in_flight:
            self._discarding.set()
        self._stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
            self.skips.flush()
        if wait:
            self._executor.shutdown(wait=True)
