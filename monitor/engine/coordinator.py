"""The coordinator loop: detection over the database every few seconds.

In ``genstatus run`` it is a thread of the process.  Several processes may share one PostgreSQL
(one per region): each runs a coordinator, but only the one holding the coordinator lock
(``monitor.engine.leader``) acts in a round; the others skip it.  Each step of a round -- the
detection (read the recent results and the known incidents, run the pure ``detect``, write its
transitions with updates and alert-outbox rows) and the periodic steps such as the SLO burn
check -- is one transaction that starts by taking the lock, so its read-decide-write is never
raced and state survives restarts.  Should the database still refuse a duplicate (the unique
indexes on open incidents and alert keys), the step rolls back and is retried next tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.detection.admin import leave_manual_alone, manual_incident_ids, stored_maintenance, without_manual
from monitor.detection.background import WINDOW, BackgroundCounter
from monitor.detection.detect import DetectorConfig, Transition, detect
from monitor.detection.incidents import apply_transitions, count_background, known_incidents, recent_observations
from monitor.detection.slo import check_burn_rates
from monitor.engine.leader import try_lead
from monitor.store.retention import run_retention

log = logging.getLogger("genstatus.coordinator")

DEFAULT_TICK_S = 5.0
SLO_EVERY_S = 60.0  # burn rates move slowly: check them once a minute, not every tick
RETENTION_EVERY_S = 3600.0  # old rows go in small batches once an hour
BACKGROUND_EVERY_S = 600.0  # each service's noise over the last week moves slowly: top it up every 10 minutes

T = TypeVar("T")
Step = Callable[[Session, datetime], Any]


@dataclass
class Periodic:
    """A step run under the coordinator lock, in a transaction of its own, at most every ``every`` seconds."""

    name: str
    every: float
    run: Step
    writes_alerts: bool = False  # a truthy result means outbox rows were written
    last: datetime | None = None

    def due(self, now: datetime) -> bool:
        return self.last is None or (now - self.last).total_seconds() >= self.every


class Coordinator:
    def __init__(
        self,
        engine: Engine,
        config: Config,
        *,
        every: float = DEFAULT_TICK_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_alerts: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.detector = DetectorConfig.from_config(config)
        self.names = {service.id: service.display_name for service in config.services}
        #: after detection, in order, when due (and only when this coordinator got the lock)
        self.periodic = [Periodic("SLO burn check", SLO_EVERY_S, self._check_slo, writes_alerts=True),
                         Periodic("retention", RETENTION_EVERY_S, self._retain)]
        self.every = every
        self.clock = clock
        self.on_alerts = on_alerts  # called after a round wrote outbox rows (the dispatcher's poke)
        self._stop = threading.Event()
        self._poked = threading.Event()
        self._thread: threading.Thread | None = None
        self._background: BackgroundCounter | None = None
        self._counted_until: datetime | None = None  # the background holds the results before this

    def tick(self, now: datetime | None = None) -> list[Transition]:
        """One round: detection, then the periodic steps that are due; returns the transitions written.

        Returns ``[]`` without doing anything when another coordinator holds the lock.
        """
        now = now or self.clock()
        self._noise(now)
        transitions = self._locked("detection", self._detect, now)
        if transitions is None:
            return []
        wrote = bool(transitions)
        for step in self.periodic:
            if step.due(now) and (done := self._locked(step.name, step.run, now)) is not None:
                step.last = now
                wrote = wrote or (step.writes_alerts and bool(done))
        if wrote and self.on_alerts is not None:
            self.on_alerts()
        for transition in transitions:
            log.warning("incident %s: %s (%s, %s)", transition.action, transition.incident.service or transition.incident.regions,
                        transition.incident.kind, transition.incident.impact)
        return transitions

    def _locked(self, what: str, step: Callable[[Session, datetime], T], now: datetime) -> T | None:
        """``step(session, now)`` in one transaction under the coordinator lock; None if it did not run or was undone."""
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                if not try_lead(session):
                    log.debug("%s skipped: another coordinator holds the lock", what)
                    return None
                return step(session, now)
        except IntegrityError as error:  # a duplicate the lock should have prevented: nothing was written
            log.warning("%s rolled back, the database refused a duplicate (retrying next tick): %s", what, error.orig)
            return None

    def _detect(self, session: Session, now: datetime) -> list[Transition]:
        # the admin side's maintenance windows and hand-written incidents count (``monitor.detection.admin``)
        detector = self.detector.with_maintenance(stored_maintenance(session, now))
        observations = recent_observations(session, now - detector.lookback(), now)
        known = known_incidents(session, now, detector.settings.reopen_window)
        manual = manual_incident_ids(session, [k.id for k in known if k.id is not None])
        transitions = without_manual(detect(observations, leave_manual_alone(known, manual), detector, now,
                                            background=self._background), manual)
        apply_transitions(session, transitions, self.names)
        return transitions

    def _noise(self, now: datetime) -> None:
        """Keep each service's background noise (``monitor.detection.background``) up to date.

        Counted once from the database over the last week, then topped up every
        ``BACKGROUND_EVERY_S`` with the results since: a week of results is read once, not every
        round.  Read-only, in a session of its own, outside the coordinator lock.
        """
        until = now - self.detector.lookback()
        counted = self._counted_until
        if self._background is not None and counted is not None and counted <= until:
            if (until - counted).total_seconds() < BACKGROUND_EVERY_S:
                return
            since = counted
        else:  # first round, or the clock went back: count the whole week afresh
            self._background, since = BackgroundCounter(self.detector), now - WINDOW
        with Session(self.engine) as session:
            count_background(session, self._background, since, until)
        self._background.forget_before(now - WINDOW)
        self._counted_until = until

    def _check_slo(self, session: Session, now: datetime) -> list:
        alerts = check_burn_rates(session, self.config, now)
        for alert in alerts:
            log.warning("SLO alert (%s): %s", alert.event, alert.title)
        return alerts

    def _retain(self, _session: Session, now: datetime) -> dict[str, int]:
        """Delete what ``retention:`` no longer keeps; the lock held by ``_session`` keeps it to one coordinator.

        The batches run in transactions of their own (short, never holding the lock's transaction busy).
        """
        removed = run_retention(self.engine, self.config.retention, now)
        if any(removed.values()):
            log.info("retention removed %s", ", ".join(f"{n} {what}" for what, n in removed.items() if n))
        return removed

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="genstatus-coordinator", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """A new result is stored: run detection now rather than at the next tick."""
        self._poked.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._poked.wait(self.every)
            self._poked.clear()
            if self._stop.is_set():
                break
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a database hiccup must not end detection; retry next tick
                log.exception("detection round failed; retrying in %.0fs", self.every)

    def stop(self) -> None:
        self._stop.set()
        self._poked.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
