"""Submit-then-poll support for asynchronous providers (Replicate, fal, BFL, ComfyUI, midjourney-proxy).

``poll`` calls a step function until it reports a terminal answer, sleeping with capped
exponential backoff in between, and never past the run's deadline.  When the deadline
passes (or a poll request itself times out), ``on_deadline`` runs first: adapters use it
to cancel the job where the API allows it, so an abandoned canary stops costing money.

Every request (the polls and the cancel) goes through ``Adapter.send``, so a polling URL the
provider's answer names is held to the same-origin rule there (``probes.http``).

``ctx.phase`` times only the requests; ``PhaseClock`` charges the whole wait (sleeps
included) to the state the job was last seen in, queue or generation.
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

    The time between two looks at the job counts for the phase it was last seen in.
    """

    def __init__(self, ctx: ProbeContext, phase: str = "queue") -> None:
        self.ctx, self.phase, self.since = ctx, phase, time.monotonic()

    def seen(self, phase: str | None = None) -> None:
        """Charge the time since the last look to the phase last seen; ``phase`` is seen now (None: unchanged)."""
        now = time.monotonic()
        self.ctx.add_phase(self.phase, (now - self.since) * 1000.0)
        self.since, self.phase = now, phase or self.phase

    def finished(self) -> None:
        """The job was seen done: the last interval ran it, even if it was last seen queued."""
        self.phase = "generation"
        self.seen()

