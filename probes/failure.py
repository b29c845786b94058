"""The classified failure an adapter raises (re-exported by ``probes.base``).

A module of its own so the request helpers (``probes.answers``, ``probes.download``,
``probes.http``) can raise it while ``probes.base`` builds on them.
"""

from __future__ import annotations

from monitor.enums import Outcome


class ProbeFailure(Exception):
    """A classified failure: the provider said no, or said something unusable."""

    def __init__(
        self,
        outcome: Outcome,
        detail: str,
        *,
        http_status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.outcome = Outcome(outcome)
        self.detail = detail
        self.http_status = http_status
        self.request_id = request_id


class DeadlineExceeded(ProbeFailure):
    def __init__(self, detail: str = "deadline exceeded") -> None:
        super().__init__(Outcome.TIMEOUT, detail)
