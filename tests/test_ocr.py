"""Text canaries (``expect_text``): OCR with RapidOCR, fuzzy matching, reasons, and the missing-extra error.

The pictures are drawn here with Pillow (its scalable default font, and DejaVu Sans Bold when the
machine has it); the OCR engine is created once for the module.  Matching and the stage's logic
are also tested without OCR, on hand-made boxes.
"""

from __future__ import annotations

import json
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from monitor.config import QualityConfig
from monitor.enums import Verdict
from monitor.scoring import ocr
from monitor.scoring.ocr import OcrUnavailable, TextBox
from monitor.scoring.types import Assessment, ScoringInput

SIDE = 1024
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
FONTS = ["default", *(["dejavu"] if DEJAVU.exists() else [])]


# ---- pictures ----------------------------------------------------------------------------------

def font(kind: str = "default", size: int = 64) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(DEJAVU), size) if kind == "dejavu" else ImageFont.load_default(size=size)


def write(image: Image.Image, lines: list[str], face: ImageFont.FreeTypeFont, fill="black",
          centre: tuple[float, float] | None = None) -> Image.Image:
    """Draw ``lines`` centred on ``centre`` (default: the middle of the picture), 1.5 line heights apart."""
    draw = ImageDraw.Draw(image)
    cx, cy = centre or (image.width / 2, image.height / 2)
    step = 1.5 * face.size
    for k, line in enumerate(lines):
        draw.text((cx, cy + (k - (len(lines) - 1) / 2) * step), line, fill=fill, font=face, anchor="mm")
    return image


def plain(lines: list[str], kind: str = "default", size: int = 64, side: int = SIDE) -> Image.Image:
    return write(Image.new("RGB", (side, side), (250, 247, 240)), lines, font(kind, size))


def busy(seed: int = 1, side: int = SIDE) -> Image.Image:
    """A gradient with a wavy texture, grain and scattered rings: lots of edges, no letters."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    base = np.stack([200 * x + 30, 150 * y + 60, 120 * (1 - x) * (1 - y) + 80], axis=-1)
    texture = 40 * np.sin(60 * x + 3 * np.sin(23 * y))[..., None] + rng.normal(0, 18, (side, side, 3))
    image = Image.fromarray(np.clip(base + texture, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        cx, cy = rng.integers(0, side, 2)
        r = int(rng.integers(10, 90))
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=4)
    return image


def assess(image: Image.Image, expect: str | None, **quality) -> Assessment:
    out = Assessment()
    out.image = image
    ocr.expected_text(ScoringInput(data=b"", expect_text=expect, quality=QualityConfig(**quality)), out)
    return out


def assert_passes(out: Assessment) -> None:
    assert out.verdict is Verdict.PASS and not out.flags, out.reasons
    assert out.metrics["text_similarity"] >= 0.8 and out.metrics["text_confidence"] >= 0.8, out.metrics


def assert_text_missing(out: Assessment, expected: str) -> str:
    assert out.verdict is Verdict.DEGRADED and out.flags == ["text_missing"], (out.flags, out.reasons)
    assert out.score <= ocr.TEXT_MISSING_SCORE
    reason = out.reasons[0]
    assert f'expected text "{expected}"' in reason, reason
    return reason


@pytest.fixture(scope="module")
def engine():
    pytest.importorskip("rapidocr_onnxruntime", reason="the OCR extra is not installed (pip install 'genstatus[ocr]')")
    return ocr.engine()


# ---- with the OCR engine -----------------------------------------------------------------------

@pytest.mark.parametrize("kind", FONTS)
def test_sign_on_plain_background_passes(engine, kind):
    assert_passes(assess(plain(["OPEN 24 HOURS"], kind), "OPEN 24 HOURS"))


def test_sign_on_busy_background_passes(engine):
    image = write(busy(), ["OPEN 24 HOURS"], font(size=64), fill="white")
    assert_passes(assess(image, "OPEN 24 HOURS"))


def test_text_split_over_two_lines_passes_and_reads_in_order(engine):
    image = plain(["OPEN 24", "HOURS"], size=72)
    assert [text.replace(" ", "") for text, _ in ocr.read_text(image)] == ["OPEN24", "HOURS"]
    assert_passes(assess(image, "OPEN 24 HOURS"))


def test_case_punctuation_and_spacing_differences_pass(engine):
    assert_passes(assess(plain(["Open, 24 hours!"]), "OPEN 24 HOURS"))
    assert_passes(assess(plain(["OPEN 24 HOURS"]), "open-24-hours."))


def test_expected_text_among_other_text_passes(engine):
    image = plain(["JOE'S DINER", "OPEN 24 HOURS", "since 1987"], size=56)
    assert_passes(assess(image, "open 24 hours"))


def test_different_text_degrades_with_what_was_read(engine):
    reason = assert_text_missing(assess(plain(["CLOSED FOR LUNCH"]), "OPEN 24 HOURS"), "OPEN 24 HOURS")
    assert 'OCR read "CLOSED FOR LUNCH"' in reason and "similarity 0." in reason and "needs 0.80" in reason


@pytest.mark.parametrize("garbled", ["OPFN 2A HOURZ", "OPEEN 224 HOURRS", "PEN 4 OURS"])
def test_garbled_lettering_degrades(engine, garbled):
    out = assess(plain([garbled]), "OPEN 24 HOURS")
    reason = assert_text_missing(out, "OPEN 24 HOURS")
    read = reason.split('OCR read "')[1].split('"')[0]
    assert read.replace(" ", "") == garbled.replace(" ", "") and "is not legible" in reason, reason
    assert 0.5 < out.metrics["text_similarity"] < 0.8


def test_one_wrong_letter_still_passes_at_the_default_threshold(engine):
    out = assess(plain(["OPEN 24 HOURZ"]), "OPEN 24 HOURS")
    assert_passes(out)
    assert out.metrics["text_similarity"] == pytest.approx(10 / 11)


def test_picture_without_text_degrades(engine):
    out = assess(plain([]), "OPEN 24 HOURS")
    reason = assert_text_missing(out, "OPEN 24 HOURS")
    assert "OCR found no legible text" in reason
    assert out.metrics == {"text_similarity": 0.0, "text_confidence": 0.0}
    # a busy picture: the OCR may make out specks, but nothing like the text
    out = assess(busy(seed=2), "OPEN 24 HOURS")
    assert_text_missing(out, "OPEN 24 HOURS")
    assert out.metrics["text_similarity"] < 0.5


def test_large_picture_is_scaled_down_and_boxes_come_back_in_its_pixels(engine):
    image = write(Image.new("RGB", (2048, 1536), "white"), ["OPEN 24 HOURS"], font(size=120), centre=(1024, 400))
    boxes = ocr.read_boxes(image)
    assert len(boxes) == 1 and boxes[0].text.replace(" ", "") == "OPEN24HOURS"
    drawn = ImageDraw.Draw(image).textbbox((1024, 400), "OPEN 24 HOURS", font=font(size=120), anchor="mm")
    box = boxes[0]
    assert abs(box.left - drawn[0]) < 40 and abs(box.right - drawn[2]) < 40, (box, drawn)
    assert box.top < 400 < box.bottom


def test_transparent_picture_is_read_over_white(engine):
    image = write(Image.new("RGBA", (700, 240), (0, 0, 0, 0)), ["OPEN 24 HOURS"], font(size=64), fill=(0, 0, 0, 255))
    assert_passes(assess(image, "OPEN 24 HOURS"))
    assert_passes(assess(image.convert("LA"), "OPEN 24 HOURS"))


def test_concurrent_reads_agree(engine):
    image = write(Image.new("RGB", (480, 160), "white"), ["OPEN 24 HOURS"], font(size=48))
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: ocr.read_text(image), range(3)))
    assert all(r == results[0] for r in results) and results[0][0][0].replace(" ", "") == "OPEN24HOURS"


def test_ocr_available_when_installed(engine):
    assert ocr.ocr_available()
    ocr.require_ocr()


# ---- without OCR: matching, reading order, reasons, the missing extra --------------------------

def box(text: str, confidence: float = 0.95, left: float = 0, top: float = 0, width: float = 200,
        height: float = 50) -> TextBox:
    return TextBox(text, confidence, left, top, left + width, top + height)


def test_normalise_ignores_case_spacing_punctuation_accents_and_look_alikes():
    assert ocr.normalise("Open, 24-hours!") == ocr.normalise("OPEN 24 HOURS") == "open24hours"
    assert ocr.normalise("Café  Crème") == ocr.normalise("CAFE CREME")
    assert ocr.normalise("H0TEL 1") == ocr.normalise("hotel I") == ocr.normalise("HOTEL l")
    assert ocr.normalise("?!. -") == ""


@pytest.mark.parametrize("reading, similarity", [
    ("OPEN 24 HOURS", 1.0), ("welcome! open24hours diner", 1.0), ("OPEN 24 HOURZ", 10 / 11),
    ("OPN 24 HORS", 9 / 11), ("OPFN 2A HOURZ", 8 / 11), ("PEN 4 OURS", 8 / 11), ("CLOSED", None), ("", 0.0),
])
def test_best_window_is_edit_distance_to_the_closest_substring(reading, similarity):
    got, start, end = ocr.best_window(ocr.normalise("OPEN 24 HOURS"), ocr.normalise(reading))
    if similarity is None:
        assert got < 0.5
    else:
        assert got == pytest.approx(similarity)
    if similarity == 1.0:
        assert ocr.normalise(reading)[start:end] == "open24hours"


def test_reading_order_is_lines_then_left_to_right():
    shuffled = [box("HOURS", top=200), box("24", left=300, top=105), box("OPEN", top=100), box("NOW", top=400)]
    assert [b.text for b in ocr.reading_order(shuffled)] == ["OPEN", "24", "HOURS", "NOW"]


def test_match_over_split_boxes_weights_confidence_by_characters():
    boxes = [box("OPEN", 0.9), box("24", 0.7, left=300), box("HOURS", 0.99, top=100)]
    match = ocr.match_text("OPEN 24 HOURS", boxes)
    assert match.similarity == 1.0 and match.matched == "OPEN 24 HOURS"
    assert match.confidence == pytest.approx((4 * 0.9 + 2 * 0.7 + 5 * 0.99) / 11)


def test_uncertain_specks_between_the_parts_do_not_dilute_the_match():
    boxes = [box("OPEN 24"), box("OO", 0.35, left=500), box("C", 0.5, left=600), box("HOURS", top=100)]
    assert ocr.match_text("OPEN 24 HOURS", boxes).similarity < 0.9
    match = ocr.match_text("OPEN 24 HOURS", boxes, min_similarity=0.8, min_confidence=0.8)
    assert match.similarity == 1.0 and match.confidence == pytest.approx(0.95) and match.matched == "OPEN 24 HOURS"
    assert match.read == "OPEN 24 OO C HOURS"


def test_stage_does_nothing_without_expected_text(monkeypatch):
    monkeypatch.setattr(ocr, "read_boxes", lambda image: pytest.fail("OCR ran without expect_text"))
    monkeypatch.setattr(ocr, "BACKEND_MODULE", "genstatus_no_such_ocr_backend")
    out = assess(Image.new("RGB", (64, 64)), None)
    assert out.verdict is Verdict.PASS and not out.flags and not out.metrics


def test_low_confidence_reading_degrades_as_not_clearly_legible(monkeypatch):
    monkeypatch.setattr(ocr, "read_boxes", lambda image: [box("OPEN 24 HOURS", 0.62)])
    out = assess(Image.new("RGB", (64, 64)), "OPEN 24 HOURS")
    reason = assert_text_missing(out, "OPEN 24 HOURS")
    assert "not clearly legible" in reason and "confidence 0.62, needs 0.80" in reason and "similarity 1.00" in reason
    assert out.metrics == {"text_similarity": 1.0, "text_confidence": pytest.approx(0.62)}
    # the thresholds are the configuration's
    assert not assess(Image.new("RGB", (64, 64)), "OPEN 24 HOURS", text_confidence=0.6).flags


def test_reason_quotes_long_readings_truncated(monkeypatch):
    long = " ".join(["LOREM IPSUM DOLOR SIT AMET"] * 10)
    monkeypatch.setattr(ocr, "read_boxes", lambda image: [box(long)])
    reason = assess(Image.new("RGB", (64, 64)), "OPEN 24 HOURS").reasons[0]
    quoted = reason.split('OCR read "')[1].split('"')[0]
    assert quoted.endswith("…") and len(quoted) == ocr.QUOTE_CHARS


def test_missing_extra_raises_and_degrades_nothing(monkeypatch):
    monkeypatch.setattr(ocr, "BACKEND_MODULE", "genstatus_no_such_ocr_backend")
    monkeypatch.setattr(ocr, "_engine", None)
    assert not ocr.ocr_available()
    with pytest.raises(OcrUnavailable) as caught:
        ocr.require_ocr()
    assert str(caught.value) == "expect_text needs the OCR extra: pip install 'genstatus[ocr]'"
    out = Assessment()
    out.image = plain(["OPEN 24 HOURS"], side=128)
    with pytest.raises(OcrUnavailable, match=r"pip install 'genstatus\[ocr\]'"):
        ocr.expected_text(ScoringInput(data=b"", expect_text="OPEN 24 HOURS"), out)
    assert out.verdict is Verdict.PASS and not out.flags and not out.reasons


def test_broken_install_names_the_missing_piece(monkeypatch):
    def import_module(name):
        raise ModuleNotFoundError("No module named 'cv2'", name="cv2")

    monkeypatch.setattr(ocr, "importlib", types.SimpleNamespace(import_module=import_module))
    monkeypatch.setattr(ocr, "_engine", None)
    with pytest.raises(OcrUnavailable, match=r"missing module 'cv2'.*genstatus\[ocr\]"):
        ocr.engine()


def test_engine_is_created_once_for_all_threads(monkeypatch):
    created = []

    class SlowEngine:
        def __init__(self, **options):
            time.sleep(0.05)
            created.append(options)

    monkeypatch.setattr(ocr, "_backend", lambda: SlowEngine)
    monkeypatch.setattr(ocr, "_engine", None)
    start = threading.Barrier(8)

    def get(_):
        start.wait()
        return ocr.engine()

    with ThreadPoolExecutor(8) as pool:
        engines = list(pool.map(get, range(8)))
    assert len(created) == 1 and all(e is engines[0] for e in engines)
    assert created[0]["det_limit_type"] == "max"


# -- the command line and the config ---------------------------------------------------------------


def test_score_command_checks_expected_text(engine, tmp_path, capsys):
    from monitor.cli import main

    path = tmp_path / "sign.png"
    write(busy(), ["OPEN 24 HOURS"], font(size=64), fill="white").save(path)  # a picture, not a flat card
    assert main(["score", str(path), "--expect-text", "OPEN 24 HOURS", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "pass"
    assert main(["score", str(path), "--expect-text", "CLOSED FOR LUNCH", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert "text_missing" in data["flags"] and any("CLOSED FOR LUNCH" in r for r in data["reasons"])


def test_check_config_reports_expect_text_without_the_ocr_package(tmp_path, capsys, monkeypatch):
    from monitor.cli import main
    from monitor.scoring import ocr

    config = tmp_path / "genstatus.yaml"
    config.write_text("canaries:\n  - {id: sign, prompt: a shop sign, expect_text: OPEN 24 HOURS}\n"
                      "services:\n  - {id: s, provider: openai, api_key: k, canaries: [sign]}\n")
    assert main(["check-config", "-c", str(config)]) == (0 if ocr.ocr_available() else 2)
    capsys.readouterr()
    monkeypatch.setattr(ocr, "ocr_available", lambda: False)
    assert main(["check-config", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "canaries[0].expect_text" in err and "genstatus[ocr]" in err
