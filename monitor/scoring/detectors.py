"""Stage 2: degenerate-output detectors, each with a reason a person can read.

All of them work on the shared 256 x 256 analysis copy (``Assessment.small`` / ``.grey``), so
the cost does not grow with the picture.  The thresholds come from what the failure *is*, with
a wide margin to what varied procedural content measures (benchmarks/quality_set.py: canary
pictures, fractal landscapes, text pages, textures, soft shapes, dim night scenes, fog):

* blank/uniform: luminance spread < 2 grey levels on 64 x 64 -- a fill, even with JPEG noise --
  *and* < 8 on the 256 x 256 copy: a fine even texture (a chessboard, a mesh, sand) also averages
  to one grey at 64 px, but it is a picture (and independent noise is the noise check's to judge).
* near-black placeholder: >= 97 % of the pixels darker than 24/255 *and* a 99th percentile
  below 128 -- a black card with at most a small grey notice.  A dim night scene keeps its
  lights and its 1 % brightest pixels well above that; a prompt that asks for darkness
  ("black", "dark", "night", ...) disables the check.
* pure noise: correlation between horizontally and vertically neighbouring pixels, in the
  smoothest colour channel (an iso-luminant colour picture can be flat in grey).  Every picture (photo, drawing, text) is spatially smooth at 256 px -- neighbours
  correlate > 0.6 even for fine textures -- while independent per-pixel noise stays at 0 after
  box downscaling (averaging disjoint blocks keeps them independent).  Cut-off 0.25.
* very few distinct colours: 98 % of the pixels covered by fewer than 5 colours (5 bits per
  channel) -- a flat placeholder card; skipped when the prompt asks for flat art (logo, icon,
  minimalist, vector, silhouette, ...), which is legitimately a few flat colours.  Anti-aliasing and JPEG fringes are rare colours and
  fall in the last 2 %; a generated picture, even flat-design art, has gradients and shading.
* low detail (no reference): sharpness depends on content (fog, a studio backdrop and a macro
  shot are legitimately soft), so without references only the extreme is flagged: the 99th
  percentile of the local gradient below 2 grey levels per pixel, i.e. not one visible edge
  anywhere.  Blur relative to the canary's normal is judged against references (references.py).
"""

from __future__ import annotations

import re

import numpy as np

from monitor.scoring.types import Assessment, ScoringInput

# Standard deviation of 8-bit luminance on a 64x64 thumbnail; a real picture is far above this,
# while a flat fill (even with JPEG noise or a faint gradient) stays below it.
UNIFORM_STDDEV = 2.0
#: the same on the 256 x 256 copy: a flat fill with JPEG noise stays near 1-2, a fine texture is far above
UNIFORM_FINE_STDDEV = 8.0
DARK_LEVEL = 24  # luminance below which a pixel counts as black
DARK_FRACTION = 0.97
DARK_P99 = 128.0
DARK_PROMPT = re.compile(r"\b(black|dark|darkness|night|midnight|shadow|silhouette|void|space|noir)\b", re.I)
#: prompts that legitimately ask for a handful of flat colours: the few-colours check is skipped
FLAT_PROMPT = re.compile(r"\b(logo|logos|icon|icons|flat|minimal|minimalist|vector|line art|lineart|silhouette|"
                         r"monochrome|pictogram|emoji|sticker|clip ?art|two[- ]colou?r|black and white)\b", re.I)
NOISE_CORRELATION = 0.25
FEW_COLOURS = 5  # fewer than this many significant colours is a placeholder
COLOUR_COVER = 0.98  # the colours needed to cover this share of the pixels
LOW_DETAIL_P99 = 2.0


def block_means(rgb: np.ndarray, side: int = 64) -> np.ndarray:
    """Means (float32) of the ``side`` x ``side`` blocks of an 8-bit picture whose sides are multiples of
    ``side``, by integer sums of strided slices: the sums are exact and the block area a power of two
    for the analysis copy, so this equals the float32 ``mean`` over the blocks at a fifth of its cost."""
    step_y, step_x = rgb.shape[0] // side, rgb.shape[1] // side
    wide = rgb.astype(np.uint32)
    columns = wide[:, 0::step_x].copy()
    for i in range(1, step_x):
        columns += wide[:, i::step_x]
    sums = columns[0::step_y].copy()
    for i in range(1, step_y):
        sums += columns[i::step_y]
    return sums.astype(np.float32) / np.float32(step_x * step_y)


def blank_or_uniform(given: ScoringInput, out: Assessment) -> None:
    thumb = block_means(np.asarray(out.small, dtype=np.uint8))
    spread = float(thumb.std(axis=(0, 1)).max())  # per channel: an iso-luminant colour picture is not blank
    out.metrics["spread"] = spread
    if spread < UNIFORM_STDDEV and _fine_spread(out) < UNIFORM_FINE_STDDEV:
        mean = float(thumb.mean())
        shade = "black" if mean < 16 else ("white" if mean > 239 else "a single colour")
        out.fail("blank", f"the image is blank: almost uniform {shade} (luminance spread {spread:.2f})")


def _fine_spread(out: Assessment) -> float:
    """The largest per-channel standard deviation of the 256 x 256 analysis copy."""
    pixels = np.asarray(out.small, dtype=np.float32)
    return float(pixels.reshape(-1, pixels.shape[-1] if pixels.ndim == 3 else 1).std(axis=0).max())


def near_black(given: ScoringInput, out: Assessment) -> None:
    grey = out.grey
    dark = float((grey < DARK_LEVEL).mean())
    p99 = float(np.percentile(grey, 99))
    out.metrics["dark_fraction"], out.metrics["p99"] = dark, p99
    if dark >= DARK_FRACTION and p99 < DARK_P99 and not (given.prompt and DARK_PROMPT.search(given.prompt)):
        out.fail("near_black", f"the image is almost entirely black ({dark:.0%} of pixels), "
                               "like a provider's safety placeholder")


def neighbour_correlation(grey: np.ndarray) -> float:
    """The smaller of the horizontal and vertical correlation of neighbouring pixels (0 for flat input)."""
    values = []
    for a, b in ((grey[:, :-1], grey[:, 1:]), (grey[:-1, :], grey[1:, :])):
        a = a - a.mean()
        b = b - b.mean()
        denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
        values.append(float((a * b).sum()) / denom if denom > 0 else 1.0)
    return min(values)


def pure_noise(given: ScoringInput, out: Assessment) -> None:
    if not given.noise_check:
        return
    rgb = out.rgb32
    corr = max(neighbour_correlation(rgb[..., c]) for c in range(3))  # smooth in any channel is a picture
    out.metrics["neighbour_correlation"] = corr
    if corr < NOISE_CORRELATION:
        out.fail("noise", f"the image looks like random noise: neighbouring pixels are unrelated "
                          f"(correlation {corr:.2f}, pictures are above 0.6)")


def few_colours(given: ScoringInput, out: Assessment) -> None:
    rgb = np.asarray(out.small, dtype=np.uint8) >> 3
    codes = (rgb[..., 0].astype(np.int32) << 10) | (rgb[..., 1].astype(np.int32) << 5) | rgb[..., 2]
    counts = np.sort(np.bincount(codes.ravel(), minlength=32768))[::-1]
    significant = int(np.searchsorted(np.cumsum(counts), COLOUR_COVER * codes.size) + 1)
    out.metrics["colours"] = significant
    if significant < FEW_COLOURS and not (given.prompt and FLAT_PROMPT.search(given.prompt)):
        out.degrade("few_colours", f"the image has very few distinct colours ({significant}), "
                                   "like a placeholder card rather than a picture", 0.3)


def gradient_p99(grey: np.ndarray) -> float:
    gx = np.abs(np.diff(grey, axis=1))[:-1, :]
    gy = np.abs(np.diff(grey, axis=0))[:, :-1]
    return float(np.percentile(np.maximum(gx, gy), 99))


def low_detail(given: ScoringInput, out: Assessment) -> None:
    p99 = gradient_p99(out.grey)
    out.metrics["gradient_p99"] = p99
    if p99 < LOW_DETAIL_P99:
        out.degrade("low_detail", f"the image has almost no detail: no visible edge anywhere "
                                  f"(99th percentile gradient {p99:.1f} grey levels per pixel)", 0.3)


#: IJG standard luminance quantisation table (quality 50), row order
_IJG_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                      14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                      49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64)
HEAVY_JPEG_QUALITY = 25


def jpeg_quality(image) -> float | None:
    """The IJG quality (1..100) a JPEG was saved with, estimated from its luminance quantisation table."""
    tables = getattr(image, "quantization", None)
    if not tables or 0 not in tables or len(tables[0]) != 64:
        return None
    table = np.sort(np.asarray(tables[0], dtype=np.float64))
    scale = float(np.mean(table / np.sort(_IJG_LUMA))) * 100
    return 100.0 if scale <= 0 else ((200 - scale) / 2 if scale <= 100 else 5000 / scale)


def heavy_jpeg(given: ScoringInput, out: Assessment) -> None:
    """JPEG saved at a very low quality: read from the file's own quantisation tables, so it does
    not depend on content.  Providers that send JPEG use quality 75..95; below 25 the 8x8 blocks show."""
    if out.format != "JPEG" or out.image is None:
        return
    quality = jpeg_quality(out.image)
    if quality is not None:
        out.metrics["jpeg_quality"] = quality
        if quality < HEAVY_JPEG_QUALITY:
            out.degrade("jpeg_artifacts", f"heavy JPEG compression (quality about {quality:.0f} of 100): "
                                          "visible 8x8 blocks and lost detail", 0.4)


DETECTORS = [blank_or_uniform, near_black, pure_noise, few_colours, low_detail, heavy_jpeg]
