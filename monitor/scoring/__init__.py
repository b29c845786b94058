"""Image scoring (DESIGN.md §8): a pipeline of stages, cheapest first, stopping on a decisive failure.

This is the minimal pipeline of the foundation: decode and validate, the blank/uniform
detector, and perceptual hashes.  Later stages (degenerate-output detectors, reference
sets, the local reference model) are added to ``STAGES`` without changing callers.
"""

from __future__ import annotations

from monitor.scoring.pipeline import Assessment, ScoringInput, score_image

__all__ = ["Assessment", "ScoringInput", "score_image"]
