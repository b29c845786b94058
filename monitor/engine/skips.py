"""Scheduled runs the scheduler had to skip: counted per service, logged as scheduler lag.

A run is skipped when the job's previous run is still going (or still waiting for a worker)
at its next due time: APScheduler drops it (``max_instances=1``) and would log a warning per
occurrence.  Each skip is a gap in the measurements, so it is counted; the log says so once
when a service first lags, then at most once per ``window`` with how many runs were lost and
how far behind the service was.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("genstatus.scheduler")

SUMMARY_WINDOW_S = 60.0
CAUSE = "probes take longer than the interval or the worker pool is too small"


@dataclass
class _Lag:
    total: int = 0
    unreported: int = 0  # skips since the last log line
    worst_lag_s: float = 0.0  # the longest a pending run had been busy at a skip, since the last log line
    logged_at: float | None = None


class SkipLedger:
    """Skipped runs per service; ``clock`` is injectable so tests can step through rate windows."""

    def __init__(self, window_s: float = SUMMARY_WINDOW_S, clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger = log) -> None:
        self.window_s = window_s
        self._clock = clock
        self._log = logger
        self._lock = threading.Lock()
        self._services: dict[str, _Lag] = {}

    def skipped(self, service_id: str, lag_s: float, interval_s: float) -> None:
        """One run of ``service_id`` skipped because the run due ``lag_s`` ago has not finished."""
        now = self._clock()
        with self._lock:
            lag = self._services.setdefault(service_id, _Lag())
            lag.total += 1
            lag.unreported += 1
            lag.worst_lag_s = max(lag.worst_lag_s, lag_s)
            if lag.logged_at is None:
                line = (f"{service_id}: a scheduled run was skipped, the previous one was still going after "
                        f"{lag.worst_lag_s:.0f} s against a {interval_s:g} s interval — {CAUSE}")
            elif now - lag.logged_at >= self.window_s:
                line = self._summary(service_id, lag, now)
            else:
                return
            lag.logged_at, lag.unreported, lag.worst_lag_s = now, 0, 0.0
        self._log.warning("%s", line)

    def flush(self) -> None:
        """Log the skips not reported yet (at shutdown: none is lost from the log)."""
        now = self._clock()
        with self._lock:
            lines = [self._summary(sid, lag, now) for sid, lag in sorted(self._services.items()) if lag.unreported]
            for lag in self._services.values():
                lag.logged_at, lag.unreported, lag.worst_lag_s = now, 0, 0.0
        for line in lines:
            self._log.warning("%s", line)

    def counts(self) -> dict[str, int]:
        """Skipped runs per service since start (services that never skipped are absent)."""
        with self._lock:
            return {sid: lag.total for sid, lag in self._services.items()}

    def _summary(self, service_id: str, lag: _Lag, now: float) -> str:
        since = now - lag.logged_at if lag.logged_at is not None else 0.0
        runs = "run" if lag.unreported == 1 else "runs"
        return (f"{service_id}: {lag.unreported} {runs} skipped in the last {since:.0f} s, scheduler lag "
                f"{lag.worst_lag_s:.0f} s — {CAUSE} ({lag.total} skipped since start)")
