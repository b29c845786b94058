"""Per-run state every adapter and helper shares: the deadline, the client, the phase timers, the secrets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import httpx

from probes.failure import DeadlineExceeded

if TYPE_CHECKING:  # pragma: no cover
    from monitor.config import CanaryConfig, ServiceConfig

#: the latency phases of a run, in order; ``total`` is the whole run
PHASES = ("submit", "queue", "generation", "download", "total")


class ProbeContext:
    """Per-run state: the deadline, the HTTP client, phase timers and the secrets to redact."""

    def __init__(
        self,
        service: ServiceConfig,
        canary: CanaryConfig | None,
        client: httpx.Client,
        *,
        region: str = "default",
        seed: int | None = None,
        deadline_s: float | None = None,
    ) -> None:
        self.service = service
        self.canary = canary
        self.client = client
        self.region = region
        self.seed = seed
        self.started_monotonic = time.monotonic()
        total = deadline_s if deadline_s is not None else service.timeout.total_seconds()
        self.deadline = self.started_monotonic + total
        self.phases: dict[str, float | None] = dict.fromkeys(PHASES)
        self.http_status: int | None = None
        self.request_id: str | None = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check_deadline(self, what: str = "run") -> float:
        """Return the seconds left, or raise ``DeadlineExceeded``."""
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceeded(f"deadline of {self.service.timeout.total_seconds():g}s exceeded during {what}")
        return left

    def timeout(self, *, connect: float = 10.0, write: float = 30.0, pool: float = 5.0) -> httpx.Timeout:
        """httpx timeouts that never reach past the run's deadline."""
        left = max(self.check_deadline(), 0.001)
        return httpx.Timeout(read=left, connect=min(connect, left), write=min(write, left), pool=min(pool, left))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a latency phase; repeated phases (polls) add up."""
        assert name in PHASES and name != "total", name
        began = time.monotonic()
        try:
            yield
        finally:
            self.add_phase(name, (time.monotonic() - began) * 1000.0)

    def add_phase(self, name: str, ms: float) -> None:
        """Add ``ms`` to a latency phase: for time measured otherwise than by ``phase`` (e.g. between polls)."""
        assert name in PHASES and name != "total", name
        self.phases[name] = (self.phases[name] or 0.0) + ms

    def note_response(self, response: httpx.Response, request_id_header: str = "x-request-id") -> None:
        """Remember the latest HTTP status and provider request id."""
        self.http_status = response.status_code
        rid = response.headers.get(request_id_header)
        if rid:
            self.request_id = rid[:200]

    def secrets(self) -> list[str]:
        return self.service.secret_values()
