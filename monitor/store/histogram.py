"""Fixed log-spaced latency buckets, so percentiles merge across regions and periods.

Bucket 0 holds latencies below 100 ms; bucket i (1..N-2) holds [B(i-1), B(i)) with
B(i) = 100 ms * 2**(i/3) (about 26 % wide, so a percentile read from the buckets is
within ~13 % of the true value); the last bucket holds everything from ~2.9 h up.
Summing the bucket counts of any set of rollup rows gives the merged histogram.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

BASE_MS = 100.0
STEPS_PER_DOUBLING = 3
N_BUCKETS = 52
# upper bound (exclusive) of bucket i, for i in 0..N-2; the last bucket is open-ended
UPPER_BOUNDS_MS = [BASE_MS * 2 ** (i / STEPS_PER_DOUBLING) for i in range(N_BUCKETS - 1)]
COLUMN_NAMES = [f"h{i:02d}" for i in range(N_BUCKETS)]


def bucket_index(latency_ms: float) -> int:
    if latency_ms < BASE_MS:
        return 0
    index = min(int(math.log2(latency_ms / BASE_MS) * STEPS_PER_DOUBLING) + 1, N_BUCKETS - 1)
    # float rounding can land one off at the exact bounds
    while index < N_BUCKETS - 1 and latency_ms >= UPPER_BOUNDS_MS[index]:
        index += 1
    while index > 1 and latency_ms < UPPER_BOUNDS_MS[index - 1]:
        index -= 1
    return index


def bucket_range(index: int) -> tuple[float, float]:
    low = 0.0 if index == 0 else UPPER_BOUNDS_MS[index - 1]
    high = UPPER_BOUNDS_MS[index] if index < N_BUCKETS - 1 else math.inf
    return low, high


def percentile(counts: Sequence[int], fraction: float) -> float | None:
    """The ``fraction`` (0..1) percentile of a bucket histogram, or None when it is empty.

    Within the bucket that holds the rank, interpolate geometrically between its bounds.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low, high = bucket_range(index)
            if index == 0:
                low = 1.0
            if math.isinf(high):
                return low
            within = (rank - seen) / count
            return low * (high / low) ** within
        seen += count
    return bucket_range(len(counts) - 1)[0]
