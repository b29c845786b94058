"""Optional stage: does the picture show the text the canary asked for (``expect_text``)?  OCR.

Image generators are often asked for lettering ("a shop sign that says OPEN 24 HOURS") and often
get it wrong in a characteristic way: letters that look right from afar but read "OPFN 2A HOURZ".
A canary with ``expect_text`` checks that the text is *legible*: an OCR engine reads the picture
and the expected text must be found in what it read.

The engine is RapidOCR (PaddleOCR's PP-OCRv4 detection and recognition models, run by
onnxruntime), from the ``ocr`` extra: ``pip install 'genstatus[ocr]'``.  Its ONNX models ship
inside the wheel, so nothing is downloaded, ever.  Without the extra, a canary with
``expect_text`` cannot be judged: :func:`expected_text` raises :class:`OcrUnavailable` rather
than letting the text go unchecked, and :func:`ocr_available` / :func:`require_ocr` let the
configuration check and the CLI say so before the first run.

How a picture is read:

* It is flattened to RGB (transparency over white) and scaled so its longer side is at most
  ``OCR_SIDE`` (768) px.  Text detection dominates and grows with the pixel count: on 2 idle
  cores a 1024 px picture takes about 0.45 s at full size and 0.2-0.25 s at 768 px (640 px:
  0.15 s), and lettering down to 20 px high (at 1024) still reads correctly at 768 px
  (benchmarks/bench_ocr.py, tests/test_ocr.py).
* The engine is created once per process, on first use (about 0.3-0.5 s, plus 0.3-0.8 s to import
  onnxruntime and OpenCV), and shared by all threads; a lock serialises the calls (the engine
  keeps per-call state), each of which uses onnxruntime's default thread pool.
* Boxes are put in reading order: grouped into lines by vertical overlap, lines top to bottom,
  boxes in a line left to right.

How the text is matched:

* Both texts are normalised: Unicode compatibility forms, accents dropped, case folded, and only
  letters and digits kept -- OCR often drops or adds spaces ("OPEN24HOURS") and punctuation is not
  what a canary checks.  The glyph pairs that are the same shape in common sans-serif lettering
  count as one letter: ``0``/``o`` and ``1``/``l``/``i``.
* The expected text is looked for as a fuzzy *substring* of everything read, concatenated in
  reading order: it may be one line among others, one part of a longer line, or split over several
  lines or boxes.  Similarity is ``1 - edits / length of the expected text``, with edits the
  Levenshtein distance (characters substituted, missing or extra) to the closest substring of the
  reading.  It reads as "the share of the expected characters that came out right": unlike
  difflib's ratio, which forgives a dropped letter half as much, "OPN 24 HORS" scores 0.82 and
  "PEN 4 OURS" 0.73 (difflib: 0.90 and 0.84).
* Confidence is the recogniser's score of the boxes the closest substring covers, averaged over
  its characters.  The reading without the boxes scored below ``quality.text_confidence`` is
  matched too, so uncertain specks that the OCR makes out between the parts of the text (busy
  backgrounds) cannot dilute an otherwise clean match.
* The text passes when similarity >= ``quality.text_similarity`` and confidence >=
  ``quality.text_confidence`` (both 0.8 by default).  With 0.8, two wrong characters in the
  eleven of "OPEN 24 HOURS" pass ("OPEN 24 HOURZ": 0.91, "OPN 24 HORS": 0.82) and three do not
  ("OPFN 2A HOURZ": 0.73).  Otherwise the image is degraded (``text_missing``, score
  ``TEXT_MISSING_SCORE``) with a reason that quotes what was expected and what was read, with both
  figures.
* Being a substring search, a short expected text is also found inside a longer word ("OPEN" in
  "REOPENING"); canaries should expect distinctive text of a few words.
"""

from __future__ import annotations

import importlib
import threading
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # the pipeline imports this module lazily; keep the import graph one-way
    from monitor.scoring.types import Assessment, ScoringInput

INSTALL_HINT = "expect_text needs the OCR extra: pip install 'genstatus[ocr]'"
BACKEND_MODULE = "rapidocr_onnxruntime"

#: longer side (px) the picture is scaled down to before OCR (never scaled up)
OCR_SIDE = 768
#: boxes the recogniser scores below this are dropped (noise); the stage's own threshold is separate
MIN_BOX_SCORE = 0.3
#: the score of a picture whose expected text is missing or illegible (like a prompt mismatch)
TEXT_MISSING_SCORE = 0.3
#: how much of the reading is quoted in a reason
QUOTE_CHARS = 80

_CONFUSABLE = str.maketrans({"0": "o", "1": "l", "i": "l"})


class OcrUnavailable(RuntimeError):
    """The OCR check cannot run (the ``ocr`` extra is not installed or does not load)."""


@dataclass(frozen=True)
class TextBox:
    """One piece of text the OCR engine read, with its box (pixels of the picture it was given)."""

    text: str
    confidence: float
    left: float
    top: float
    right: float
    bottom: float


@dataclass(frozen=True)
class TextMatch:
    similarity: float  # 0..1, best fuzzy match of the expected text in the reading
    confidence: float  # 0..1, the recogniser's score of the matched boxes (0 when nothing matched)
    matched: str  # the boxes the best match covers, as read (original spelling and spacing)
    read: str  # everything read, in reading order


# ---- the engine ------------------------------------------------------------------------------

_engine: Any = None
_engine_lock = threading.Lock()  # creation
_run_lock = threading.Lock()  # calls: RapidOCR keeps per-call state on the instance


def _backend() -> Any:
    """The RapidOCR class, or OcrUnavailable saying what to install."""
    try:
        module = importlib.import_module(BACKEND_MODULE)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == BACKEND_MODULE.split(".")[0]:
            raise OcrUnavailable(INSTALL_HINT) from exc
        raise OcrUnavailable(f"the OCR engine cannot be imported (missing module {exc.name!r}): "
                             f"{INSTALL_HINT}") from exc
    except Exception as exc:  # noqa: BLE001 - e.g. OpenCV without libGL.so.1 raises ImportError
        raise OcrUnavailable(f"the OCR engine cannot be imported ({type(exc).__name__}: {exc}): "
                             f"{INSTALL_HINT}") from exc
    return module.RapidOCR


def ocr_available() -> bool:
    """Whether ``expect_text`` can be checked in this process (the OCR extra imports)."""
    try:
        _backend()
    except OcrUnavailable:
        return False
    return True


def require_ocr() -> None:
    """Raise OcrUnavailable (with the install hint) when ``expect_text`` cannot be checked."""
    _backend()


def create_engine() -> Any:
    """A new OCR engine (the stage shares one: :func:`engine`).  OcrUnavailable when it cannot be made."""
    rapid_ocr = _backend()
    try:
        # "max": detection works on the picture as given (prepared to <= OCR_SIDE), instead of the
        # default of scaling its shorter side *up* to 736 px
        return rapid_ocr(det_limit_type="max", text_score=MIN_BOX_SCORE)
    except Exception as exc:  # noqa: BLE001 - a broken install must say so, not fail scoring obscurely
        raise OcrUnavailable(f"the OCR engine cannot be created ({type(exc).__name__}: {exc}): {INSTALL_HINT}") from exc


def engine() -> Any:
    """The process-wide OCR engine, created on first use (thread-safe)."""
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = create_engine()
    return _engine


def _prepare(image: Image.Image) -> tuple[np.ndarray, float]:
    """BGR uint8 array, longer side at most OCR_SIDE, and the factor back to the picture's pixels."""
    if image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    scale = 1.0
    longer = max(image.width, image.height)
    if longer > OCR_SIDE:
        scale = longer / OCR_SIDE
        size = (max(1, round(image.width / scale)), max(1, round(image.height / scale)))
        image = image.resize(size, Image.Resampling.BOX)  # area average: enough below 2x, 3x cheaper than Lanczos
    return np.ascontiguousarray(np.asarray(image)[:, :, ::-1]), scale


def read_boxes(image: Image.Image) -> list[TextBox]:
    """Every piece of text in the picture, in reading order, with boxes in the picture's own pixels."""
    array, scale = _prepare(image)
    ocr = engine()
    with _run_lock:
        result, _elapsed = ocr(array)
    boxes = []
    for points, text, confidence in result or ():
        pts = np.asarray(points, dtype=np.float64) * scale
        boxes.append(TextBox(str(text), float(confidence), float(pts[:, 0].min()), float(pts[:, 1].min()),
                             float(pts[:, 0].max()), float(pts[:, 1].max())))
    return reading_order(boxes)


def read_text(image: Image.Image) -> list[tuple[str, float]]:
    """``(text, confidence)`` of every piece of text in the picture, in reading order."""
    return [(box.text, box.confidence) for box in read_boxes(image)]


def reading_order(boxes: list[TextBox]) -> list[TextBox]:
    """Lines top to bottom (a box joins a line when its vertical centre lies within the line's first
    box), boxes left to right within a line."""
    lines: list[list[TextBox]] = []
    for box in sorted(boxes, key=lambda b: (b.top + b.bottom) / 2):
        centre = (box.top + box.bottom) / 2
        if lines and lines[-1][0].top <= centre <= lines[-1][0].bottom:
            lines[-1].append(box)
        else:
            lines.append([box])
    return [box for line in lines for box in sorted(line, key=lambda b: b.left)]


# ---- matching ----------------------------------------------------------------------------------

def normalise(text: str) -> str:
    """Letters and digits only, without accents, case folded, with look-alike glyphs merged."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    kept = "".join(ch for ch in decomposed if ch.isalnum() and not unicodedata.combining(ch))
    return kept.casefold().translate(_CONFUSABLE)


def best_window(expected: str, reading: str) -> tuple[float, int, int]:
    """``(similarity, start, end)``: the substring ``reading[start:end]`` closest to ``expected``
    (both normalised) in edit distance, and ``similarity = 1 - distance / len(expected)``.

    Approximate substring matching: the edit-distance table with a free start anywhere in the
    reading (row 0 is all zeros) and a free end (the best column of the last row), tracking where
    each alignment began.  O(len(expected) x len(reading)), a few milliseconds for a canary's text.
    """
    n = len(expected)
    if not n or not reading:
        return 0.0, 0, 0
    cost, began = list(range(n + 1)), [0] * (n + 1)  # column j-1: expected[:i] against a suffix of reading[:j-1]
    best = (n, 0, 0)
    for j, char in enumerate(reading, 1):
        new_cost, new_began = [0] * (n + 1), [j] * (n + 1)
        for i in range(1, n + 1):
            c, b = cost[i - 1] + (expected[i - 1] != char), began[i - 1]  # match or substitute
            if cost[i] + 1 < c:  # an extra character in the reading
                c, b = cost[i] + 1, began[i]
            if new_cost[i - 1] + 1 < c:  # a character of the expected text missing from the reading
                c, b = new_cost[i - 1] + 1, new_began[i - 1]
            new_cost[i], new_began[i] = c, b
        if new_cost[n] <= best[0]:  # on a tie the later end: "hourz" for "hours" is one substitution
            best = (new_cost[n], new_began[n], j)
        cost, began = new_cost, new_began
    distance, start, end = best
    return max(0.0, 1.0 - distance / n), start, end


def match_text(expected: str, boxes: list[TextBox], *, min_similarity: float = 1.0,
               min_confidence: float | None = None) -> TextMatch:
    """How well ``expected`` appears in ``boxes`` (reading order); see the module notes.

    With ``min_confidence``, the reading without the boxes scored below it is tried too: uncertain
    specks read between the parts of the text cannot dilute it.  Of the two, a match that meets
    both thresholds is preferred, then the more similar one.
    """
    read = " ".join(box.text.strip() for box in boxes if box.text.strip())
    target = normalise(expected)
    floor = 0.0 if min_confidence is None else min_confidence
    best, best_key = TextMatch(0.0, 0.0, "", read), (False, 0.0, 0.0)
    subsets = [boxes]
    if any(box.confidence < floor for box in boxes):
        subsets.append([box for box in boxes if box.confidence >= floor])
    for subset in subsets:
        parts = [normalise(box.text) for box in subset]
        owner = [k for k, part in enumerate(parts) for _ in part]  # the box of each normalised character
        similarity, start, end = best_window(target, "".join(parts))
        if end <= start:
            continue
        covered = owner[start:end]
        confidence = sum(subset[k].confidence for k in covered) / len(covered)
        key = (similarity >= min_similarity and confidence >= floor, similarity, confidence)
        if key > best_key:
            matched = " ".join(subset[k].text.strip() for k in dict.fromkeys(covered))
            best, best_key = TextMatch(similarity, confidence, matched, read), key
    return best


def _quote(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > QUOTE_CHARS:
        text = text[:QUOTE_CHARS - 1].rstrip() + "…"
    return f'"{text}"'


# ---- the stage -----------------------------------------------------------------------------------

def expected_text(given: ScoringInput, out: Assessment) -> None:
    """Degrade (``text_missing``) when the canary's ``expect_text`` is not legible in the picture."""
    expected = given.expect_text
    if expected is None or out.image is None:
        return
    if not normalise(expected):
        return  # no letters or digits to look for (configuration allows any non-empty string)
    need_similarity, need_confidence = given.quality.text_similarity, given.quality.text_confidence
    match = match_text(expected, read_boxes(out.image), min_similarity=need_similarity,
                       min_confidence=need_confidence)
    out.metrics["text_similarity"] = match.similarity
    out.metrics["text_confidence"] = match.confidence
    if match.similarity >= need_similarity and match.confidence >= need_confidence:
        return
    wanted = _quote(expected)
    if not match.read:
        reason = f"expected text {wanted} is missing: OCR found no legible text in the image"
    elif match.similarity < need_similarity:
        closest = f", closest {_quote(match.matched)}" if match.matched and match.matched != match.read else ""
        reason = (f"expected text {wanted} is not legible: OCR read {_quote(match.read)}{closest} "
                  f"(similarity {match.similarity:.2f}, needs {need_similarity:.2f}; "
                  f"confidence {match.confidence:.2f})")
    else:
        reason = (f"expected text {wanted} is not clearly legible: OCR read {_quote(match.matched)} "
                  f"with confidence {match.confidence:.2f}, needs {need_confidence:.2f} "
                  f"(similarity {match.similarity:.2f})")
    out.degrade("text_missing", reason, TEXT_MISSING_SCORE)
