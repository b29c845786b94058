"""Stage: effective resolution -- a low-resolution draft scaled up to the requested size.

Providers under load sometimes serve a small draft blown up with nearest-neighbour scaling: the
picture has the requested size but is made of k x k blocks of identical pixels.  Its edges stay
sharp, so the sharpness checks (which catch the smooth, bilinear kind against references) miss it.

What gives it away is *where* neighbouring pixels differ.  For each column boundary the mean
absolute luminance difference across it is taken over sampled rows (and likewise for row
boundaries); inside a block it is ~0, at the block edges it carries all the picture's detail.  So
the active boundaries (above a share of the strong ones) form a lattice: consecutive gaps of
``floor(k)`` or ``ceil(k)`` pixels (a factor that does not divide the size gives both), with
almost nothing between.  Flagged when, on both axes:

* at least ``QUIET_SHARE`` of the boundaries are quiet (a 2x upscale has half of them quiet),
* at least ``LATTICE_SHARE`` of the gaps between active boundaries are the period (>= 2), the
  period + 1 or a small multiple of it (an edge between two alike source pixels is quiet), over at
  least ``MIN_BLOCKS`` gaps and with at least ``MAIN_SHARE`` of them the period or period + 1, and
* the quiet boundaries carry at most ``QUIET_ENERGY`` of the active ones' mean difference (a
  photograph has few quiet columns at all).

A JPEG or WebP re-encode after the upscale puts ringing inside the blocks, so for those formats
the lattice and energy limits are looser (``*_LOSSY``) and the edges must be stronger (below).

Why the confounders do not fire:

* flat illustrations and logos: flat areas are quiet everywhere, but the active boundaries come
  in runs (gaps of 1 along a shape's span) and large irregular gaps, not a lattice;
* the codec's own blocks (JPEG 8 x 8, WebP 4 x 4): the block edges are brighter than the rest, but
  a compressed photograph still differs across nearly every boundary (few quiet ones).  A smooth
  picture (fog, a flat-design gradient) can keep little more than each block's mean: steps of 1-2
  grey levels on a lattice.  So in JPEG and WebP an axis needs block edges of ``MIN_LEVEL_LOSSY``
  grey levels (fainter ones only with blocks flat to ``CODEC_GRID_ENERGY`` off the codec's grid,
  which the codec cannot have made), and a lattice on the codec's own grid counts only with edges
  above ``CODEC_GRID_LEVEL`` (a heavy JPEG is flagged as ``jpeg_artifacts`` by ``detectors.heavy_jpeg``);
* 8-bit gradients are staircases too (a slope of 1/3 grey level per pixel is a step every 3
  pixels), but only along the gradient: in PNG their steps are one grey level and the lattice
  seldom shows on both axes; JPEG/WebP are held to ``MIN_LEVEL_LOSSY``;
* pixel art is a deliberate lattice: skipped when the prompt asks for it (``PIXEL_ART_PROMPT``:
  pixel art, 8-bit, sprite, pixelated, ...) or when the references given show the same block size
  (``genstatus score --reference``: the canary's normal is blocky).

Cost: one full-size greyscale conversion and differences over at most ``SAMPLES`` rows and columns
(benchmarks/bench_quality.py measures it against a bare decode).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from monitor.scoring.types import Assessment, ScoringInput

#: prompts that ask for a deliberately blocky picture: the check is skipped
PIXEL_ART_PROMPT = re.compile(r"\b(pixel[- ]?art|pixelated|pixelart|8[- ]?bit|16[- ]?bit|sprites?|sprite ?sheet|"
                              r"retro (video )?game|mosaic|voxel|minecraft|low[- ]?res(olution)?|blocky)\b", re.I)
SAMPLES = 256  # rows (columns) sampled for the column (row) boundary profile
ACTIVE_SHARE = 0.3  # a boundary above this share of the strong ones (97th percentile) is active
QUIET_SHARE = 0.4
LATTICE_SHARE = 0.8
QUIET_ENERGY = 0.25
#: the same two for JPEG and WebP, whose ringing inside the blocks blurs the lattice (held to
#: MIN_LEVEL_LOSSY and the codec-grid rule below instead: no clean JPEG/WebP of the benchmark set,
#: gradients included, was flagged)
LATTICE_SHARE_LOSSY = 0.7
QUIET_ENERGY_LOSSY = 0.35
MIN_BLOCKS = 16
MAIN_SHARE = 0.5  # gaps of the period itself (or + 1) among all gaps
MIN_LEVEL = 0.3  # grey levels: an axis whose strong boundaries are fainter than this has no evidence
#: the same for JPEG and WebP, whose blocks turn a smooth gradient or fog into steps of 1-2 grey
#: levels on a lattice (measured <= 1.7 on clean gradients at quality 50..90)
MIN_LEVEL_LOSSY = 2.0
#: quiet/active energy of flat blocks: a draft's survive JPEG/WebP almost exactly (<= 0.003 measured)
CODEC_GRID_ENERGY = 0.005
#: a lattice on the codec's own block grid is read as upscaled blocks only when its edges are stronger
#: than this (grey levels): a smooth picture whose blocks the codec kept only the mean of (fog, a
#: gradient at quality 50) is such a lattice too, with edges of <= 1.7 measured, its blocks as flat
CODEC_GRID_LEVEL = 3.0
#: format -> side of its transform blocks: JPEG's 8 x 8 DCT, WebP (VP8)'s 4 x 4
CODEC_BLOCKS = {"JPEG": 8, "WEBP": 4}


@dataclass(frozen=True)
class AxisBlocks:
    """The lattice found along one axis: ``period`` in pixels (0: none)."""

    period: float
    quiet: float  # share of quiet boundaries
    lattice: float  # share of gaps that are the period
    energy: float  # mean quiet / mean active difference
    level: float  # the strong boundaries' mean difference (97th percentile), grey levels
    grids: frozenset[int]  # the codec block sizes (CODEC_BLOCKS) whose grid the active boundaries sit on


NO_BLOCKS = AxisBlocks(0.0, 0.0, 0.0, 1.0, 0.0, frozenset())


def boundary_profile(grey: np.ndarray, axis: int) -> np.ndarray:
    """Mean |difference| across each boundary perpendicular to ``axis`` (1: column boundaries)."""
    other = grey.shape[1 - axis]
    step = max(1, other // SAMPLES)
    sampled = grey[::step, :] if axis == 1 else grey[:, ::step]
    return np.abs(np.diff(sampled, axis=axis)).mean(axis=1 - axis)


def axis_blocks(profile: np.ndarray) -> AxisBlocks:
    """The block lattice in one boundary profile (``NO_BLOCKS`` when the axis shows none)."""
    if profile.size < 2 * MIN_BLOCKS:
        return NO_BLOCKS
    level = float(np.percentile(profile, 97))
    if level < MIN_LEVEL:
        return NO_BLOCKS
    active = profile > ACTIVE_SHARE * level
    positions = np.flatnonzero(active)
    if positions.size < MIN_BLOCKS + 1:
        return NO_BLOCKS
    quiet = 1.0 - positions.size / profile.size
    gaps = np.diff(positions)
    counts = np.bincount(gaps)
    period = int(np.argmax(counts[2:]) + 2) if counts.size > 2 else 0
    if period < 2:
        return AxisBlocks(0.0, quiet, 0.0, 1.0, level, frozenset())
    regular = (gaps == period) | (gaps == period + 1)
    # a block edge too faint to be active (two source pixels nearly alike) doubles a gap
    lattice = float((regular | ((gaps % period == 0) & (gaps <= 4 * period))).mean())
    if float(regular.mean()) < MAIN_SHARE:
        lattice = min(lattice, float(regular.mean()))
    mean_period = float(gaps[regular].mean()) if regular.any() else float(period)
    quiet_mean = float(profile[~active].mean()) if quiet > 0 else 0.0
    energy = quiet_mean / max(float(profile[active].mean()), 1e-6)
    grids = frozenset(block for block in CODEC_BLOCKS.values()
                      if period % block == 0 and float(np.mean(positions % block == block - 1)) > 0.8)
    return AxisBlocks(mean_period, quiet, lattice, energy, level, grids)


def is_blocky(axis: AxisBlocks, codec_block: int | None = None) -> bool:
    """A block lattice on this axis; ``codec_block``: the picture is a JPEG/WebP with blocks of that side."""
    if codec_block is None:
        return (axis.period >= 2 and axis.quiet >= QUIET_SHARE and axis.lattice >= LATTICE_SHARE
                and axis.energy <= QUIET_ENERGY)
    # faint edges count only with flat blocks off the codec's grid: the codec cannot have made those
    strong = axis.level >= MIN_LEVEL_LOSSY or (axis.energy <= CODEC_GRID_ENERGY and codec_block not in axis.grids)
    return (strong and axis.period >= 2 and axis.quiet >= QUIET_SHARE and axis.lattice >= LATTICE_SHARE_LOSSY
            and axis.energy <= QUIET_ENERGY_LOSSY)


def block_factor(image: Image.Image, fmt: str | None = None) -> tuple[float, AxisBlocks, AxisBlocks]:
    """(upscale factor, column axis, row axis) of a picture stored as ``fmt`` (default: its own format);
    the factor is 0 unless both axes show a block lattice that is not the codec's own."""
    fmt = fmt if fmt is not None else image.format
    block = CODEC_BLOCKS.get(fmt or "")
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    across_columns = axis_blocks(boundary_profile(grey, 1))
    across_rows = axis_blocks(boundary_profile(grey, 0))
    if not all(is_blocky(axis, block) for axis in (across_columns, across_rows)):
        return 0.0, across_columns, across_rows
    if block in across_columns.grids and block in across_rows.grids and \
            min(across_columns.level, across_rows.level) < CODEC_GRID_LEVEL:
        return 0.0, across_columns, across_rows  # the codec's own blocks on smooth content
    return (across_columns.period + across_rows.period) / 2, across_columns, across_rows


def _reference_factors(references: list[bytes]) -> list[float]:
    factors = []
    for data in references:
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.draft("L", image.size)
                factors.append(block_factor(image)[0])
        except Exception:  # noqa: BLE001 - an unreadable reference is judged (and reported) by its own scoring
            continue
    return factors


def upscaled(given: ScoringInput, out: Assessment) -> None:
    """Flag a picture made of k x k blocks: a low-resolution output scaled up with nearest-neighbour."""
    if out.image is None or (given.prompt and PIXEL_ART_PROMPT.search(given.prompt)):
        return
    factor, columns, rows = block_factor(out.image, out.format)
    out.metrics["block_factor"] = factor
    out.metrics["quiet_boundaries"] = min(columns.quiet, rows.quiet)
    if factor < 2:
        return
    if given.references and any(abs(f - factor) <= 0.5 for f in _reference_factors(given.references)):
        return  # the references are blocky the same way: this canary's normal (pixel art)
    width, height = out.width or out.image.width, out.height or out.image.height
    out.degrade("upscaled", f"the image looks upscaled from a lower resolution: it is made of blocks of about "
                            f"{factor:.1f} x {factor:.1f} identical pixels (effective resolution about "
                            f"{round(width / factor)}x{round(height / factor)} of the {width}x{height} returned), "
                            "like a low-resolution draft scaled up with nearest-neighbour", 0.3)
