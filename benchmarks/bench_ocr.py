"""OCR for text canaries (monitor/scoring/ocr.py): cost per picture and whether the sign is read.

Speed: the ``expected_text`` stage (scale to 768 px, RapidOCR detection + recognition, matching)
on a decoded 1024 x 1024 picture, over Pillow's decode of the same picture as PNG, interleaved in
the same run (medians: OCR time swings with whatever else the machine runs).
Two pictures: a fractal landscape with a sign ("OPEN 24 HOURS") drawn on it, and the same
landscape without text (mostly detection: nothing, or a speck or two, to recognise).  Cold start:
importing the OCR extra and creating the engine, in a fresh interpreter (once per process).
"""

from __future__ import annotations

import io
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from benchmarks.quality_set import encode, picture
from monitor.config import QualityConfig
from monitor.scoring import ocr
from monitor.scoring.types import Assessment, ScoringInput

SIGN = "OPEN 24 HOURS"
COLD = ("import time; from monitor.scoring import ocr; t0 = time.perf_counter(); ocr.require_ocr(); "
        "t1 = time.perf_counter(); ocr.create_engine(); t2 = time.perf_counter(); print(t1 - t0, t2 - t1)")


def _sign_picture(side: int = 1024) -> Image.Image:
    image = picture("landscape", 0, side).convert("RGB")
    draw = ImageDraw.Draw(image)
    face = ImageFont.load_default(size=side // 14)
    box = draw.textbbox((side / 2, side / 3), SIGN, font=face, anchor="mm")
    draw.rectangle((box[0] - 24, box[1] - 18, box[2] + 24, box[3] + 18), fill=(245, 240, 225),
                   outline=(60, 40, 30), width=6)
    draw.text((side / 2, side / 3), SIGN, fill=(150, 20, 20), font=face, anchor="mm")
    return image


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _stage(image: Image.Image) -> Assessment:
    out = Assessment()
    out.image = image
    ocr.expected_text(ScoringInput(data=b"", expect_text=SIGN, quality=QualityConfig()), out)
    return out


def run(quick: bool = False) -> list[dict[str, Any]]:
    if not ocr.ocr_available():
        return [dict(name="OCR", value="n/a", unit="", note=f"skipped: {ocr.INSTALL_HINT}")]
    rounds = 3 if quick else 10
    cold = subprocess.run([sys.executable, "-c", COLD], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    import_s, create_s = map(float, cold.stdout.split())
    figures = [
        dict(name="cold start: import OCR extra", value=1000 * import_s, unit="ms",
             note="fresh interpreter: rapidocr, onnxruntime, OpenCV"),
        dict(name="cold start: create engine", value=1000 * create_s, unit="ms", note="once per process"),
    ]
    ocr.engine()
    with_sign, without = encode(_sign_picture()), encode(picture("landscape", 0, 1024).convert("RGB"))
    decode_t: list[float] = []
    sign_t: list[float] = []
    plain_t: list[float] = []
    similarity = confidence = 0.0
    blank = _decode(without)
    for r in range(rounds + 1):
        t0 = time.perf_counter()
        image = _decode(with_sign)
        t1 = time.perf_counter()
        out = _stage(image)
        t2 = time.perf_counter()
        _stage(blank)
        t3 = time.perf_counter()
        if r >= 1:  # warm-up
            decode_t.append(t1 - t0)
            sign_t.append(t2 - t1)
            plain_t.append(t3 - t2)
        similarity, confidence = out.metrics["text_similarity"], out.metrics["text_confidence"]
    decode, sign, plain = (statistics.median(v) for v in (decode_t, sign_t, plain_t))
    return figures + [
        dict(name="Pillow decode 1024x1024 PNG", value=1000 * decode, unit="ms", note=f"median of {rounds} runs"),
        dict(name="OCR stage, picture with a sign", value=1000 * sign, unit="ms",
             note="decoded picture: scale to 768 px, detect, recognise, match"),
        dict(name="OCR stage, picture without text", value=1000 * plain, unit="ms",
             note="same landscape, no sign: little or nothing to recognise"),
        dict(name="OCR (sign) / decode", value=sign / decode, unit="x"),
        dict(name="OCR (no text) / decode", value=plain / decode, unit="x"),
        dict(name="sign read: similarity", value=similarity, unit="", note=f"{SIGN!r}, needs >= 0.80"),
        dict(name="sign read: confidence", value=confidence, unit="", note="needs >= 0.80"),
    ]
