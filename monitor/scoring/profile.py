"""Reference profiles: what one (service, canary) normally returns.

A profile is built by ``genstatus baseline`` from N sample runs (or, for ``genstatus score
--reference``, from the given pictures).  For each reference it keeps the perceptual hashes,
the cheap image statistics of :func:`image_statistics` and a small thumbnail.  A new image is
then judged against this service's own normal:

* **drift** -- pHash/dHash distance to every reference above ``quality.drift_bits``.  Only
  meaningful when the image was made from the same fixed seed as the references (a provider
  that honours seeds returns the same picture for the same request), so the check runs only
  then (or always, for references given by hand).
* **outside the normal** -- each statistic (sharpness, no-reference quality, colourfulness,
  entropy, colour histogram) is compared with the references' median in robust deviations
  (MAD scaled to a standard deviation, with a floor per statistic so that a handful of very
  similar references does not make the normal absurdly narrow).  Beyond
  ``quality.profile_tolerance`` deviations the image is ``degraded`` with the reason.
  This makes content-dependent measures usable: a foggy canary is soft *every* time.
"""

from __future__ import annotations

import io
import math
import statistics
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

#: statistic -> (floor of its spread, which direction is bad: -1 low, +1 high, 0 both, label)
STATISTICS: dict[str, tuple[float, int, str]] = {
    "log_sharpness": (0.35, -1, "sharpness"),
    "brisque": (6.0, +1, "no-reference quality (BRISQUE, lower is better)"),
    "colourfulness": (4.0, 0, "colourfulness"),
    "entropy": (0.5, -1, "tonal entropy"),
    "colour_distance": (0.12, +1, "colour histogram distance"),
}
MIN_PROFILE_SAMPLES = 3  # fewer references: only the hash checks run
THUMBNAIL_SIDE = 160


@dataclass
class RecentOutput:
    """A previous output of the same canary: its seed and hashes (from the database)."""

    seed: int | None
    hashes: dict[str, str]
    sha256: str | None = None


@dataclass
class ReferenceImage:
    hashes: dict[str, str]
    stats: dict[str, float]
    histogram: list[float] = field(default_factory=list)
    seed: int | None = None
    thumbnail: bytes | None = None
    sha256: str | None = None


@dataclass
class ReferenceProfile:
    images: list[ReferenceImage]
    #: the fixed seed every reference was made with (drift is judged only for that seed); None: mixed/unknown
    seed: int | None = None
    #: judge drift whatever the seed (references given by hand)
    always_match: bool = False

    def drift_applies(self, seed: int | None) -> bool:
        return self.always_match or (self.seed is not None and seed == self.seed)

    def same_picture_expected(self, seed: int | None) -> bool:
        """True when the image should be (a re-encode of) one of the references: same fixed seed or
        references given by hand.  Otherwise every output is a new picture of the prompt."""
        return self.drift_applies(seed)

    @property
    def mean_histogram(self) -> np.ndarray | None:
        hists = [np.asarray(r.histogram, np.float64) for r in self.images if r.histogram]
        return np.mean(hists, axis=0) if hists else None

    def normal(self, name: str) -> tuple[float, float, int] | None:
        """(median, spread, n) of a statistic over the references, None with too few samples."""
        if name == "colour_distance":
            values = self._colour_distances()
        else:
            values = [r.stats[name] for r in self.images if name in r.stats and math.isfinite(r.stats[name])]
        if len(values) < MIN_PROFILE_SAMPLES:
            return None
        median = statistics.median(values)
        mad = statistics.median(abs(v - median) for v in values) * 1.4826
        floor = STATISTICS[name][0]
        if name == "colourfulness":
            floor = max(floor, 0.15 * abs(median))
        return median, max(mad, floor), len(values)

    def _colour_distances(self) -> list[float]:
        """Each reference's colour distance to the mean of the others (leave-one-out)."""
        hists = [np.asarray(r.histogram, np.float64) for r in self.images if r.histogram]
        if len(hists) < MIN_PROFILE_SAMPLES:
            return []
        return [hellinger(h, np.mean([x for j, x in enumerate(hists) if j != i], axis=0)) for i, h in enumerate(hists)]


# -- statistics ------------------------------------------------------------------------


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """64-bin joint colour histogram (4 levels per channel), normalised to sum 1."""
    q = (rgb >> 6).astype(np.int32)
    codes = (q[..., 0] << 4) | (q[..., 1] << 2) | q[..., 2]
    hist = np.bincount(codes.ravel(), minlength=64).astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def hellinger(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(max(0.0, 1.0 - float(np.sum(np.sqrt(a * b))))))


def laplacian_variance(grey: np.ndarray) -> float:
    lap = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1]
    return float(lap.var())


def coarse(grey: np.ndarray) -> np.ndarray:
    """Half resolution (2x2 means): grain that any re-encode removes is averaged away."""
    return grey.reshape(grey.shape[0] // 2, 2, grey.shape[1] // 2, 2).mean(axis=(1, 3))


def image_statistics(small_rgb: np.ndarray, grey: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """The cheap statistics of a 256 px analysis copy, and its colour histogram."""
    rgb = small_rgb.astype(np.float32)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    colourfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))  # Hasler-Suesstrunk
    counts = np.bincount(grey.astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    sharpness = laplacian_variance(coarse(grey))
    stats = {"log_sharpness": math.log(sharpness + 1.0), "colourfulness": colourfulness, "entropy": entropy}
    return stats, colour_histogram(small_rgb)


def thumbnail(image: Image.Image, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small WebP of the picture (aspect kept) for pages; a few kB."""
    from PIL import WebPImagePlugin  # noqa: F401 - registers WEBP; else save() first imports all ~40 Pillow plugins

    copy = image.convert("RGB") if image.mode != "RGB" else image.copy()
    factor = max(1, min(copy.width, copy.height) // (2 * side))
    if factor > 1:
        copy = copy.reduce(factor)
    copy.thumbnail((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    copy.save(out, "WEBP", quality=80, method=4)
    return out.getvalue()


def reference_from_assessment(assessment, seed: int | None = None, *, with_thumbnail: bool = True) -> ReferenceImage:
    """A reference entry from a scored image (needs the assessment's decoded image still attached)."""
    stats = {k: assessment.metrics[k] for k in STATISTICS if k in assessment.metrics}
    hist = assessment.metrics_histogram
    return ReferenceImage(
        hashes=dict(assessment.hashes), stats=stats, histogram=[float(x) for x in hist] if hist is not None else [],
        seed=seed, thumbnail=assessment.thumbnail if with_thumbnail else None, sha256=assessment.sha256,
    )


def profile_seed(images: list[ReferenceImage]) -> int | None:
    seeds = {r.seed for r in images}
    return seeds.pop() if len(seeds) == 1 else None
