"""The long-running monitor: migrate, sync the catalog, schedule probes, store their results,
run detection over them (the coordinator role, in-process) and deliver the alerts it writes."""

from __future__ import annotations

import logging

from monitor.alerts.dispatcher import Dispatcher
from monitor.config import Config
from monitor.engine.coordinator import Coordinator
from monitor.engine.runner import ProbeRunner
from monitor.engine.scheduler import ProbeScheduler
from monitor.reports.schedule import WeeklyReportSchedule
from monitor.store.db import make_engine
from monitor.store.exclusive import SQLiteMonitorLock
from monitor.store.migrate import upgrade
from monitor.store.record import ResultRecord
from monitor.store.references import ReferenceSource
from monitor.store.results import ResultStore

log = logging.getLogger("genstatus")


class MonitorRuntime:
    """Everything ``genstatus run`` does except the web server (which lives in ``web``)."""

    def __init__(
        self, config: Config, region: str | None = None, spool_path: str | None = None, *, detect_every: float = 5.0
    ) -> None:
        self.config = config
        self.region = region or config.region
        self.lock = SQLiteMonitorLock(config.database).acquire()  # one monitor per SQLite file
        self.engine = make_engine(config.database)
        upgrade(self.engine)
        self.store = ResultStore(self.engine, spool_path=spool_path)
        self.store.sync_catalog(config)
        self.runner = ProbeRunner(config, region=self.region, references=ReferenceSource(self.engine))
        self.dispatcher = Dispatcher(self.engine, config)
        self.coordinator = Coordinator(self.engine, config, every=detect_every, on_alerts=self.dispatcher.poke)
        self.scheduler = ProbeScheduler(config, self.runner, self._handle)
        self.reports = WeeklyReportSchedule(self.engine, config) if config.reports.weekly else None

    def _handle(self, result: ResultRecord) -> None:
        self.store.record(result)
        self.coordinator.poke()

    def start(self) -> None:
        self.scheduler.start()
        self.coordinator.start()
        self.dispatcher.start()
        if self.reports is not None:
            self.reports.start()
        if not self.config.alerts.channels:
            log.info("no alert channels configured (alerts.channels): incidents are recorded but nobody is told")

    def stop_probing(self, *, keep_in_flight: bool = True) -> None:
        """Schedule no more probes, without waiting for those in flight; with ``keep_in_flight`` False their
        results are dropped (what a probe measures while its target shuts down is the shutdown)."""
        self.scheduler.shutdown(wait=False, keep_in_flight=keep_in_flight)

    def stop(self) -> None:
        """Let in-flight probes finish and store them (unless ``stop_probing`` said otherwise), then release
        connections."""
        self.scheduler.shutdown(wait=True)
        self.coordinator.stop()
        self.dispatcher.stop()
        if self.reports is not None:
            self.reports.stop()
        self.runner.close()
        self.engine.dispose()
        self.lock.release()
