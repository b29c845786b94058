"""The scoring pipeline and its result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from monitor.enums import Verdict


@dataclass
class ScoringInput:
    data: bytes
    requested_size: tuple[int, int] | None = None  # (width, height), None when the size was "auto"
    prompt: str | None = None
    size_check: str = "exact"  # "exact", "aspect" (ratio only) or "none" (see probes.base.SizeCheck)


@dataclass
class Assessment:
    """What scoring found.  ``valid`` False means the bytes are not a usable image (``bad_output``)."""

    valid: bool = True
    verdict: Verdict = Verdict.PASS
    score: float = 1.0
    flags: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    format: str | None = None
    width: int | None = None
    height: int | None = None
    size_bytes: int = 0
    sha256: str | None = None
    hashes: dict[str, str] = field(default_factory=dict)
    image: Image.Image | None = field(default=None, repr=False)

    def fail(self, flag: str, reason: str, *, invalid: bool = False) -> None:
        """Record a decisive failure: the pipeline stops after this stage."""
        self.flags.append(flag)
        self.reasons.append(reason)
        self.verdict = Verdict.FAIL
        self.score = 0.0
        if invalid:
            self.valid = False

    @property
    def decisive(self) -> bool:
        return self.verdict is Verdict.FAIL

    def to_dict(self) -> dict:
        return {
            "verdict": str(self.verdict),
            "score": round(self.score, 4),
            "flags": list(self.flags),
            "hashes": dict(self.hashes),
            "reasons": list(self.reasons),
        }


Stage = Callable[[ScoringInput, Assessment], None]


def _stages() -> list[Stage]:
    from monitor.scoring import detectors, hashes, validate

    return [validate.decode_and_validate, detectors.blank_or_uniform, hashes.perceptual_hashes]


def score_image(
    data: bytes, *, requested_size: tuple[int, int] | None = None, prompt: str | None = None, size_check: str = "exact"
) -> Assessment:
    """Run every stage in order; a stage that fails decisively ends the run."""
    given = ScoringInput(data=data, requested_size=requested_size, prompt=prompt, size_check=str(size_check))
    assessment = Assessment(size_bytes=len(data))
    for stage in _stages():
        stage(given, assessment)
        if assessment.decisive:
            break
    assessment.image = None  # do not keep decoded pixels alive past scoring
    return assessment
