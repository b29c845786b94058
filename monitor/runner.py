"""Run one probe: the service's adapter, then scoring, then the final outcome."""

from __future__ import annotations

import random
import threading

import httpx

from monitor.config import CanaryConfig, Config, ServiceConfig
from monitor.enums import Outcome, ProbeKind, Verdict
from monitor.scoring import score_image
from probes.base import Adapter, ProbeContext, ProbeResult
from probes.http import make_client
from probes.registry import adapter_class

SEED_MAX = 2**31 - 1


def resolve_seed(canary: CanaryConfig | None) -> int | None:
    """A fixed seed as configured; ``random`` draws a fresh one each run (defeats provider caches)."""
    if canary is None or canary.seed is None:
        return None
    if canary.seed == "random":
        return random.randint(1, SEED_MAX)
    return int(canary.seed)


def apply_scoring(result: ProbeResult, service: ServiceConfig, canary: CanaryConfig | None) -> None:
    """Score ``result.image`` in place and settle the outcome (bad_output, degraded_quality, slow, ok)."""
    if result.outcome is not Outcome.OK or result.image is None:
        return
    assessment = score_image(
        result.image,
        requested_size=canary.dimensions if canary else None,
        prompt=canary.prompt if canary else None,
        size_check=result.size_check,
    )
    result.image_bytes = assessment.size_bytes
    result.image_format = assessment.format
    result.image_width = assessment.width
    result.image_height = assessment.height
    result.image_sha256 = assessment.sha256
    result.hashes = dict(assessment.hashes)
    result.quality_score = round(assessment.score, 4)
    result.quality_verdict = str(assessment.verdict)
    result.quality_flags = list(assessment.flags)
    result.quality_reasons = list(assessment.reasons)
    if not assessment.valid:
        result.outcome = Outcome.BAD_OUTPUT
        result.error_detail = "; ".join(assessment.reasons)
    elif assessment.verdict is not Verdict.PASS:
        result.outcome = Outcome.DEGRADED_QUALITY
        result.error_detail = "; ".join(assessment.reasons)
    elif service.slow_threshold and (result.latency_ms.get("total") or 0) > service.slow_threshold.total_seconds() * 1000:
        result.outcome = Outcome.SLOW
        result.error_detail = f"total latency above the {service.slow_threshold.total_seconds():g}s threshold"


class ProbeRunner:
    """Owns one adapter and one HTTP client per service; thread-safe for different services."""

    def __init__(self, config: Config, region: str = "default") -> None:
        self.config = config
        self.region = region
        self._adapters: dict[str, Adapter] = {}
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()

    def _parts(self, service: ServiceConfig) -> tuple[Adapter, httpx.Client]:
        with self._lock:
            if service.id not in self._adapters:
                self._adapters[service.id] = adapter_class(service.provider)(service)
                self._clients[service.id] = make_client(service)
            return self._adapters[service.id], self._clients[service.id]

    def run(self, service: ServiceConfig, canary: CanaryConfig | None, kind: ProbeKind = ProbeKind.CANARY) -> ProbeResult:
        """One probe run, scored.  Never raises for provider behaviour."""
        adapter, client = self._parts(service)
        seed = resolve_seed(canary) if adapter.supports_seed else None
        context = ProbeContext(service, canary, client, region=self.region, seed=seed)
        result = adapter.probe(context, kind)
        if kind is not ProbeKind.HEALTH:
            try:
                apply_scoring(result, service, canary)
            except Exception as exc:  # noqa: BLE001 - a scoring bug is ours, not the provider's
                result.outcome = Outcome.PROBE_ERROR
                result.error_detail = f"scoring failed: {type(exc).__name__}: {exc}"[:1024]
        result.image = None
        return result

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
            self._adapters.clear()
