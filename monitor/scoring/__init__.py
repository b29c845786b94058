"""Image scoring: decode and validate, degenerate-output detectors, perceptual hashes, reference
profiles, the no-reference score and optional plug-ins (OCR, CLIP) -- stages behind ``types``,
run cheapest first by ``pipeline``.

The names below load on first use (PEP 562), so importing a submodule such as ``plugins`` for
``check-config`` does not pull in numpy and Pillow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.scoring.pipeline import score_image
    from monitor.scoring.types import Assessment, ScoringInput

__all__ = ["Assessment", "ScoringInput", "score_image"]


def __getattr__(name: str) -> Any:
    if name == "score_image":
        from monitor.scoring.pipeline import score_image

        return score_image
    if name in ("Assessment", "ScoringInput"):
        from monitor.scoring import types

        return getattr(types, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
