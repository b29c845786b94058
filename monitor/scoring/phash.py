"""The 64-bit perceptual hash (pHash) of ``imagehash.phash``, with the DCT as two small matrix products.

``imagehash.phash`` imports ``scipy.fftpack`` for its DCT, and importing scipy costs a one-shot
``genstatus score`` more than all of its scoring.  The hash needs only the 8 x 8 lowest frequencies of
a 32 x 32 DCT-II, which is ``C @ X @ C.T`` with the 8 x 32 cosine matrix ``C`` (scipy's unnormalised
convention: 2 cos(pi k (2n + 1) / 2N)).  Both sums are exact up to rounding; where the exact values
tie with the median (flat or symmetric pictures make coefficients exactly 0, which scipy returns as
0) a difference within rounding counts as equal, so the bits are the same as imagehash's
(``tests/test_phash.py`` compares them on renders, photographs-like noise, flat and striped pictures).
"""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

HASH_SIZE = 8
SIDE = HASH_SIZE * 4  # imagehash's highfreq_factor
_COSINES = 2 * np.cos(np.pi * np.arange(HASH_SIZE)[:, None] * (2 * np.arange(SIDE) + 1) / (2 * SIDE))
#: differences below this share of the largest coefficient are rounding (about 1e-14 of it), not content
_ROUNDING = 1e-11


def phash(image: Image.Image) -> imagehash.ImageHash:
    """``imagehash.phash(image)`` without scipy: the same 64 bits."""
    pixels = np.asarray(image.convert("L").resize((SIDE, SIDE), Image.Resampling.LANCZOS), dtype=np.float64)
    low = _COSINES @ pixels @ _COSINES.T
    tolerance = _ROUNDING * max(1.0, float(np.abs(low).max()))
    return imagehash.ImageHash(low - np.median(low) > tolerance)
