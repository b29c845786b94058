"""What every scoring stage reads and writes: the input, the assessment, the shared analysis copy.

Stages depend on this module only, never on the pipeline that runs them.
"""

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
    #: measure every metric; False (the runner): the metric-only stages (BRISQUE, the profile statistics)
    #: run only when a reference profile reads their figures -- the verdict is the same either way
    all_metrics: bool = True
    #: (sha256, thumbnail) of this canary's previous output: reused when the image is the same file
    #: (a fixed seed gives the same picture run after run), instead of encoding the same thumbnail again
    previous_thumbnail: tuple[str, bytes] | None = None


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
    _luma: Image.Image | None = field(default=None, repr=False)
    _rgb32: np.ndarray | None = field(default=None, repr=False)

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
    def luma(self) -> Image.Image:
        """:attr:`small` in mode L (converted once: the detectors and three of the hashes read it)."""
        if self._luma is None:
            self._luma = self.small.convert("L")
        return self._luma

    @property
    def grey(self) -> np.ndarray:
        """Luminance (float32, 0..255) of :attr:`small`."""
        if self._grey is None:
            self._grey = np.asarray(self.luma, dtype=np.float32)
        return self._grey

    @property
    def rgb32(self) -> np.ndarray:
        """:attr:`small` as float32 (H x W x 3), made once for the detectors that need floats."""
        if self._rgb32 is None:
            self._rgb32 = np.asarray(self.small, dtype=np.float32)
        return self._rgb32

    def release(self) -> None:
        """Drop the decoded pixels and every copy made of them: nothing keeps them alive past scoring."""
        self.image = self._small = self._luma = None
        self._grey = self._rgb32 = None

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


#: one step of the pipeline: reads the input, adds to the assessment
Stage = Callable[[ScoringInput, Assessment], None]
