"""Image scoring quality and speed on the generated evaluation set (benchmarks/quality_set.py).

Per degraded class: the share caught (verdict not ``pass``); on clean variants: the false-alarm
rate.  Blur, heavy JPEG, swapped content and downscale-upscale are scored with the clean
original as the reference; the other classes without.  Speed: decode + validation + detectors
+ pHash/dHash (``score_image`` without references) over Pillow's decode alone of the same
1024 x 1024 PNG, interleaved in the same run.
"""

from __future__ import annotations

import io
import time
from collections import defaultdict
from typing import Any

from PIL import Image

from benchmarks.quality_set import NEEDS_REFERENCE, encode, picture, variants
from monitor.enums import Verdict
from monitor.scoring import score_image


def run(quick: bool = False) -> list[dict[str, Any]]:
    caught: dict[str, list[bool]] = defaultdict(list)
    for s in variants(per_family=2 if quick else 5):
        refs = [s.reference] if (s.clean or s.variant in NEEDS_REFERENCE) else None
        size = s.requested_size if s.variant == "wrong_size" or s.clean and s.variant != "resize_0.9" else None
        a = score_image(s.data, requested_size=size, references=refs, noise_check=True)
        caught["clean" if s.clean else s.variant].append(a.verdict is not Verdict.PASS)
    figures = []
    for name, hits in sorted(caught.items()):
        rate = 100 * sum(hits) / len(hits)
        if name == "clean":
            figures.append(dict(name="false alarms on clean variants", value=rate, unit="%",
                                note=f"{len(hits)} variants (PNG, JPEG q85, WebP q90, 0.9x resize); aim <= 2 %"))
        else:
            figures.append(dict(name=f"detected: {name}", value=rate, unit="%", note=f"{len(hits)} variants"))
    figures += _speed(10 if quick else 40)
    return figures


def _speed(rounds: int) -> list[dict[str, Any]]:
    data = encode(picture("landscape", 0, 1024))  # default PNG compression, as providers send
    decode_t = score_t = 0.0
    for r in range(rounds + 2):
        t0 = time.perf_counter()
        image = Image.open(io.BytesIO(data))
        image.load()
        t1 = time.perf_counter()
        score_image(data, noise_check=True)
        t2 = time.perf_counter()
        if r >= 2:  # warm-up
            decode_t += t1 - t0
            score_t += t2 - t1
    return [
        dict(name="Pillow decode 1024x1024 PNG", value=1000 * decode_t / rounds, unit="ms", note=f"{rounds} runs"),
        dict(name="score_image (no references)", value=1000 * score_t / rounds, unit="ms",
             note="decode + validation + detectors + pHash/dHash/wHash/colour hash"),
        dict(name="score / decode", value=score_t / decode_t, unit="x", note="aim <= 2.5"),
    ]
