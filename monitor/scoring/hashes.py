"""Stage 3: perceptual hashes (64-bit pHash and dHash, hex)."""

from __future__ import annotations

import imagehash

from monitor.scoring.pipeline import Assessment, ScoringInput


def perceptual_hashes(given: ScoringInput, out: Assessment) -> None:
    assert out.image is not None
    image = out.image.convert("RGB")
    out.hashes["phash"] = str(imagehash.phash(image))
    out.hashes["dhash"] = str(imagehash.dhash(image))
