"""The stored result record (docs/contracts.md, result record): one probe run as the store keeps it.

A flat dataclass that the runner builds with ``ResultRecord.join`` from the provider's answer
(``probes.base.ProbeResult``), the scoring ``Assessment`` and what the store keeps of the image.
``to_dict`` is the JSON record of ``genstatus probe --json`` and of the spool; the image bytes,
thumbnail and ``keep_until`` are never in it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from monitor.enums import Outcome, ProbeKind

if TYPE_CHECKING:  # pragma: no cover - the web imports the store and must not pull in probes or scoring
    from monitor.scoring.types import Assessment
    from probes.base import ProbeResult

__all__ = ["ANSWER_FIELDS", "LATENCY_PHASES", "ResultRecord"]

#: the fields copied as they are from the provider's answer (``ProbeResult``; tests keep the two in step)
ANSWER_FIELDS = ("service", "canary", "region", "kind", "started_at", "finished_at", "outcome", "latency_ms",
                 "http_status", "request_id", "error_detail", "cost", "model_version", "revised_prompt", "seed")
#: the latency phases of a record (= probes.base.PHASES; tests/test_store.py keeps them equal)
LATENCY_PHASES = ("submit", "queue", "generation", "download", "total")


@dataclass
class ResultRecord:
    """One probe run: the provider's answer, how scoring judged its image, what the store keeps of it."""

    service: str
    canary: str | None
    region: str
    kind: ProbeKind
    started_at: datetime
    finished_at: datetime | None = None
    outcome: Outcome = Outcome.PROBE_ERROR  # the final outcome: the answer's, settled by scoring
    latency_ms: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(LATENCY_PHASES))
    http_status: int | None = None
    request_id: str | None = None
    error_detail: str | None = None
    # what scoring found (None / empty when the run gave no image)
    image_bytes: int | None = None
    image_format: str | None = None
    image_width: int | None = None
    image_height: int | None = None
    image_sha256: str | None = None
    hashes: dict[str, str] = field(default_factory=dict)
    quality_score: float | None = None
    quality_verdict: str | None = None
    quality_flags: list[str] = field(default_factory=list)
    quality_reasons: list[str] = field(default_factory=list)
    cost: float | None = None
    model_version: str | None = None
    revised_prompt: str | None = None
    seed: int | None = None
    # What the store keeps of the image: a small thumbnail and, for a failing image when configured, the file.
    thumbnail: bytes | None = field(default=None, repr=False, compare=False)
    kept_image: bytes | None = field(default=None, repr=False, compare=False)
    keep_until: datetime | None = field(default=None, repr=False, compare=False)
    # The generated image, only when the caller asked to keep it (``genstatus baseline``); never stored.
    image: bytes | None = field(default=None, repr=False, compare=False)

    #: fields that are bytes or internal, never in the JSON record
    PRIVATE: ClassVar[tuple[str, ...]] = ("thumbnail", "kept_image", "keep_until", "image")

    @classmethod
    def join(
        cls, answer: ProbeResult, assessment: Assessment | None = None, *,
        kept_image: bytes | None = None, keep_until: datetime | None = None,
    ) -> ResultRecord:
        """The record of ``answer``, with what ``assessment`` found (None: nothing was scored).

        The outcome and error detail are the answer's; the runner settles them from the assessment.
        """
        record = cls(**{name: getattr(answer, name) for name in ANSWER_FIELDS})
        record.latency_ms = dict(answer.latency_ms)
        if assessment is not None:
            record.image_bytes = assessment.size_bytes
            record.image_format = assessment.format
            record.image_width = assessment.width
            record.image_height = assessment.height
            record.image_sha256 = assessment.sha256
            record.hashes = dict(assessment.hashes)
            record.quality_score = round(assessment.score, 4)
            record.quality_verdict = str(assessment.verdict)
            record.quality_flags = list(assessment.flags)
            record.quality_reasons = list(assessment.reasons)
            record.thumbnail = assessment.thumbnail
        record.kept_image = kept_image
        record.keep_until = keep_until
        return record

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name not in self.PRIVATE}
        data["kind"] = str(self.kind)
        data["outcome"] = str(self.outcome)
        data["started_at"] = _iso(self.started_at)
        data["finished_at"] = _iso(self.finished_at)
        return data


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
