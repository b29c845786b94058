"""Image scoring: decode and validate, degenerate-output detectors, perceptual hashes, reference
profiles, the no-reference score and optional plug-ins (OCR, CLIP) -- stages behind ``types``,
run cheapest first by ``pipeline``.
"""

from __future__ import annotations

from monitor.scoring.pipeline import score_image
from monitor.scoring.types import Assessment, ScoringInput

__all__ = ["Assessment", "ScoringInput", "score_image"]
