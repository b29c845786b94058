"""Stage 2: degenerate-output detectors (the foundation has the blank/uniform one)."""

from __future__ import annotations

import numpy as np

from monitor.scoring.pipeline import Assessment, ScoringInput

# Standard deviation of 8-bit luminance on a 64x64 thumbnail; a real picture is far above this,
# while a flat fill (even with JPEG noise or a faint gradient) stays below it.
UNIFORM_STDDEV = 2.0


def blank_or_uniform(given: ScoringInput, out: Assessment) -> None:
    assert out.image is not None
    thumb = out.image.convert("L").resize((64, 64))
    pixels = np.asarray(thumb, dtype=np.float32)
    spread = float(pixels.std())
    if spread < UNIFORM_STDDEV:
        mean = float(pixels.mean())
        shade = "black" if mean < 16 else ("white" if mean > 239 else "a single colour")
        out.fail("blank", f"the image is blank: almost uniform {shade} (luminance spread {spread:.2f})")
