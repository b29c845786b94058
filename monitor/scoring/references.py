"""Stages comparing an image with what this canary normally gives (see ``profile``).

* ``measure``: the cheap statistics every profile keeps (and the colour histogram).
* ``compare``: against the (service, canary) reference profile, when there is one:
  - drift: the Hamming distance of pHash and dHash to each reference, averaged over the two
    hashes, minimum over the references, is ``reference_distance``.  Re-encoding, small
    resizes and mild blur move these hashes by <= 6 bits; unrelated pictures are >= 16 apart,
    so the default cut-off ``quality.drift_bits`` sits between, at > 10 bits.  Judged only for
    images made from the references' own fixed seed (``ReferenceProfile.drift_applies``).
  - relative sharpness: the variance of the Laplacian depends strongly on content, so it is
    compared with the references' own (median): below ``quality.blur_ratio`` of theirs the
    picture is blurrier than this canary's normal.  Measured on a 128 px copy, where
    sensor-like grain (which any re-encode removes) is averaged away.  When the image is a new
    picture of the prompt rather than the references' own (random or unreproduced seeds), the
    sharpness of different outputs varies 3-7x (benchmarks, profile section), so the cut-off is
    ``quality.blur_ratio_any_seed`` (0.15) instead.
  - every other statistic against the references' distribution (``ReferenceProfile.normal``).
* ``stuck``: the same picture again for a different seed (or for ``seed: random``) is a cached
  or fallback image, not a generation.
Heavy JPEG compression is read from the file's quantisation tables (detectors.heavy_jpeg):
content-independent, so it needs no reference.
"""

from __future__ import annotations

import math

import numpy as np

from monitor.scoring.hashes import distance
from monitor.scoring.profile import STATISTICS, hellinger, image_statistics
from monitor.scoring.types import Assessment, ScoringInput


def measure(given: ScoringInput, out: Assessment) -> None:
    stats, hist = image_statistics(np.asarray(out.small, dtype=np.uint8), out.grey)
    out.metrics.update(stats)
    out.metrics_histogram = hist


def hash_distance(a: dict[str, str], b: dict[str, str]) -> float | None:
    """Mean pHash/dHash Hamming distance in bits, None when either lacks them."""
    try:
        return (distance(a["phash"], b["phash"]) + distance(a["dhash"], b["dhash"])) / 2
    except (KeyError, ValueError, TypeError):
        return None


def compare(given: ScoringInput, out: Assessment) -> None:
    profile = given.profile
    if profile is None or not profile.images:
        return
    limits = given.quality
    if profile.drift_applies(given.seed):
        distances = [d for d in (hash_distance(out.hashes, r.hashes) for r in profile.images) if d is not None]
        if distances:
            nearest = min(distances)
            out.reference_distance = round(nearest)
            if nearest > limits.drift_bits:
                out.degrade("drift", f"the image differs from every reference picture ({out.reference_distance} bits "
                                     f"of 64 apart, > {limits.drift_bits}): different content than this canary "
                                     "normally gives (model or pipeline changed?)", 1.0 - min(nearest, 32) / 32)
    sharp = [r.stats["log_sharpness"] for r in profile.images if "log_sharpness" in r.stats]
    if sharp and "log_sharpness" in out.metrics:
        typical = math.exp(float(np.median(sharp))) - 1.0
        ratio = (math.exp(out.metrics["log_sharpness"]) - 1.0) / typical if typical > 0 else 1.0
        out.metrics["sharpness_ratio"] = ratio
        # A new picture of the prompt (no reproduced seed) is legitimately 3-7x more or less
        # detailed than another; only a picture of the same seed is held to ``blur_ratio``.
        cut = limits.blur_ratio if profile.same_picture_expected(given.seed) else limits.blur_ratio_any_seed
        if ratio < cut:
            out.degrade("blurry", f"the image is much less sharp than the references "
                                  f"({ratio:.0%} of their detail): blurred or upscaled output", 0.3 + ratio)
    mean_hist = profile.mean_histogram
    hist = getattr(out, "metrics_histogram", None)
    if mean_hist is not None and hist is not None:
        out.metrics["colour_distance"] = hellinger(hist, mean_hist)
    for name, (_, direction, label) in STATISTICS.items():
        if name == "log_sharpness" or name not in out.metrics:
            continue
        normal = profile.normal(name)
        if normal is None:
            continue
        median, spread, n = normal
        deviation = (out.metrics[name] - median) / spread
        out.metrics[f"{name}_deviation"] = deviation
        if abs(deviation) > limits.profile_tolerance and (direction == 0 or math.copysign(1, deviation) == direction):
            side = "above" if deviation > 0 else "below"
            out.degrade("outside_profile", f"{label} {out.metrics[name]:.2f} is far {side} this canary's normal "
                                           f"({median:.2f} typical over {n} references, {abs(deviation):.1f} "
                                           f"deviations away)", 0.4)


def stuck(given: ScoringInput, out: Assessment) -> None:
    """The same picture for a different seed (or again under ``seed: random``): a cache or fallback image."""
    for previous in given.recent:
        if not (given.seed_random or (given.seed is not None and previous.seed is not None
                                      and given.seed != previous.seed)):
            continue
        same_file = previous.sha256 is not None and previous.sha256 == out.sha256
        bits = hash_distance(out.hashes, previous.hashes)
        if same_file or (bits is not None and bits <= given.quality.stuck_bits):
            what = "the identical file" if same_file else f"the same picture ({bits:g} bits apart)"
            seeds = ("although every run should draw a new picture" if given.seed_random
                     else f"for seed {given.seed} (previous run: seed {previous.seed})")
            out.degrade("stuck_output", f"stuck output: {what} as an earlier run, {seeds} -- the provider is "
                                        "serving a cached or fallback image instead of generating", 0.2)
            return
