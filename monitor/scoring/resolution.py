"""Stage: effective resolution -- a low-resolution draft scaled up to the requested size.

Providers under load sometimes serve a small draft blown up with nearest-neighbour scaling: the
picture has the requested size but is made of k x k blocks of identical pixels.  Its edges stay
sharp, so the sharpness checks (which catch the smooth, bilinear kind against references) miss it.

What gives it away is *where* neighbouring pixels differ.  For each column boundary the mean
absolute luminance difference across it is taken over sampled rows (and likewise for row
boundaries); inside a block it is 0, at the block edges it carries all the picture's detail.  So
the active boundaries (above a share of the strong ones) form a lattice: consecutive gaps of
``floor(k)`` or ``ceil(k)`` pixels (a factor that does not divide the size gives both), with
almost nothing between.  Flagged when, on both axes:

* at least ``QUIET_SHARE`` of the boundaries are quiet (a 2x upscale has half of them quiet) and, in a
  lossless picture, at least ``ZERO_SHARE`` are exactly 0 on every sampled line (a block's pixels are
  copies; a chessboard or a weave with grain has no such boundary),
* at least ``LATTICE_SHARE`` of the gaps between active boundaries are the period (>= 2), the
  period + 1 or a small multiple of it (an edge between two alike source pixels is quiet), over at
  least ``MIN_BLOCKS`` gaps and with at least ``MAIN_SHARE`` of them the period or period + 1, and
* the quiet boundaries carry at most ``QUIET_ENERGY`` of the active ones' mean difference (a
  photograph has few quiet columns at all).

A JPEG or WebP re-encode after the upscale puts ringing inside the blocks, so for those formats
the lattice and energy limits are looser (``*_LOSSY``) and the edges must be stronger (below).
Ringing still fills most quiet boundaries of a picture with fine detail, so two more tests look for
the lattice in a re-encoded picture (``block_factor``):

* a comb (``comb``): for each candidate period P (2 .. ``COMB_MAX_PERIOD``, the integers and the
  ``size / m`` of a factor that does not divide the size) and phase, the mean difference on the
  boundaries one in P against the rest, after taking ``RINGING`` grey levels off every difference
  (what ringing adds).  Flagged when both axes pick the same period, its boundaries at least
  ``COMB_RATIO`` times the rest over the whole profile *and* in ``COMB_CONSISTENT`` of its
  ``COMB_CHUNKS`` stretches: a clean picture's best comb comes from a few strong edges (a logo, a
  line of text) and does not repeat along the picture.  Periods that share a factor with the codec's
  block (2, 4, 6, 8) would put their teeth on the codec's own edges, or at the same places inside
  its blocks, where a smooth JPEG's differences peak: the codec's edges are left out and those
  periods need ``COMB_RATIO_IN_BLOCK``.  Periods above ``COMB_MAX_PERIOD`` are left to the lattice
  test (an 8-bit gradient is a staircase of long steps, on both axes when it runs diagonally);
* a 1/8 draft on JPEG's own grid (``codec_grid_flat``): every 8 x 8 block of the re-encode is one
  source pixel, which JPEG stores as its mean alone, so the blocks are flat to within
  ``CODEC_GRID_FLAT`` of their edges' difference.  A clean JPEG is that flat only where the content
  is (fog, at quality 60: edges of <= 0.5 grey levels measured), so the edges must carry at least
  ``CODEC_GRID_FLAT_LEVEL``.

Edges repeating at one spacing are also what a window screen, a woven fabric, a brick wall, a tiled
floor, a chessboard or a spreadsheet shows, and their cells' grain is partly smoothed by the codec.  So
whatever found the blocks in a JPEG or WebP, they must also be blocks (``blocks_explain_edges``, on
both axes): the step at each block edge is the difference between the interiors of the two blocks it
separates (at least ``EDGE_EXPLAINED`` of it; a thin line -- mesh, mortar, grout -- is a step between
two cells alike inside) and blocks two apart differ at least ``BLOCK_LAG2`` as much as neighbours (a
draft is a small picture; a chessboard or a weave alternates two kinds of cell).

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
* natural periodic textures: see ``blocks_explain_edges`` (benchmarks/quality_set.py
  ``periodic_texture``: none flagged at periods 3..9, grain 2..6 grey levels, blurred or not);
* pixel art is a deliberate lattice: skipped when the prompt asks for it (``PIXEL_ART_PROMPT``:
  pixel art, 8-bit, sprite, pixelated, ...) or when the references given show the same block size
  (``genstatus score --reference``: the canary's normal is blocky).

Cost: one full-size greyscale conversion and differences over at most ``SAMPLES`` rows and columns,
plus for JPEG/WebP the comb of ~17 periods over each profile, and the block test on the sampled lines
when blocks were found (benchmarks/bench_quality.py measures both against a bare decode).
"""

from __future__ import annotations

import io
import math
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
#: boundaries with no difference at all on any sampled line (PNG): a k x k draft has 1 - 1/k of them
ZERO_SHARE = 0.4
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
#: the comb test for JPEG and WebP (benchmarks/bench_quality.py --section upscale: no clean picture of
#: the set, at JPEG q60..q95 or WebP q75..q90, holds; most drafts re-encoded at q85 hold in 7 or 8 of 8
#: stretches)
RINGING = 1.0  # grey levels taken off every difference for the comb: the codec's ringing
COMB_MAX_PERIOD = 9.0
COMB_RATIO = 1.25  # grid boundaries / the rest, over the profile and in each stretch
COMB_RATIO_IN_BLOCK = 2.0  # the same for periods that share the codec's block grid (see ``comb``)
COMB_CHUNKS = 8
COMB_CONSISTENT = 0.85  # share of the stretches with any difference in which the comb holds
COMB_MIN_STRETCHES = 4  # stretches with any difference (a mostly flat picture shows too little)
COMB_MIN_LEVEL = 0.05  # grey levels above ringing: the grid boundaries' mean minus the rest's
COMB_MIN_TEETH = 16  # grid boundaries for one comb
#: 1/8 drafts on JPEG's grid: off-grid / on-grid mean difference at most, and the on-grid edges' excess
CODEC_GRID_FLAT = 0.01
CODEC_GRID_FLAT_LEVEL = 0.75
#: JPEG/WebP blocks found by any of the tests above must be blocks (``blocks_explain_edges``): the
#: step at each edge is the difference of the two blocks' interiors (>= 1.0 x measured on drafts;
#: a window screen's, brick wall's or tiled floor's lines < 0.8 x) ...
EDGE_EXPLAINED = 0.9
#: ... and the blocks make a picture, not a pattern two blocks long: blocks two apart differ at least
#: this share of what neighbours do (drafts >= 0.45 measured; a chessboard, a weave <= 0.24)
BLOCK_LAG2 = 0.35
EXPLAIN_LINES = 128  # lines sampled for it (a draft's block rows repeat: fewer than for the profiles)


@dataclass(frozen=True)
class AxisBlocks:
    """The lattice found along one axis: ``period`` in pixels (0: none)."""

    period: float
    quiet: float  # share of quiet boundaries
    lattice: float  # share of gaps that are the period
    energy: float  # mean quiet / mean active difference
    level: float  # the strong boundaries' mean difference (97th percentile), grey levels
    grids: frozenset[int]  # the codec block sizes (CODEC_BLOCKS) whose grid the active boundaries sit on
    zero: float = 0.0  # share of boundaries with no difference on any sampled line


NO_BLOCKS = AxisBlocks(0.0, 0.0, 0.0, 1.0, 0.0, frozenset())


@dataclass(frozen=True)
class Comb:
    """The best comb along one axis: boundaries one in ``period`` (pixels) against the rest."""

    period: float
    ratio: float  # mean difference on the comb / off it, in units of the ratio it needs (1: just enough)
    level: float  # the same as a difference, grey levels (after RINGING)
    consistent: float  # share of the profile's stretches (with any difference) where the comb holds
    stretches: int  # stretches with any difference

    @property
    def holds(self) -> bool:
        """Strong enough, above the ringing and all along the picture."""
        return (self.period >= 2 and self.ratio >= 1 and self.level >= COMB_MIN_LEVEL
                and self.consistent >= COMB_CONSISTENT and self.stretches >= COMB_MIN_STRETCHES)


NO_COMB = Comb(0.0, 0.0, 0.0, 0.0, 0)


def boundary_profiles(grey: np.ndarray, axis: int, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean |difference| across each boundary perpendicular to ``axis`` (1: column boundaries), and
    the same with ``floor`` grey levels taken off each difference (what is left below 0 counts as 0)."""
    other = grey.shape[1 - axis]
    step = max(1, other // SAMPLES)
    sampled = grey[::step, :] if axis == 1 else grey[:, ::step]
    diff = np.abs(np.diff(sampled, axis=axis))
    plain = diff.mean(axis=1 - axis)
    if not floor:
        return plain, plain
    np.subtract(diff, floor, out=diff)
    np.maximum(diff, 0, out=diff)
    return plain, diff.mean(axis=1 - axis)


def axis_blocks(profile: np.ndarray) -> AxisBlocks:
    """The block lattice in one boundary profile (``NO_BLOCKS`` when the axis shows none)."""
    if profile.size < 2 * MIN_BLOCKS:
        return NO_BLOCKS
    level = float(np.percentile(profile, 97))
    if level < MIN_LEVEL:
        return NO_BLOCKS
    zero = float(np.mean(profile == 0))
    active = profile > ACTIVE_SHARE * level
    positions = np.flatnonzero(active)
    if positions.size < MIN_BLOCKS + 1:
        return NO_BLOCKS
    quiet = 1.0 - positions.size / profile.size
    gaps = np.diff(positions)
    counts = np.bincount(gaps)
    period = int(np.argmax(counts[2:]) + 2) if counts.size > 2 else 0
    if period < 2:
        return AxisBlocks(0.0, quiet, 0.0, 1.0, level, frozenset(), zero)
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
    return AxisBlocks(mean_period, quiet, lattice, energy, level, grids, zero)


def comb_periods(size: int) -> list[tuple[int, int]]:
    """Candidate block periods along a side of ``size`` pixels, as fractions (numerator, denominator):
    2 .. COMB_MAX_PERIOD and, for a factor that does not divide the side, ``size / m`` for the draft
    sizes m around ``size / k``."""
    periods = {(k, 1) for k in range(2, int(COMB_MAX_PERIOD) + 1)}
    for k in range(2, int(COMB_MAX_PERIOD) + 1):
        periods.update((size, m) for m in (size // k, -(-size // k)) if m > 0 and size % m)
    return sorted(p for p in periods if 1.5 < p[0] / p[1] <= COMB_MAX_PERIOD)


def comb(profile: np.ndarray, codec_block: int | None = None) -> Comb:
    """The comb (period and phase) along which ``profile`` stands out most.

    Boundary ``i`` lies before pixel ``i + 1``; with blocks of P = a / b pixels the edges are the
    boundaries whose phase ``(i + 1) mod P`` falls in a window one pixel wide, tried every half pixel.
    In units of 1 / b the phase is the integer ``(i + 1) * b mod a``, so cumulative sums over those
    give every window's sum exactly, for a few small vector ops per period.

    A period that shares a factor with the codec's block (2, 4, 6, 8 for both) puts its teeth at the
    same few places inside every codec block: the codec's own edges are left out of both sides, and
    the teeth must stand out by ``COMB_RATIO_IN_BLOCK`` -- a smooth JPEG keeps mostly each block's
    lowest frequencies, a half cosine whose differences peak mid-block (up to 1.5 x the rest).  Other
    periods drift across the codec's grid and are measured on every boundary."""
    position = np.arange(1, profile.size + 1, dtype=np.int64)
    values = profile.astype(np.float64)
    off_grid = position % codec_block != 0 if codec_block else np.ones(profile.size, bool)

    def teeth(a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(kept boundaries, their phase in units of 1 / b, the half-pixel window starts in those units)."""
        in_block = bool(codec_block) and b == 1 and math.gcd(a, codec_block or 1) > 1
        kept = off_grid if in_block else np.ones(profile.size, bool)
        return kept, (position[kept] * b) % a, -(-np.arange(2 * a // b + 1) * b // 2)

    best: tuple[float, int, int, int] | None = None  # (ratio / needed, a, b, window start)
    for a, b in comb_periods(profile.size + 1):
        kept, phase, starts = teeth(a, b)
        sums = np.concatenate(([0.0], np.cumsum(np.tile(np.bincount(phase, values[kept], a), 2))))
        counts = np.concatenate(([0], np.cumsum(np.tile(np.bincount(phase, minlength=a), 2))))
        starts = starts[starts < a]
        on_sum, on_count = sums[starts + b] - sums[starts], (counts[starts + b] - counts[starts]).astype(np.float64)
        off_count = phase.size - on_count
        usable = (on_count >= COMB_MIN_TEETH) & (off_count > 0)
        if not usable.any():
            continue
        off_mean = (sums[a] - on_sum) / np.maximum(off_count, 1)
        ratio = np.where(usable, on_sum / np.maximum(on_count, 1) / np.maximum(off_mean, 1e-3), 0.0)
        needed = COMB_RATIO_IN_BLOCK if kept is off_grid else COMB_RATIO
        i = int(np.argmax(ratio))
        if best is None or ratio[i] / needed > best[0]:
            best = (float(ratio[i]) / needed, a, b, int(starts[i]))
    if best is None:
        return NO_COMB
    score, a, b, start = best
    kept, phase, _ = teeth(a, b)
    needed = COMB_RATIO_IN_BLOCK if kept is off_grid else COMB_RATIO
    values, on = values[kept], (phase - start) % a < b
    level = float(values[on].mean() - values[~on].mean())
    held = stretches = 0
    for part, part_on in zip(np.array_split(values, COMB_CHUNKS), np.array_split(on, COMB_CHUNKS)):
        if not part_on.any() or part_on.all():
            continue
        on_mean, off_mean = float(part[part_on].mean()), float(part[~part_on].mean())
        if max(on_mean, off_mean) < 0.1:
            continue  # a flat stretch says nothing either way
        stretches += 1
        held += on_mean > needed * off_mean
    return Comb(a / b, score, level, held / max(stretches, 1), stretches)


def codec_grid_flat(profile: np.ndarray, block: int) -> bool:
    """The boundaries off the codec's block grid are all but silent next to those on it (blocks flat)."""
    on = np.arange(1, profile.size + 1) % block == 0
    if on.sum() < COMB_MIN_TEETH // 2:
        return False
    on_mean, off_mean = float(profile[on].mean()), float(profile[~on].mean())
    return off_mean <= CODEC_GRID_FLAT * on_mean and on_mean - off_mean >= CODEC_GRID_FLAT_LEVEL


def blocks_explain_edges(grey: np.ndarray, axis: int, period: float) -> bool:
    """Along ``axis`` (1: across columns), the picture is blocks of ``period`` pixels: the step at each
    block edge is (on average) the difference of the two blocks' interiors, and blocks two apart differ
    about as much as neighbours do.

    A window screen, a brick wall's mortar or a tiled floor's grout is a thin line: a large step at
    the edge between two cells alike inside.  A chessboard or a weave is two kinds of cell in turn:
    every other block alike.  A draft is a small picture: its steps are its pixels' differences."""
    other = grey.shape[1 - axis]
    # lines spread by the golden ratio: a pattern of any period cannot put them all on its lines
    picked = np.unique((np.arange(min(EXPLAIN_LINES, other)) * 0.6180339887 % 1 * other).astype(np.int64))
    lines = grey[picked, :] if axis == 1 else np.ascontiguousarray(grey[:, picked].T)
    profile = np.abs(np.diff(lines, axis=1)).mean(axis=0)
    phase = np.arange(1, profile.size + 1) % period
    windows = [((phase - start) % period) < 1 for start in np.arange(0, period, 0.5)]
    best = max(windows, key=lambda on: float(profile[on].mean()) if on.any() else 0.0)
    edges = np.flatnonzero(best)
    edges = edges[np.diff(edges, prepend=-2) > 1]  # boundary i lies between pixels i and i + 1
    if edges.size < 5:
        return False
    first, last = edges[:-1] + 1, edges[1:]  # each block's pixels, first..last
    inner = last - first >= 2  # drop the pixels next to the edges (a line sits there) when any are left
    first, last = first + inner, last - inner
    sums = np.zeros((lines.shape[0], lines.shape[1] + 1), np.float32)  # grey levels: exact in float32
    np.cumsum(lines, axis=1, out=sums[:, 1:])
    means = (sums[:, last + 1] - sums[:, first]) / (last - first + 1)
    step = float(np.abs(lines[:, edges[1:-1] + 1] - lines[:, edges[1:-1]]).mean())
    neighbours = float(np.abs(np.diff(means, axis=1)).mean())
    two_apart = float(np.abs(means[:, 2:] - means[:, :-2]).mean())
    return neighbours >= EDGE_EXPLAINED * step and two_apart >= BLOCK_LAG2 * neighbours and step > 0


def is_blocky(axis: AxisBlocks, codec_block: int | None = None) -> bool:
    """A block lattice on this axis; ``codec_block``: the picture is a JPEG/WebP with blocks of that side."""
    if codec_block is None:  # a lossless picture: the blocks' pixels are exact copies
        return (axis.period >= 2 and axis.quiet >= QUIET_SHARE and axis.zero >= ZERO_SHARE
                and axis.lattice >= LATTICE_SHARE and axis.energy <= QUIET_ENERGY)
    # faint edges count only with flat blocks off the codec's grid: the codec cannot have made those
    strong = axis.level >= MIN_LEVEL_LOSSY or (axis.energy <= CODEC_GRID_ENERGY and codec_block not in axis.grids)
    return (strong and axis.period >= 2 and axis.quiet >= QUIET_SHARE and axis.lattice >= LATTICE_SHARE_LOSSY
            and axis.energy <= QUIET_ENERGY_LOSSY)


def block_factor(image: Image.Image, fmt: str | None = None) -> tuple[float, AxisBlocks, AxisBlocks]:
    """(upscale factor, column axis, row axis) of a picture stored as ``fmt`` (default: its own format);
    the factor is 0 unless both axes show a block lattice that is not the codec's own (in JPEG and
    WebP: or the same comb, or in JPEG flat blocks on its own grid with edges between them)."""
    fmt = fmt if fmt is not None else image.format
    block = CODEC_BLOCKS.get(fmt or "")
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    (column_profile, column_floored), (row_profile, row_floored) = (
        boundary_profiles(grey, axis, RINGING if block else 0.0) for axis in (1, 0))
    across_columns, across_rows = axis_blocks(column_profile), axis_blocks(row_profile)
    if all(is_blocky(axis, block) for axis in (across_columns, across_rows)) and not (
            block in across_columns.grids and block in across_rows.grids
            and min(across_columns.level, across_rows.level) < CODEC_GRID_LEVEL):  # the codec's own, on smooth content
        factor = (across_columns.period + across_rows.period) / 2
    elif block is None:
        return 0.0, across_columns, across_rows
    elif block == CODEC_BLOCKS["JPEG"] and all(codec_grid_flat(p, block) for p in (column_profile, row_profile)):
        factor = float(block)  # a 1/8 draft on JPEG's own grid
    else:
        factor = 0.0
        column_comb = comb(column_floored, block)
        if column_comb.holds:  # (most clean pictures stop here: the row comb is not needed)
            row_comb = comb(row_floored, block)
            if row_comb.holds and abs(column_comb.period - row_comb.period) <= 0.6:
                factor = (column_comb.period + row_comb.period) / 2
    if block is not None and factor and not all(
            blocks_explain_edges(grey, axis, factor) for axis in (1, 0)):  # a periodic texture, not blocks
        factor = 0.0
    return factor, across_columns, across_rows


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
