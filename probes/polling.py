"""Submit-then-poll support for asynchronous providers (Replicate, fal, BFL, ComfyUI, midjourney-proxy).

``poll`` calls a step function until it reports a terminal answer, sleeping with capped
exponential backoff in between, and never past the run's deadline.  When the deadline
passes (or a poll request itself times out), ``on_deadline`` runs first: adapters use it
to cancel the job where the API allows it, so an abandoned canary stops costing money.

Every request (the polls and the cancel) goes through ``Adapter.send``, so a polling URL the
provider's answer names is held to the same-origin rule there (``probes.http``).

``ctx.phase`` times only the requests; ``PhaseClock`` charges the whole wait (sleeps
included) to queue or generation by the states the job was seen in (a change between two
looks splits that gap).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

from probes.base import DeadlineExceeded, ProbeContext

T = TypeVar("T")
log = logging.getLogger("genstatus.probes")

FIRST_DELAY_S = 0.5
BACKOFF = 1.5
MAX_DELAY_S = 5.0
CANCEL_TIMEOUT_S = 3.0


def poll(
    ctx: ProbeContext,
    step: Callable[[], T | None],
    *,
    what: str = "job",
    on_deadline: Callable[[], None] | None = None,
    first_delay: float = FIRST_DELAY_S,
    max_delay: float = MAX_DELAY_S,
) -> T:
    """Return the first non-None value of ``step()``; raise ``DeadlineExceeded`` at the deadline."""
    delay = first_delay
    try:
        while True:
            ctx.check_deadline(f"waiting for the {what}")
            answer = step()
            if answer is not None:
                return answer
            left = ctx.remaining()
            if left <= 0:
                raise DeadlineExceeded(f"the {what} did not finish before the {ctx.service.timeout.total_seconds():g}s deadline")
            time.sleep(min(delay, left))
            delay = min(delay * BACKOFF, max_delay)
    except (DeadlineExceeded, httpx.TimeoutException):
        if on_deadline is not None:
            _best_effort(on_deadline, what)
        raise


def cancel_timeout() -> httpx.Timeout:
    """Timeouts for a cancel request sent after the deadline: short, independent of it."""
    return httpx.Timeout(CANCEL_TIMEOUT_S)


def _best_effort(cancel: Callable[[], None], what: str) -> None:
    try:
        cancel()
    except Exception as exc:  # noqa: BLE001 - the run already failed; a failed cancel only gets logged
        log.warning("could not cancel the abandoned %s: %s", what, type(exc).__name__)


class PhaseClock:
    """Latency phases of a polled job, measured on our side.

    Between two looks that see the same state, the time counts for that state.  When the state
    changed between two looks, the change happened somewhere in between: the gap is split at its
    midpoint, which bounds the error of either phase by half a poll interval (charging the whole
    gap to one side, as a plain "last seen" clock does, can book a whole run as queue).
    """

    def __init__(self, ctx: ProbeContext, phase: str = "queue") -> None:
        self.ctx, self.phase = ctx, phase
        self.began = self.since = time.monotonic()
        self.charged: dict[str, float] = {"queue": 0.0, "generation": 0.0}
        self.last_queued = self.began  # the job cannot have started before it was submitted
        self.first_started: float | None = None  # the first look that did not see it queued
        self.last_running: float | None = None  # the last look that saw it still running

    def seen(self, phase: str | None = None) -> None:
        """Charge the time since the last look; ``phase`` is the state seen now (None: unchanged)."""
        self._look(phase, done=False)

    def finished(self) -> None:
        """The job was seen done: if it was last seen queued, it started (and ran) within the last gap."""
        self._look("generation", done=True)

    def ran_for(self, ms: float) -> None:
        """The provider says the job ran ``ms`` by its own clock; call after ``finished``.

        The start then lies where both our looks and that duration allow it (after the last look that
        saw the job queued and the last that saw it running minus ``ms``; before the first look that
        did not see it queued and the end minus ``ms``): the midpoint of that span splits the wait.
        Looks that contradict the duration (clock skew, a bogus timestamp) leave the split as it was.
        """
        end = self.since
        run_s = max(ms, 0.0) / 1000.0
        low = max(self.last_queued, (self.last_running or self.began) - run_s)
        high = min(self.first_started or end, end - run_s)
        if high < low:
            return
        start = (low + high) / 2
        self._charge("queue", (start - self.began) * 1000.0 - self.charged["queue"])
        self._charge("generation", (end - start) * 1000.0 - self.charged["generation"])

    def _look(self, phase: str | None, *, done: bool) -> None:
        now = time.monotonic()
        gap = (now - self.since) * 1000.0
        if phase is None or phase == self.phase:
            self._charge(self.phase, gap)
        else:
            self._charge(self.phase, gap / 2)
            self._charge(phase, gap / 2)
        self.since, self.phase = now, phase or self.phase
        if self.phase == "queue":
            self.last_queued = now
        else:
            self.first_started = self.first_started or now
            if not done:
                self.last_running = now

    def _charge(self, phase: str, ms: float) -> None:
        self.ctx.add_phase(phase, ms)
        if phase in self.charged:
            self.charged[phase] += ms
