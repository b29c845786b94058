"""Stage 4: comparison with the canary's own reference pictures (when given).

* Drift: the Hamming distance of pHash and dHash to each reference, averaged over the two
  hashes, minimum over the references, is ``reference_distance``.  Re-encoding, small
  resizes and mild blur move these hashes by <= 6 bits; unrelated pictures are >= 16 apart,
  so the drift cut-off sits between, at > 10 bits.
* Relative sharpness: the variance of the Laplacian depends strongly on content, so it is
  compared with the references' own (median), not with a fixed number: below
  ``BLUR_RATIO`` of the references' the picture is blurrier than this canary's normal.
  It is measured on a 128 px copy, where sensor-like grain (which any re-encode removes) is
  averaged away and what remains is the picture's own edges.
Heavy JPEG compression is read from the file's quantisation tables (detectors.heavy_jpeg):
content-independent, so it needs no reference.
"""

from __future__ import annotations

import io
import statistics
import warnings

import numpy as np
from PIL import Image

from monitor.scoring.hashes import distance, hash_image
from monitor.scoring.pipeline import Assessment, ScoringInput
from monitor.scoring.validate import MAX_PIXELS

DRIFT_BITS = 10
BLUR_RATIO = 0.5


def laplacian_variance(grey: np.ndarray) -> float:
    lap = (grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1])
    return float(lap.var())


def _coarse(grey: np.ndarray) -> np.ndarray:
    return grey.reshape(grey.shape[0] // 2, 2, grey.shape[1] // 2, 2).mean(axis=(1, 3))


def _load(data: bytes) -> Assessment | None:
    """A reference decoded into an Assessment (analysis copy only); None if it is not a usable image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                return None
            image.load()
        ref = Assessment(size_bytes=len(data), format=image.format)
        ref.image = image
        ref.small  # noqa: B018 - builds the analysis copy, or fails here
        return ref
    except Exception:  # noqa: BLE001 - a bad reference is skipped, never fatal
        return None


def compare(given: ScoringInput, out: Assessment) -> None:
    if not given.references:
        return
    refs = [ref for ref in map(_load, given.references) if ref is not None]
    if not refs:
        out.reasons.append("no usable reference picture: reference checks skipped")
        return
    distances = []
    for ref in refs:
        ref_hashes = hash_image(ref)
        bits = [distance(out.hashes[k], ref_hashes[k]) for k in ("phash", "dhash")]
        distances.append(sum(bits) / 2)
    nearest = min(distances)
    out.reference_distance = int(round(nearest))
    if nearest > DRIFT_BITS:
        out.degrade("drift", f"the image differs from every reference picture ({out.reference_distance} bits of 64 "
                             f"apart, > {DRIFT_BITS}): different content than this canary normally gives",
                    1.0 - min(nearest, 32) / 32)
    sharp = laplacian_variance(_coarse(out.grey))
    normal = statistics.median(laplacian_variance(_coarse(ref.grey)) for ref in refs)
    ratio = sharp / normal if normal > 0 else 1.0
    out.metrics["sharpness_ratio"] = ratio
    if ratio < BLUR_RATIO:
        out.degrade("blurry", f"the image is much less sharp than the references "
                              f"({ratio:.0%} of their detail): blurred or upscaled output", 0.3 + ratio)
