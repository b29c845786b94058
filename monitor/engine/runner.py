"""Run one probe: the service's adapter, then scoring, then the final outcome, joined into the stored record."""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Callable

import httpx

from monitor.config import CanaryConfig, Config, QualityConfig, ServiceConfig
from monitor.enums import Outcome, ProbeKind, Verdict
from monitor.scoring import score_image
from monitor.store.record import ResultRecord
from monitor.store.references import QualityContext
from probes.base import Adapter, ProbeContext, ProbeResult, random_seed
from probes.http import make_client
from probes.registry import adapter_class


def resolve_seed(canary: CanaryConfig | None) -> int | None:
    """A fixed seed as configured; ``random`` draws a fresh one each run (defeats provider caches)."""
    if canary is None or canary.seed is None:
        return None
    if canary.seed == "random":
        return random_seed()  # 1..probes.base.SEED_MAX
    return int(canary.seed)


def apply_scoring(
    answer: ProbeResult, service: ServiceConfig, canary: CanaryConfig | None, *,
    quality: QualityConfig | None = None, context: QualityContext | None = None, fresh_each_run: bool = False,
    previous_thumbnail: tuple[str, bytes] | None = None,
) -> ResultRecord:
    """Score ``answer.image`` and join the two into the stored record, with the outcome settled
    (bad_output, degraded_quality, slow, ok).  An answer without an image is joined unscored.

    ``context`` brings the canary's reference profile and recent outputs (drift, outside-normal and
    stuck-output checks); without it only the checks that need no history run.  ``fresh_each_run``:
    the provider draws a new picture every call whatever the canary says (it takes no seed), so a
    repeat is a cache even without ``seed: random``.  ``previous_thumbnail``: (sha256, thumbnail) of
    the canary's previous output, reused when this image is the same file.
    """
    if answer.outcome is not Outcome.OK or answer.image is None:
        return ResultRecord.join(answer)
    quality = quality or service.quality or QualityConfig()
    context = context or QualityContext()
    assessment = score_image(
        answer.image,
        requested_size=canary.dimensions if canary else None,
        prompt=canary.prompt if canary else None,
        size_check=answer.size_check,
        quality=quality,
        expect_text=canary.expect_text if canary else None,
        profile=context.profile,
        recent=context.recent,
        seed=answer.seed,
        seed_random=fresh_each_run or bool(canary and canary.seed == "random"),
        want_thumbnail=True,
        all_metrics=False,
        previous_thumbnail=previous_thumbnail,
    )
    keep_for = quality.keep_failing_images if assessment.verdict is not Verdict.PASS else None  # failing images kept
    record = ResultRecord.join(
        answer, assessment,
        kept_image=answer.image if keep_for else None,
        keep_until=answer.started_at + keep_for if keep_for else None,
    )
    if not assessment.valid:
        record.outcome = Outcome.BAD_OUTPUT
        record.error_detail = "; ".join(assessment.reasons)
    elif assessment.verdict is not Verdict.PASS:
        record.outcome = Outcome.DEGRADED_QUALITY
        record.error_detail = "; ".join(assessment.reasons)
    elif service.slow_threshold and (record.latency_ms.get("total") or 0) > service.slow_threshold.total_seconds() * 1000:
        record.outcome = Outcome.SLOW
        record.error_detail = f"total latency above the {service.slow_threshold.total_seconds():g}s threshold"
    return record


def scoring_slots() -> int:
    """How many images are scored at once: one per CPU this process may use (at least two)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 2
    return max(2, cpus)


_M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(count: int) -> bool:
    """Cap glibc's malloc arenas at ``count`` for the threads started from now on (unless
    ``MALLOC_ARENA_MAX`` is set).  glibc gives busy threads arenas of their own, up to 8 per CPU,
    and each keeps the memory freed in it: with a thread per probe, the buffers of responses and
    images freed in many arenas stay resident (measured: 520 MB against 320 MB with 2 arenas for
    200 services).  True when the cap was set; elsewhere (musl, macOS, Windows) nothing is done."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        return bool(ctypes.CDLL(None).mallopt(_M_ARENA_MAX, count))
    except (OSError, AttributeError):
        return False


class ProbeRunner:
    """Owns one adapter and one HTTP client per service; thread-safe for different services.

    Probes wait on providers concurrently (one thread each), but scoring is CPU work: at most
    ``scoring_slots()`` images are scored at once, so the decoded pixels and analysis copies in
    memory are bounded by the CPUs, not by the number of services probed at the same moment
    (hundreds of concurrent scorings only contend for the same cores and grow the heap).
    """

    def __init__(
        self, config: Config, region: str = "default", *,
        references: Callable[[str, str | None], QualityContext] | None = None,
    ) -> None:
        self.config = config
        self.region = region
        self.references = references  # e.g. monitor.store.references.ReferenceSource(engine)
        self._adapters: dict[str, Adapter] = {}
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()
        self._scoring = threading.BoundedSemaphore(scoring_slots())
        self._thumbnails: dict[tuple[str, str | None], tuple[str, bytes]] = {}  # (service, canary) -> last output's
        limit_malloc_arenas(scoring_slots())

    def _parts(self, service: ServiceConfig) -> tuple[Adapter, httpx.Client]:
        with self._lock:
            if service.id not in self._adapters:
                self._adapters[service.id] = adapter_class(service.provider)(service)
                self._clients[service.id] = make_client(service)
            return self._adapters[service.id], self._clients[service.id]

    def run(
        self, service: ServiceConfig, canary: CanaryConfig | None, kind: ProbeKind = ProbeKind.CANARY, *,
        keep_image: bool = False,
    ) -> ResultRecord:
        """One probe run, scored and joined into its record.  Never raises for provider behaviour.
        ``keep_image`` leaves the generated bytes on ``record.image`` (``genstatus baseline``)."""
        adapter, client = self._parts(service)
        seed = resolve_seed(canary) if adapter.supports_seed else None
        context = ProbeContext(service, canary, client, region=self.region, seed=seed)
        answer = adapter.probe(context, kind)
        if kind is ProbeKind.HEALTH:
            record = ResultRecord.join(answer)
        else:
            try:
                history = None
                if self.references is not None and answer.outcome is Outcome.OK and answer.image is not None:
                    history = self.references(service.id, canary.id if canary else None)
                key = (service.id, canary.id if canary else None)
                with self._scoring:
                    record = apply_scoring(answer, service, canary, quality=self.config.quality_of(service),
                                           context=history, fresh_each_run=not adapter.supports_seed,
                                           previous_thumbnail=self._thumbnails.get(key))
                if record.thumbnail is not None and record.image_sha256 is not None:
                    self._thumbnails[key] = (record.image_sha256, record.thumbnail)
            except Exception as exc:  # noqa: BLE001 - a scoring bug is ours, not the provider's
                record = ResultRecord.join(answer)
                record.outcome = Outcome.PROBE_ERROR
                record.error_detail = f"scoring failed: {type(exc).__name__}: {exc}"[:1024]
        if keep_image:
            record.image = answer.image
        return record

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
            self._adapters.clear()
