"""The coordinator loop: detection over the database every few seconds.

In ``genstatus run`` it is a thread of the one process; in scale-out it is the elected
coordinator.  Each tick reads the recent results and the known incidents, runs the pure
``detect`` and writes its transitions (with updates and alert-outbox rows) in one
transaction, so state survives restarts and nothing is decided twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from monitor.config import Config
from monitor.detection.detect import DetectorConfig, Transition, detect
from monitor.detection.incidents import apply_transitions, known_incidents, recent_observations
from monitor.detection.slo import check_burn_rates

log = logging.getLogger("genstatus.coordinator")

DEFAULT_TICK_S = 5.0
SLO_EVERY_S = 60.0  # burn rates move slowly: check them once a minute, not every tick


class Coordinator:
    def __init__(
        self,
        engine: Engine,
        config: Config,
        *,
        every: float = DEFAULT_TICK_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.config = config
        self.detector = DetectorConfig.from_config(config)
        self._slo_checked: datetime | None = None
        self.names = {service.id: service.display_name for service in config.services}
        self.every = every
        self.clock = clock
        self._stop = threading.Event()
        self._poked = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now: datetime | None = None) -> list[Transition]:
        """One round of detection; returns the transitions it wrote."""
        now = now or self.clock()
        with Session(self.engine) as session:
            observations = recent_observations(session, now - self.detector.lookback(), now)
            known = known_incidents(session, now, self.detector.settings.reopen_window)
        transitions = detect(observations, known, self.detector, now)
        apply_transitions(self.engine, transitions, self.names)
        if self._slo_checked is None or (now - self._slo_checked).total_seconds() >= SLO_EVERY_S:
            self._slo_checked = now
            for alert in check_burn_rates(self.engine, self.config, now):
                log.warning("SLO alert: %s", alert.title)
        for transition in transitions:
            log.warning("incident %s: %s (%s, %s)", transition.action, transition.incident.service or transition.incident.regions,
                        transition.incident.kind, transition.incident.impact)
        return transitions

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
