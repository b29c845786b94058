"""SLO burn-rate alerts (Google SRE workbook, "Alerting on SLOs"), per service.

Burn rate = error rate / (1 - SLO).  An alert fires when both windows of a pair burn at
least the pair's factor: 1 h and 5 m at 14.4x and 6 h and 30 m at 6x page; 3 d and 6 h at
1x opens a ticket.  With a canary every few minutes one failure is a huge burn over 5
minutes, so the long window must also hold a minimum number of results and of failures.

Short windows (up to an hour) are counted from the raw results, longer ones from the hourly
rollups (whole hours: the oldest hour may reach up to an hour past the window).  Alerts go
to the alert outbox as ``slo_burn`` events on the service; they never open public incidents,
and one burning tier alerts once per long window, not on every check.

That "once" is a check-then-insert: the coordinator runs it under its lock (``monitor.engine.leader``)
in its own transaction, so two coordinators never both pass the check.  As a backstop the row carries
a unique ``dedupe_key`` (service, tier and the long window's fixed bucket of time): any earlier alert in
the same bucket is also inside the sliding window, so the key never refuses an alert the check allows,
and two racing inserts in one bucket cannot both commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.config.durations import format_duration
from monitor.enums import DOWN_OUTCOMES, OPERATOR_OUTCOMES, ProbeKind
from monitor.store.models import AlertOutbox, ProbeResultRow, rollup_hourly

RAW_LIMIT = timedelta(hours=1)


@dataclass(frozen=True)
class BurnTier:
    name: str
    long: timedelta
    short: timedelta
    factor: float
    severity: str  # "page" or "ticket"


TIERS = (
    BurnTier("fast", timedelta(hours=1), timedelta(minutes=5), 14.4, "page"),
    BurnTier("medium", timedelta(hours=6), timedelta(minutes=30), 6.0, "page"),
    BurnTier("slow", timedelta(days=3), timedelta(hours=6), 1.0, "ticket"),
)
MIN_RESULTS = 10   # in the long window
MIN_FAILURES = 3   # in the long window


@dataclass(frozen=True)
class Counts:
    bad: int
    counted: int

    def burn(self, slo_percent: float) -> float:
        if self.counted == 0:
            return 0.0
        return (self.bad / self.counted) / (1 - slo_percent / 100)


def burning(tier: BurnTier, long: Counts, short: Counts, slo_percent: float) -> bool:
    """Both windows burn at least the tier's factor, with enough evidence in the long one."""
    if long.counted < MIN_RESULTS or long.bad < MIN_FAILURES or short.bad == 0:
        return False
    return long.burn(slo_percent) >= tier.factor and short.burn(slo_percent) >= tier.factor


def window_counts(session: Session, service_id: str, now: datetime, window: timedelta) -> Counts:
    if window <= RAW_LIMIT:
        P = ProbeResultRow
        rows = session.execute(
            select(P.outcome, func.count()).where(
                P.service_id == service_id, P.started_at > now - window, P.started_at <= now,
                P.kind == ProbeKind.CANARY.value)  # confirmation runs are not samples (``rollups.SAMPLE_KINDS``)
            .group_by(P.outcome)
        )
        by_outcome = dict(rows.all())
        counted = sum(n for o, n in by_outcome.items() if o not in OPERATOR_OUTCOMES)
        return Counts(sum(by_outcome.get(o, 0) for o in DOWN_OUTCOMES), counted)
    R = rollup_hourly.c
    start = (now - window).replace(minute=0, second=0, microsecond=0)
    bad = sum(R[f"n_{o}"] for o in DOWN_OUTCOMES)
    operator = sum(R[f"n_{o}"] for o in OPERATOR_OUTCOMES)
    row = session.execute(
        select(func.coalesce(func.sum(bad), 0), func.coalesce(func.sum(R.n_total - operator), 0))
        .where(R.service_id == service_id, R.bucket_start >= start, R.bucket_start <= now)
    ).one()
    return Counts(int(row[0]), int(row[1]))


def dedupe_key(service_id: str, tier: BurnTier, now: datetime) -> str:
    """The alert's unique key: service, tier and the fixed ``tier.long`` bucket of time holding ``now``."""
    span = int(tier.long.total_seconds())
    bucket = datetime.fromtimestamp(int(now.timestamp()) // span * span, UTC)
    return f"slo_burn:{tier.name}:{service_id}:{bucket:%Y-%m-%dT%H:%MZ}"


def check_burn_rates(db: Engine | Session, config: Config, now: datetime) -> list[AlertOutbox]:
    """Write ``slo_burn`` alert events for every service and tier burning now (once per long window).

    Given an engine it is a transaction of its own; given a session, the caller's transaction (the
    coordinator's, under its lock).  A duplicate raises ``IntegrityError`` (see the module docstring).
    """
    if isinstance(db, Session):
        return _check(db, config, now)
    with Session(db, expire_on_commit=False) as session, session.begin():
        return _check(session, config, now)


def _check(session: Session, config: Config, now: datetime) -> list[AlertOutbox]:
    written = []
    for service in config.services:
        slo = service.slo.availability
        if slo >= 100:
            continue
        for tier in TIERS:
            long = window_counts(session, service.id, now, tier.long)
            short = window_counts(session, service.id, now, tier.short)
            if not burning(tier, long, short, slo):
                continue
            event = f"slo_burn:{tier.name}"
            already = session.scalar(select(func.count()).select_from(AlertOutbox).where(
                AlertOutbox.service_id == service.id, AlertOutbox.event == event,
                AlertOutbox.created_at > now - tier.long))
            if already:
                continue
            alert = AlertOutbox(
                service_id=service.id, event=event, audience="operator",
                impact="major" if tier.severity == "page" else "minor",
                title=(f"{service.display_name}: error budget burning {long.burn(slo):.1f}x over "
                       f"{format_duration(tier.long)} and {short.burn(slo):.1f}x over {format_duration(tier.short)} "
                       f"({tier.name} {tier.severity})"),
                body=(f"{long.bad} of {long.counted} runs failed in the last {format_duration(tier.long)} and {short.bad} of "
                      f"{short.counted} in the last {format_duration(tier.short)}: burn rate {long.burn(slo):.1f}x / "
                      f"{short.burn(slo):.1f}x against the {slo:g}% availability SLO (alert at {tier.factor:g}x)."),
                created_at=now, attempts=0, dedupe_key=dedupe_key(service.id, tier, now),
            )
            session.add(alert)
            written.append(alert)
    session.flush()  # a duplicate dedupe_key fails here, inside the caller's transaction
    return written
