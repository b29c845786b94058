"""Stage 3: perceptual hashes (64-bit pHash, dHash and wHash, colour hash), hex.

Computed on the shared 256 x 256 analysis copy: hashing reduces to 32 x 32 (pHash) or 9 x 8
(dHash) anyway, so starting from 256 px instead of the full picture changes nothing that matters
and keeps the cost constant.  Blank images all collide, which is why blankness is checked first.
"""

from __future__ import annotations

import imagehash

from monitor.scoring.phash import phash
from monitor.scoring.types import Assessment, ScoringInput

HASHES = ("phash", "dhash", "whash", "colorhash")


def perceptual_hashes(given: ScoringInput, out: Assessment) -> None:
    out.hashes.update(hash_image(out))


def hash_image(out: Assessment) -> dict[str, str]:
    luma = out.luma  # pHash, dHash and wHash convert to L first: converted once, shared
    return {
        "phash": str(phash(luma)),  # imagehash's bits, without importing scipy
        "dhash": str(imagehash.dhash(luma)),
        "whash": str(imagehash.whash(luma, image_scale=64)),  # 64-bit Haar wavelet hash (structure at 8 x 8)
        "colorhash": str(imagehash.colorhash(out.small, binbits=3)),  # hue/saturation histogram (colour drift)
    }


def distance(a: str, b: str) -> int:
    """Hamming distance between two hex hashes of the same kind."""
    return imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b)
