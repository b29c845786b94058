"""The scoring pipeline and its result."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from monitor.config import QualityConfig
from monitor.enums import Verdict
from monitor.scoring.profile import RecentOutput, ReferenceProfile

#: side of the square analysis copy every detector and hash works on (made once, after decoding)
ANALYSIS_SIDE = 256


@dataclass
class ScoringInput:
    data: bytes
    requested_size: tuple[int, int] | None = None  # (width, height), None when the size was "auto"
    prompt: str | None = None
    size_check: str = "exact"  # "exact", "aspect" (ratio only) or "none" (see probes.base.SizeCheck)
    references: list[bytes] | None = None  # the canary's own reference pictures (encoded), if any
    noise_check: bool = True
    expect_text: str | None = None  # text the image must show (OCR stage)
    quality: QualityConfig = field(default_factory=QualityConfig)  # thresholds
    profile: ReferenceProfile | None = None  # the (service, canary) reference profile, if baselined
    seed: int | None = None  # the seed this image was generated with (stuck-output check)
    seed_random: bool = False  # a new picture is due every run (``seed: random``, or a provider without seeds)
    want_thumbnail: bool = False  # keep a small WebP of the image in ``Assessment.thumbnail``
    recent: list[RecentOutput] = field(default_factory=list)  # the canary's previous outputs, newest first


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
    reference_distance: int | None = None  # Hamming bits to the nearest reference (pHash/dHash), None without references
    metrics: dict[str, float] = field(default_factory=dict)  # detector measurements (for reports and benchmarks)
    metrics_histogram: np.ndarray | None = field(default=None, repr=False)  # colour histogram (profile.py)
    thumbnail: bytes | None = field(default=None, repr=False)  # small WebP when asked for
    image: Image.Image | None = field(default=None, repr=False)
    _small: Image.Image | None = field(default=None, repr=False)
    _grey: np.ndarray | None = field(default=None, repr=False)

    def fail(self, flag: str, reason: str, *, invalid: bool = False) -> None:
        """Record a decisive failure: the pipeline stops after this stage."""
        self.flags.append(flag)
        self.reasons.append(reason)
        self.verdict = Verdict.FAIL
        self.score = 0.0
        if invalid:
            self.valid = False

    def degrade(self, flag: str, reason: str, score: float) -> None:
        """Record a non-decisive problem: the verdict becomes ``degraded`` and the score at most ``score``."""
        self.flags.append(flag)
        self.reasons.append(reason)
        if self.verdict is Verdict.PASS:
            self.verdict = Verdict.DEGRADED
        if math.isfinite(score):
            self.score = min(self.score, max(0.0, min(1.0, score)))

    @property
    def decisive(self) -> bool:
        return self.verdict is Verdict.FAIL

    @property
    def small(self) -> Image.Image:
        """The decoded image as RGB, ANALYSIS_SIDE square (box-filtered), made once and shared by every stage."""
        if self._small is None:
            assert self.image is not None
            self._small = analysis_copy(self.image)
        return self._small

    @property
    def grey(self) -> np.ndarray:
        """Luminance (float32, 0..255) of :attr:`small`."""
        if self._grey is None:
            self._grey = np.asarray(self.small.convert("L"), dtype=np.float32)
        return self._grey

    def to_dict(self) -> dict:
        score = self.score if math.isfinite(self.score) else 0.0
        return {
            "verdict": str(self.verdict),
            "score": round(max(0.0, min(1.0, score)), 4),
            "flags": list(self.flags),
            "hashes": dict(self.hashes),
            "reference_distance": self.reference_distance,
            "reasons": list(self.reasons),
        }


def rgb_or_grey(image: Image.Image) -> Image.Image:
    """The picture in mode RGB or L (transparency and 16-bit modes were settled by ``validate.eight_bit``)."""
    return image if image.mode in ("RGB", "L") else image.convert("RGB")


def analysis_copy(image: Image.Image) -> Image.Image:
    """RGB, ANALYSIS_SIDE x ANALYSIS_SIDE: an integer ``reduce`` first (cheap), then a box resize."""
    image = rgb_or_grey(image)
    factor = max(1, min(image.width, image.height) // ANALYSIS_SIDE)
    if factor > 1:
        image = image.reduce(factor)
    if image.size != (ANALYSIS_SIDE, ANALYSIS_SIDE):
        image = image.resize((ANALYSIS_SIDE, ANALYSIS_SIDE), Image.Resampling.BOX)
    return image.convert("RGB") if image.mode != "RGB" else image


#: Whether ``score_image`` runs the pure-noise detector when the caller does not say (a caller that
#: knows its canary asks for noise-like content can switch it off).
DEFAULT_NOISE_CHECK = True

Stage = Callable[[ScoringInput, Assessment], None]


def _stages() -> list[Stage]:
    from monitor.scoring import brisque, clip, detectors, hashes, ocr, references, validate

    return [validate.decode_and_validate, *detectors.DETECTORS, hashes.perceptual_hashes, brisque.no_reference_quality,
            references.measure, references.compare, references.stuck, ocr.expected_text, clip.prompt_agreement]


def score_image(
    data: bytes, *, requested_size: tuple[int, int] | None = None, prompt: str | None = None, size_check: str = "exact",
    references: list[bytes] | None = None, noise_check: bool | None = None, **options,
) -> Assessment:
    """Run every stage in order; a stage that fails decisively ends the run.

    ``references`` (encoded pictures) become an ad-hoc profile judged whatever the seed; the
    other ``ScoringInput`` fields (``profile``, ``seed``, ``recent``, ``quality``, ...) pass as keywords.
    """
    given = ScoringInput(data=data, requested_size=requested_size, prompt=prompt, size_check=str(size_check),
                         references=list(references) if references else None, **options)
    if noise_check is not None:
        given.noise_check = noise_check
    elif "quality" in options:
        given.noise_check = given.quality.noise_check
    if given.references and given.profile is None:
        given.profile = profile_from_images(given.references, quality=given.quality)
    return run_stages(given)


def run_stages(given: ScoringInput, *, keep_image: bool = False) -> Assessment:
    assessment = Assessment(size_bytes=len(given.data))
    for stage in _stages():
        stage(given, assessment)
        if assessment.decisive:
            break
    if given.want_thumbnail and assessment.image is not None:
        from monitor.scoring.profile import thumbnail

        assessment.thumbnail = thumbnail(assessment.image)
    if not keep_image:
        release(assessment)
    return assessment


def release(assessment: Assessment) -> None:
    """Drop the decoded pixels: nothing keeps them alive past scoring."""
    assessment.image = None
    assessment._small = None
    assessment._grey = None


def reference_entry(data: bytes, *, seed: int | None = None, quality: QualityConfig | None = None,
                    with_thumbnail: bool = True):
    """Score a reference picture and return its ``ReferenceImage`` (None when it is not a usable picture)."""
    from monitor.scoring.profile import reference_from_assessment

    given = ScoringInput(data=data, quality=quality or QualityConfig(), want_thumbnail=with_thumbnail)
    assessment = run_stages(given)
    if not assessment.valid or "blank" in assessment.flags:
        return None
    return reference_from_assessment(assessment, seed, with_thumbnail=with_thumbnail)


def profile_from_images(images: list[bytes], *, quality: QualityConfig | None = None) -> ReferenceProfile:
    """An ad-hoc profile of pictures given by hand (``genstatus score --reference``): drift is always judged."""
    entries = [e for e in (reference_entry(d, quality=quality, with_thumbnail=False) for d in images) if e is not None]
    return ReferenceProfile(images=entries, always_match=True)
