"""Aspect ratios for providers that take a ratio (``"16:9"``) instead of the canary's pixels.

``RATIO_TOLERANCE`` is the tolerance scoring applies with ``SizeCheck.ASPECT``: a ratio
further than that from the canary's cannot pass the size check.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

RATIO_TOLERANCE = 0.03
# aspect ratios image models commonly accept
COMMON_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")


def ratio_value(text: str) -> float:
    width, _, height = text.partition(":")
    return int(width) / int(height)


def close_ratio(value: float, wanted: float) -> bool:
    """Whether ``value`` is within scoring's tolerance of ``wanted``."""
    return abs(value / wanted - 1) <= RATIO_TOLERANCE


def nearest_ratio(width: int, height: int, ratios: Iterable[str]) -> str:
    """The ratio of ``ratios`` closest to ``width:height`` (by log distance: 2:1 and 1:2 are as far from 1:1)."""
    wanted = width / height
    return min(ratios, key=lambda ratio: abs(math.log(ratio_value(ratio) / wanted)))


def reduced_ratio(width: int, height: int) -> str:
    """``width:height`` in lowest terms (1024x576 -> ``16:9``)."""
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def common_ratio(width: int, height: int, ratios: Iterable[str] = COMMON_RATIOS) -> str:
    """The common ratio within tolerance of ``width:height``, else the exact reduced ratio."""
    best = nearest_ratio(width, height, ratios)
    return best if close_ratio(ratio_value(best), width / height) else reduced_ratio(width, height)
