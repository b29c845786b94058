"""Image scoring quality and speed on the evaluation set (benchmarks/quality_set.py).

Quality, separately for natural photographs ("photo", bundled with scikit-image) and the
procedural families, plus the total: per degraded class the share caught (verdict not
``pass``), per clean class the share of false alarms.  Blur, heavy JPEG, swapped content and
downscale-upscale are scored with the clean original as the reference; the other classes
without.  Without scikit-image the set is procedural only, and one line of the output says so.

Speed, against Pillow's decode alone of the same 1024 x 1024 PNG (a natural photograph when
available), interleaved round by round in the same run, medians over the rounds:

* base: decode + validation + degenerate-output detectors + perceptual hashes -- the stages
  of ``score_image`` that every image goes through, run as ``score_image`` runs them;
* default: ``score_image`` as it is called without references (every stage it runs by default).

Reference profiles of ``seed: random`` canaries (the "profile" section): every output of such a
canary is another picture of the same prompt, so the content-dependent statistics a profile keeps
vary from run to run.  Simulated canaries -- the emulators' canary pictures (one prompt, other
seeds), each procedural family of the set, and random crops of each photograph (one scene, other
compositions) -- get profiles of N = 3, 5 and 10 of their outputs, built as ``genstatus baseline``
builds them; their other outputs (PNG and JPEG q85) must pass against it, and degraded versions
of them (blur, heavy JPEG, downscale-upscale, noise, a placeholder card, another canary's picture)
should not.  Per (group, N): the false alarms on clean outputs with the checks that fired, and
per degraded class the share caught and by which checks; ``profile_report`` adds the deviations
behind them (per statistic: clean p99 and maximum, degraded medians).

``python -m benchmarks.bench_quality [--quick] [--misses] [--section all|set|profile]`` prints the
same table (and the profile report), and with ``--misses`` every missed degraded variant and every
false alarm of the set with its flags and metrics.
"""

from __future__ import annotations

import argparse
import copy
import io
import math
import statistics
import sys
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.quality_set import (
    CLEAN,
    DEGRADED,
    FLAT_ART,
    NEEDS_REFERENCE,
    PERIODIC,
    PHOTO,
    PROCEDURAL,
    available_photos,
    degrade,
    encode,
    flat_art,
    periodic_texture,
    photo_crop,
    photos_available,
    picture,
    picture_name,
    upscale_nearest,
    variants,
)
from monitor.config import QualityConfig
from monitor.enums import Verdict
from monitor.scoring import score_image
from monitor.scoring.pipeline import release
from monitor.scoring.profile import STATISTICS, ReferenceImage, ReferenceProfile, reference_from_assessment
from monitor.scoring.types import Assessment, ScoringInput
from probes.emulator.images import encode_png, render_image

GROUPS = ("photo", "procedural")
#: the share of each degraded class that must be caught (%); classes not listed have no target yet
MUST_CATCH = {"truncated": 100.0, "undecodable": 100.0, "wrong_size": 100.0, "black": 100.0, "blank": 100.0,
              "noise": 100.0, "blur": 95.0, "heavy_jpeg": 95.0, "swapped": 95.0}
MAX_FALSE_ALARMS = 2.0  # % of clean variants (each clean class and all together)
#: pictures per procedural family and photographs (None: all bundled) for the default and quick runs
DEFAULT_SET = dict(per_family=4, photos=None)
QUICK_SET = dict(per_family=2, photos=6)


@dataclass
class Result:
    group: str
    family: str
    name: str
    variant: str
    clean: bool
    verdict: Verdict
    flags: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    reference_distance: int | None = None

    @property
    def alarm(self) -> bool:
        """Scoring said something is wrong: a hit on a degraded variant, a false alarm on a clean one."""
        return self.verdict is not Verdict.PASS

    @property
    def wrong(self) -> bool:
        return self.alarm if self.clean else not self.alarm


def evaluate(per_family: int = 4, photos: int | None = None, side: int = 512,
             only: tuple[str, ...] | None = None) -> list[Result]:
    """Score every variant of the set as the monitor would."""
    results = []
    for s in variants(per_family=per_family, side=side, photos=photos, only=only):
        refs = [s.reference] if (s.clean or s.variant in NEEDS_REFERENCE) else None
        size = s.requested_size if s.variant == "wrong_size" or s.clean and s.variant != "resize_0.9" else None
        a = score_image(s.data, requested_size=size, references=refs, noise_check=True)
        results.append(Result(s.group, s.family, s.name, s.variant, s.clean, a.verdict, list(a.flags),
                              dict(a.metrics), a.reference_distance))
    return results


def rates(results: Iterable[Result]) -> dict[tuple[str, str], tuple[int, int]]:
    """(variant, group or "total") -> (alarms, count)."""
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in results:
        keys = [(r.variant, r.group), (r.variant, "total")]
        if r.clean:
            keys += [("clean", r.group), ("clean", "total")]
        for key in keys:
            out[key][0] += r.alarm
            out[key][1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def shortfalls(results: list[Result]) -> list[str]:
    """Every target the results miss, one sentence each (empty: all targets met)."""
    table = rates(results)
    short = []
    for variant, target in MUST_CATCH.items():
        for group in GROUPS:
            if (variant, group) in table:
                hits, n = table[variant, group]
                if 100 * hits / n < target:
                    short.append(f"{variant} [{group}]: {hits}/{n} caught, target {target:g} %")
    for variant in (*CLEAN, "clean"):
        for group in GROUPS:
            if (variant, group) in table:
                alarms, n = table[variant, group]
                if 100 * alarms / n > MAX_FALSE_ALARMS:
                    short.append(f"{variant} [{group}]: {alarms}/{n} false alarms, target <= {MAX_FALSE_ALARMS:g} %")
    return short


def _pct(hits: int, n: int) -> str:
    return f"{100 * hits / n:.1f} % ({hits}/{n})"


def quality_figures(results: list[Result]) -> list[dict[str, Any]]:
    table = rates(results)
    figures = []

    def row(label: str, variant: str, target: str, ok) -> None:
        alarms, n = table[variant, "total"]
        parts = [f"{g} {_pct(*table[variant, g])}" for g in GROUPS if (variant, g) in table]
        met = all(ok(100 * table[variant, g][0] / table[variant, g][1]) for g in GROUPS if (variant, g) in table)
        note = "; ".join(parts) + f"; {target}" + ("" if met or not target.startswith("target") else "  << SHORT")
        figures.append(dict(name=label, value=100 * alarms / n, unit="%", note=note))

    for variant in DEGRADED:
        if (variant, "total") not in table:
            continue
        target = MUST_CATCH.get(variant)
        row(f"detected: {variant}", variant, f"target >= {target:g} %" if target else "no target set",
            (lambda v, t=target: t is None or v >= t))
    for variant in (*CLEAN, "clean"):
        if (variant, "total") not in table:
            continue
        label = "false alarms: all clean variants" if variant == "clean" else f"false alarms: {variant}"
        row(label, variant, f"target <= {MAX_FALSE_ALARMS:g} %", lambda v: v <= MAX_FALSE_ALARMS)
    return figures


def _base_pipeline(data: bytes):
    """Decode + validation + detectors + hashes: the first stages of ``score_image``, run the same way."""
    from monitor.scoring import detectors, hashes, resolution, validate
    from monitor.scoring.types import Assessment, ScoringInput

    given = ScoringInput(data=data)
    out = Assessment(size_bytes=len(data))
    for stage in (validate.decode_and_validate, *detectors.DETECTORS, resolution.upscaled, hashes.perceptual_hashes):
        stage(given, out)
        if out.decisive:
            break
    out.image = out._small = out._grey = None
    return out


def _decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()


def speed(rounds: int, warmup: int = 3) -> list[dict[str, Any]]:
    family = PHOTO if photos_available() else "landscape"
    what = f"{picture_name(family, 0)} 1024x1024 PNG"
    data = encode(picture(family, 0, 1024))  # default zlib level, as providers send
    runs = {"decode": _decode, "base": _base_pipeline, "default": lambda d: score_image(d)}
    order = list(runs)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(warmup + rounds):
        rotation = order[r % 3:] + order[:r % 3]  # interleaved, and no run always first
        for name in rotation:
            t0 = time.perf_counter()
            runs[name](data)
            elapsed = time.perf_counter() - t0
            if r >= warmup:
                times[name].append(elapsed)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = {k: statistics.median(t / d for t, d in zip(times[k], times["decode"])) for k in ("base", "default")}
    note = f"median of {rounds} interleaved rounds"
    return [
        dict(name=f"Pillow decode ({what})", value=1000 * med["decode"], unit="ms", note=f"{note}; {len(data) // 1024} KiB"),
        dict(name="base pipeline", value=1000 * med["base"], unit="ms",
             note="decode + validation + detectors + upscale check + pHash/dHash/wHash/colour hash"),
        dict(name="base / decode", value=ratio["base"], unit="x", note="median of per-round ratios; aim <= 2.5"),
        dict(name="score_image default (no references)", value=1000 * med["default"], unit="ms",
             note="every stage score_image runs by default"),
        dict(name="default / decode", value=ratio["default"], unit="x", note="median of per-round ratios"),
    ]


def notice() -> list[dict[str, Any]]:
    """The one line saying the set lacks photographs (none when they are there)."""
    if photos_available():
        return []
    return [dict(name="photo family", value="skipped", unit="",
                 note="scikit-image is not installed: procedural pictures only")]


# -- reference profiles of random-seed canaries -------------------------------------------------
#
# A ``seed: random`` canary returns a different picture of the same prompt every run, so its
# profile's statistics (BRISQUE, colourfulness, entropy, colour histogram, sharpness) vary with
# content.  This section simulates such canaries, builds their profiles as ``genstatus baseline``
# does (``reference_entry(png, seed=None)``, ``ReferenceProfile(entries, seed=None)``) from N of
# their outputs and scores their other outputs (clean: PNG and JPEG q85) and degraded versions of
# them against it.  Every output is measured once; each profile is a cyclic window of N outputs
# (so every output is a reference for some profiles and judged by the others).  The stages before
# ``references.compare`` do not depend on the profile and run once per picture; the stages from
# ``compare`` on run per profile, on a copy of that measurement (``score_image`` runs the same
# stages in the same order: tests/test_quality_eval.py checks that both agree).

#: reference-profile sizes simulated (``genstatus baseline`` takes 5 samples by default)
PROFILE_SIZES = (3, 5, 10)
PROFILE_CLEAN = ("png", "jpeg_q85")
PROFILE_DEGRADED = ("blur", "heavy_jpeg", "down_up", "noise", "few_colours", "swapped")
#: emulator canaries: (id, prompt, model), drawn as the emulators draw them (probes.emulator.images)
EMULATOR_CANARIES = (("still-life", "a red apple on a wooden table, soft daylight, photograph", "dall-e-3"),
                     ("lighthouse", "a lighthouse on a cliff at dusk, oil painting", "flux-dev"))
EMULATOR_SIDE = 1024  # the starter configuration's canary size
PROFILE_FAMILIES = tuple(f for f in PROCEDURAL if f != "canary")  # "canary" is the emulators' renderer again
#: outputs per simulated canary, procedural families, emulator canaries, photographs (None: all bundled)
PROFILE_SET = dict(outputs=12, families=PROFILE_FAMILIES, emulators=2, photos=10)
PROFILE_QUICK = dict(outputs=12, families=("landscape", "fog"), emulators=1, photos=3)


@dataclass
class SimulatedCanary:
    """A ``seed: random`` canary: ``draw(i)`` is its i-th output (the same prompt, another seed)."""

    group: str  # "photo" or "procedural"
    name: str
    draw: Callable[[int], Image.Image]


def simulated_canaries(families: Iterable[str] = PROFILE_FAMILIES, emulators: int = 2,
                       photos: int | None = None) -> list[SimulatedCanary]:
    """Procedural: the emulators' canary pictures (one prompt, seeds 1000, 1001, ...) and each
    procedural family of the quality set (its pictures 0, 1, ...: one recipe, other random draws).
    Photographs: random square crops of one bundled photograph (``quality_set.photo_crop``).  The
    emulator canaries are spread out so that the next canary of the group (whose picture is the
    "swapped" content) is another kind of picture whenever there are families between them."""
    families = list(families)
    emulator = [SimulatedCanary("procedural", f"emulator:{cid}",
                                lambda i, p=prompt, m=model: render_image(p, 1000 + i, m, EMULATOR_SIDE, EMULATOR_SIDE))
                for cid, prompt, model in EMULATOR_CANARIES[:emulators]]
    drawn = [SimulatedCanary("procedural", f, lambda i, f=f: picture(f, i, 512)) for f in families]
    procedural: list[SimulatedCanary] = []
    step = max(1, math.ceil(len(drawn) / max(len(emulator), 1)))
    for k, canary in enumerate(emulator):
        procedural += [canary, *drawn[k * step:(k + 1) * step]]
    procedural += drawn[len(emulator) * step:]
    names = available_photos()
    chosen = names if photos is None else names[:photos]
    shots = [SimulatedCanary("photo", f"photo:{name}",
                             lambda i, n=name, j=j: photo_crop(n, np.random.default_rng((4242, j, i)), 512))
             for j, name in enumerate(chosen)]
    return procedural + shots


def _profile_stages():
    """(the stages before ``references.compare``, the stages from it on), as ``score_image`` runs them."""
    from monitor.scoring import references
    from monitor.scoring.pipeline import _stages

    stages = _stages()
    cut = stages.index(references.compare)
    return stages[:cut], stages[cut:]


def measure(data: bytes) -> Assessment:
    """The profile-independent stages of ``score_image`` (decoded pixels released afterwards)."""
    before, _ = _profile_stages()
    given = ScoringInput(data=data)
    out = Assessment(size_bytes=len(data))
    for stage in before:
        stage(given, out)
        if out.decisive:
            break
    release(out)
    return out


def entry(measured: Assessment) -> ReferenceImage | None:
    """What ``reference_entry(data, seed=None, with_thumbnail=False)`` makes of the same picture."""
    if not measured.valid or "blank" in measured.flags:
        return None
    return reference_from_assessment(measured, None, with_thumbnail=False)


def judge(measured: Assessment, data: bytes, profile: ReferenceProfile, seed: int,
          quality: QualityConfig | None = None) -> Assessment:
    """``score_image(data, profile=profile, seed=seed, quality=quality)`` from the picture's :func:`measure`
    (made with the default thresholds: the stages before ``compare`` read none but ``noise_check``).
    The decoded pixels are gone, so a configured CLIP check (``quality.clip``) would be skipped."""
    if measured.decisive:
        return measured
    out = copy.copy(measured)
    out.flags, out.reasons, out.metrics = list(measured.flags), list(measured.reasons), dict(measured.metrics)
    given = ScoringInput(data=data, profile=profile, seed=seed, quality=quality or QualityConfig())
    for stage in _profile_stages()[1]:
        stage(given, out)
        if out.decisive:
            break
    return out


def fired(a: Assessment, tolerance: float) -> tuple[str, ...]:
    """The checks that raised an alarm: flag names, ``outside_profile`` split by statistic."""
    labels: list[str] = []
    for flag in a.flags:
        if flag != "outside_profile":
            labels.append(flag)
            continue
        for name, (_, direction, _) in STATISTICS.items():
            d = a.metrics.get(f"{name}_deviation")
            if d is not None and abs(d) > tolerance and (direction == 0 or math.copysign(1, d) == direction):
                labels.append(f"outside_profile:{name}")
    return tuple(dict.fromkeys(labels))


@dataclass
class Judgment:
    group: str
    canary: str
    n: int  # references in the profile
    window: int  # which cyclic window of outputs made the profile
    output: int
    variant: str  # a PROFILE_CLEAN or PROFILE_DEGRADED class
    clean: bool
    verdict: Verdict
    fired: tuple[str, ...]
    deviations: dict[str, float]  # statistic -> deviation (signed, in robust spreads)
    sharpness_ratio: float | None

    @property
    def alarm(self) -> bool:
        return self.verdict is not Verdict.PASS


@dataclass
class MeasuredCanary:
    """Every output of one simulated canary, measured once: ``samples[i]`` lists (variant, bytes,
    measurement) of output i (its clean variants first, the PNG first of all); ``entries[i]`` is
    that PNG as a reference entry (None when it is not a usable picture)."""

    canary: SimulatedCanary
    samples: list[list[tuple[str, bytes, Assessment]]]
    entries: list[ReferenceImage | None]


def measure_outputs(canary: SimulatedCanary, other: SimulatedCanary, outputs: int, *, degraded_per_output: int = 1,
                    offset: int = 0) -> MeasuredCanary:
    """Each output of ``canary`` as PNG (the emulators' encoding), JPEG q85 and ``degraded_per_output``
    degraded classes of :data:`PROFILE_DEGRADED` (round robin over the outputs, shifted by ``offset``;
    "swapped" is an output of ``other``, resized to the canary's size)."""
    rng = np.random.default_rng(zlib.crc32(canary.name.encode()))
    samples, entries = [], []
    for i in range(outputs):
        img = canary.draw(i)
        variants_ = [("png", encode_png(img)), ("jpeg_q85", encode(img, "JPEG", quality=85))]
        for k in range(degraded_per_output):
            kind = PROFILE_DEGRADED[(offset + i + k * len(PROFILE_DEGRADED) // degraded_per_output) % len(PROFILE_DEGRADED)]
            swap = other.draw(500 + i) if kind == "swapped" else img
            if swap.size != img.size:
                swap = swap.resize(img.size, Image.Resampling.LANCZOS)
            variants_.append((kind, degrade(kind, img, swap, rng)))
        samples.append([(kind, data, measure(data)) for kind, data in variants_])
        entries.append(entry(samples[-1][0][2]))
    return MeasuredCanary(canary, samples, entries)


def judge_outputs(measured: MeasuredCanary, sizes: Iterable[int] = PROFILE_SIZES,
                  quality: QualityConfig | None = None) -> list[Judgment]:
    """For each N (smaller than the number of outputs), every cyclic window of N outputs is a
    profile (``seed=None``, as ``genstatus baseline`` stores a ``seed: random`` canary) and every
    variant of every output outside the window is judged against it, with a seed of its own."""
    quality = quality or QualityConfig()
    canary, outputs = measured.canary, len(measured.samples)
    judgments = []
    for n in sizes:
        if n >= outputs:
            continue
        for window in range(outputs):
            members = {(window + j) % outputs for j in range(n)}
            refs = [measured.entries[j] for j in sorted(members) if measured.entries[j] is not None]
            profile = ReferenceProfile(images=refs, seed=None)
            for i in range(outputs):
                if i in members:
                    continue
                for kind, data, m in measured.samples[i]:
                    a = judge(m, data, profile, seed=10_000 + i, quality=quality)
                    devs = {name: a.metrics[f"{name}_deviation"] for name in STATISTICS
                            if f"{name}_deviation" in a.metrics}
                    judgments.append(Judgment(canary.group, canary.name, n, window, i, kind, kind in PROFILE_CLEAN,
                                              a.verdict, fired(a, quality.profile_tolerance), devs,
                                              a.metrics.get("sharpness_ratio")))
    return judgments


def measure_canaries(outputs: int = 12, families: Iterable[str] = PROFILE_FAMILIES, emulators: int = 2,
                     photos: int | None = None, degraded_per_output: int = 1) -> Iterator[MeasuredCanary]:
    """:func:`measure_outputs` of every simulated canary, one at a time; "swapped" takes an output of the
    next canary of the same group."""
    canaries = simulated_canaries(families, emulators, photos)
    for group in GROUPS:
        members = [c for c in canaries if c.group == group]
        for k, canary in enumerate(members):
            if len(members) > 1:
                other = members[(k + 1) % len(members)]
            else:
                other = canaries[(canaries.index(canary) + 1) % len(canaries)]
            yield measure_outputs(canary, other, outputs, degraded_per_output=degraded_per_output, offset=k)


def evaluate_profiles(outputs: int = 12, families: Iterable[str] = PROFILE_FAMILIES, emulators: int = 2,
                      photos: int | None = None, sizes: Iterable[int] = PROFILE_SIZES, degraded_per_output: int = 1,
                      quality: QualityConfig | None = None) -> list[Judgment]:
    """Judgments of every simulated canary (:func:`measure_canaries`, then :func:`judge_outputs`)."""
    sizes = tuple(sizes)
    judgments = []
    for measured in measure_canaries(outputs, families, emulators, photos, degraded_per_output):
        judgments += judge_outputs(measured, sizes, quality)
    return judgments


def _bad_side(name: str, deviation: float) -> float:
    """The deviation in the statistic's bad direction (the absolute one for two-sided statistics)."""
    direction = STATISTICS[name][1]
    return abs(deviation) if direction == 0 else direction * deviation


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def _labels(judgments: list[Judgment], top: int = 4) -> str:
    """The checks that fired, by how many judgments each fired in (a judgment can count for several)."""
    counts = Counter(label for j in judgments for label in j.fired)
    return ", ".join(f"{k.removeprefix('outside_profile:')} {v}" for k, v in counts.most_common(top)) or "-"


def profile_figures(judgments: list[Judgment]) -> list[dict[str, Any]]:
    """Per (group, N): false alarms on clean outputs; per (degraded class, N): the share caught per group."""
    figures = []
    by: dict[tuple, list[Judgment]] = defaultdict(list)
    for j in judgments:
        by[j.group, j.n, "clean" if j.clean else j.variant].append(j)
    sizes = sorted({j.n for j in judgments})
    for n in sizes:
        for group in GROUPS:
            js = by.get((group, n, "clean"))
            if not js:
                continue
            alarms = [j for j in js if j.alarm]
            canaries = {j.canary for j in js}
            outputs = {(j.canary, j.output) for j in js}
            figures.append(dict(
                name=f"profile false alarms [{group}, N={n}]", value=100 * len(alarms) / len(js), unit="%",
                note=(f"{len(alarms)}/{len(js)} clean judgments ({len(canaries)} canaries, {len(outputs)} outputs "
                      f"x PNG/JPEG q85 x every window); {len({(j.canary, j.output) for j in alarms})} outputs "
                      f"alarmed; by: {_labels(alarms)}; target <= {MAX_FALSE_ALARMS:g} %"
                      + ("  << OVER" if 100 * len(alarms) / len(js) > MAX_FALSE_ALARMS else ""))))
    for n in sizes:
        for variant in PROFILE_DEGRADED:
            total = [j for g in GROUPS for j in by.get((g, n, variant), [])]
            if not total:
                continue
            parts = []
            for group in GROUPS:
                js = by.get((group, n, variant), [])
                if js:
                    caught = [j for j in js if j.alarm]
                    parts.append(f"{group} {_share(len(caught), len(js))} of {len(js)} (by {_labels(caught, 3)})")
            figures.append(dict(name=f"profile detected: {variant} [N={n}]",
                                value=100 * sum(j.alarm for j in total) / len(total), unit="%", note="; ".join(parts)))
    return figures


def profile_report(judgments: list[Judgment], tolerance: float | None = None, blur_ratio: float | None = None) -> str:
    """The distributions behind the figures: per statistic and N, the deviations of clean outputs
    (99th percentile and maximum of |deviation|, maximum in the bad direction) and, per degraded
    class, the median deviation in the bad direction and the share beyond the tolerance; the
    sharpness ratio likewise; and every canary with a false alarm."""
    tolerance = QualityConfig().profile_tolerance if tolerance is None else tolerance
    blur_ratio = QualityConfig().blur_ratio if blur_ratio is None else blur_ratio
    lines = [f"deviations from the profile (tolerance {tolerance:g}; bad = in the statistic's bad direction, "
             f"|d| for two-sided ones); degraded: median bad-direction deviation / share beyond {tolerance:g}"]
    sizes = sorted({j.n for j in judgments})
    header = f"{'group':10s} {'N':>2s} {'statistic':15s} {'clean n':>7s} {'p99|d|':>8s} {'max|d|':>8s} {'max bad':>7s}  " + \
             "  ".join(f"{v:>15s}" for v in PROFILE_DEGRADED)
    lines += [header, "-" * len(header)]
    for group in GROUPS:
        for n in sizes:
            js = [j for j in judgments if j.group == group and j.n == n]
            if not js:
                continue
            for name in STATISTICS:
                if name == "log_sharpness":
                    continue
                clean = [j.deviations[name] for j in js if j.clean and name in j.deviations]
                if not clean:
                    continue
                mags = np.abs(clean)
                cells = []
                for variant in PROFILE_DEGRADED:
                    bad = [_bad_side(name, j.deviations[name]) for j in js if j.variant == variant and name in j.deviations]
                    cells.append(f"{np.median(bad):6.1f} / {_share(sum(b > tolerance for b in bad), len(bad)):>6s}"
                                 if bad else "-")
                lines.append(f"{group:10s} {n:2d} {name:15s} {len(clean):7d} {np.percentile(mags, 99):8.2f} "
                             f"{mags.max():8.2f} {max(_bad_side(name, d) for d in clean):7.2f}  "
                             + "  ".join(f"{c:>15s}" for c in cells))
            ratios = [j.sharpness_ratio for j in js if j.clean and j.sharpness_ratio is not None]
            if ratios:
                cells = []
                for variant in PROFILE_DEGRADED:
                    r = [j.sharpness_ratio for j in js if j.variant == variant and j.sharpness_ratio is not None]
                    cells.append(f"{np.median(r):6.2f} / {_share(sum(x < blur_ratio for x in r), len(r)):>6s}" if r else "-")
                lines.append(f"{group:10s} {n:2d} {'sharpness ratio':15s} {len(ratios):7d} {'p1 ' + format(np.percentile(ratios, 1), '.2f'):>8s} "
                             f"{'min ' + format(min(ratios), '.2f'):>8s} {'':7s}  " + "  ".join(f"{c:>15s}" for c in cells))
    lines += ["", f"sharpness ratio: p1 and min on clean outputs; degraded: median / share below {blur_ratio:g} (blurry)"]
    alarms = [j for j in judgments if j.clean and j.alarm]
    lines += ["", f"clean outputs with a false alarm ({len(alarms)} judgments):" if alarms else "no false alarm on clean outputs"]
    per: dict[tuple, list[Judgment]] = defaultdict(list)
    for j in alarms:
        per[j.canary, j.n].append(j)
    for (canary, n), js in sorted(per.items()):
        total = sum(1 for j in judgments if j.canary == canary and j.n == n and j.clean)
        worst = {}
        for j in js:
            for name, d in j.deviations.items():
                if abs(d) > abs(worst.get(name, 0.0)):
                    worst[name] = d
        ratio = min((j.sharpness_ratio for j in js if j.sharpness_ratio is not None), default=None)
        lines.append(f"  {canary:24s} N={n:<2d} {len(js)}/{total}  by {_labels(js, 5)}; outputs "
                     f"{sorted({j.output for j in js})}; worst deviations "
                     f"{ {k: round(v, 1) for k, v in worst.items()} }"
                     + (f"; min sharpness ratio {ratio:.2f}" if ratio is not None else ""))
    return "\n".join(lines)


# -- low-resolution drafts upscaled (monitor/scoring/resolution.py) ------------------------------
#
# Every picture of the set (procedural families and photographs, at 512 px and at 500 px: 3 divides
# neither side, 8 not 500) shrunk to 1/k and blown up again with nearest-neighbour, saved as
# PNG or re-encoded as JPEG q85 or WebP q90, scored without and with the clean original as the reference.
# The clean pictures (PNG, JPEG q60/q85/q95, WebP q75/q90), and pictures that are flat or blocky on purpose
# (pixel art, logos, flat illustrations and gradients: quality_set.FLAT_ART) with the prompt that asks for
# them, in the same encodings, must not be flagged ``upscaled``; pixel art is also judged without that
# prompt against itself as the reference.  So must natural periodic textures (quality_set.PERIODIC: a
# window screen, a fabric weave, a brick wall, a tiled floor, a chessboard, a spreadsheet, at periods
# 3..9 px, with grain and with or without blur), judged with their prompt.

UPSCALE_FACTORS = (2, 3, 4, 8)
PERIODIC_GROUP = "periodic textures"
#: encoding -> (Pillow format, quality): what a draft is served as, and the clean pictures' encodings
UPSCALE_ENCODINGS = {"png": ("PNG", None), "jpeg_q85": ("JPEG", 85), "webp_q90": ("WEBP", 90)}
UPSCALE_CLEAN = {"png": ("PNG", None), "jpeg_q60": ("JPEG", 60), "jpeg_q85": ("JPEG", 85),
                 "jpeg_q95": ("JPEG", 95), "webp_q75": ("WEBP", 75), "webp_q90": ("WEBP", 90)}
#: % caught from 1/3 or smaller, with or without references, per encoding (none set: figures only)
UPSCALE_TARGETS = {"png": 90.0, "jpeg_q85": 85.0}
UPSCALE_MAX_FALSE_ALARMS = 1.0  # % of clean pictures flagged ``upscaled``
UPSCALE_MAX_MS = 10.0  # the check on a decoded 1024 x 1024 picture
UPSCALE_SET = dict(per_family=4, photos=None, flat=8, periodic=14)
UPSCALE_QUICK = dict(per_family=1, photos=3, flat=2, periodic=7)


@dataclass
class UpscaleCase:
    group: str  # "photo", "procedural", a FLAT_ART kind or "periodic textures"
    name: str
    factor: int  # 0: a clean picture
    encoding: str
    reference: bool  # scored with the clean original (or the picture itself) as the reference
    flagged: bool  # the ``upscaled`` flag
    other: bool  # another check alone said something is wrong (what scoring said before this detector)


def _upscale_case(group: str, name: str, factor: int, encoding: str, data: bytes, reference: bytes | None,
                  prompt: str | None = None) -> UpscaleCase:
    a = score_image(data, references=[reference] if reference else None, prompt=prompt)
    return UpscaleCase(group, name, factor, encoding, reference is not None, "upscaled" in a.flags,
                       any(f != "upscaled" for f in a.flags))


def _encodings(img: Image.Image, png: bytes) -> Iterator[tuple[str, bytes]]:
    """(encoding, data) of a clean picture in every encoding of ``UPSCALE_CLEAN``."""
    for encoding, (fmt, quality) in UPSCALE_CLEAN.items():
        yield encoding, png if fmt == "PNG" else encode(img, fmt, quality=quality)


def evaluate_upscale(per_family: int = 4, photos: int | None = None, flat: int = 8,
                     periodic: int = 14) -> list[UpscaleCase]:
    cases: list[UpscaleCase] = []
    pictures = [(f, i) for f in PROCEDURAL for i in range(per_family)]
    if photos_available():
        pictures += [(PHOTO, i) for i in range(len(available_photos()) if photos is None else photos)]
    for n, (family, index) in enumerate(pictures):
        side = 512 if n % 2 == 0 else 500
        img = picture(family, index, side)
        group, name = ("photo" if family == PHOTO else "procedural"), picture_name(family, index)
        reference = encode_png(img)
        for encoding, data in _encodings(img, reference):
            for ref in (None, reference):
                cases.append(_upscale_case(group, name, 0, encoding, data, ref))
        for factor in UPSCALE_FACTORS:
            for encoding, (fmt, quality) in UPSCALE_ENCODINGS.items():
                data = upscale_nearest(img, factor, quality, fmt)
                for ref in (None, reference):
                    cases.append(_upscale_case(group, name, factor, encoding, data, ref))
    for kind, prompt in FLAT_ART.items():
        for index in range(flat):
            img = flat_art(kind, index)
            png = encode_png(img)
            for encoding, data in _encodings(img, png):
                for ref in (None, png):
                    cases.append(_upscale_case(kind, f"{kind}#{index}", 0, encoding, data, ref, prompt))
            if kind == "pixel_art":  # no prompt saying so: the blocky reference says it is this canary's normal
                cases.append(_upscale_case("pixel_art (reference, no prompt)", f"{kind}#{index}", 0, "png", png, png))
    for kind, prompt in PERIODIC.items():
        for index in range(periodic):  # periods 3..9, every other one blurred; 500 px too (off every grid)
            img = periodic_texture(kind, index, 512 if index % 2 == 0 else 500)
            png = encode_png(img)
            for encoding, data in _encodings(img, png):
                cases.append(_upscale_case(PERIODIC_GROUP, f"{kind}#{index}", 0, encoding, data, None, prompt))
    return cases


def upscale_speed(rounds: int, warmup: int = 3) -> list[dict[str, Any]]:
    """The upscale check on a decoded 1024 x 1024 picture against Pillow's decode of it, interleaved; as
    PNG (the lattice test alone) and as JPEG q85 (the comb and codec-grid tests too, which a clean JPEG
    always goes through)."""
    from monitor.scoring.resolution import block_factor

    family = PHOTO if photos_available() else "landscape"
    img = picture(family, 0, 1024)
    rows = []
    for label, data in (("PNG", encode(img)), ("JPEG q85", encode(img, "JPEG", quality=85))):
        decode_times, check_times = [], []
        for r in range(warmup + rounds):
            t0 = time.perf_counter()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                t1 = time.perf_counter()
                block_factor(image)
                t2 = time.perf_counter()
            if r >= warmup:
                decode_times.append(t1 - t0)
                check_times.append(t2 - t1)
        ratio = statistics.median(c / d for c, d in zip(check_times, decode_times))
        suffix = "" if label == "PNG" else f", {label}"
        check = 1000 * statistics.median(check_times)
        rows += [dict(name=f"upscale check{suffix}", value=check, unit="ms",
                      note=f"on a decoded {picture_name(family, 0)} 1024x1024 {label}; median of {rounds} rounds; "
                           f"target <= {UPSCALE_MAX_MS:g} ms" + ("" if check <= UPSCALE_MAX_MS else "  << OVER")),
                 dict(name=f"upscale check / decode{suffix}", value=ratio, unit="x",
                      note=f"median of per-round ratios against a bare Pillow decode of the same {label}")]
    return rows


def upscale_figures(cases: list[UpscaleCase]) -> list[dict[str, Any]]:
    figures = []
    for reference in (False, True):
        where = "with reference" if reference else "no reference"
        for factor in UPSCALE_FACTORS:
            for encoding in UPSCALE_ENCODINGS:
                chosen = [c for c in cases if c.factor == factor and c.encoding == encoding and c.reference == reference]
                if not chosen:
                    continue
                parts = []
                for group in GROUPS:
                    g = [c for c in chosen if c.group == group]
                    if g:
                        parts.append(f"{group} {_pct(sum(c.flagged for c in g), len(g))}")
                before = sum(c.other for c in chosen)
                after = sum(c.flagged or c.other for c in chosen)
                caught = 100 * sum(c.flagged for c in chosen) / len(chosen)
                target = UPSCALE_TARGETS.get(encoding) if factor >= 3 else None
                note = "; ".join(parts) + f"; not pass: before {_pct(before, len(chosen))}, now {_pct(after, len(chosen))}"
                if target is not None:
                    note += f"; target >= {target:g} %" + ("" if caught >= target else "  << SHORT")
                figures.append(dict(name=f"upscaled caught: 1/{factor} {encoding}, {where}", value=caught, unit="%",
                                    note=note))
    clean_groups = [*GROUPS, *FLAT_ART, "pixel_art (reference, no prompt)", PERIODIC_GROUP]
    for group in clean_groups:
        chosen = [c for c in cases if c.factor == 0 and c.group == group]
        if not chosen:
            continue
        alarms = sum(c.flagged for c in chosen)
        value = 100 * alarms / len(chosen)
        encodings = "/".join(dict.fromkeys(c.encoding for c in chosen))
        label = {"pixel_art": "pixel art (prompt asks)", "flat": "flat illustrations", "logo": "logos",
                 "gradient": "flat-design gradients"}.get(group, f"clean {group}" if group in GROUPS else group)
        refs = "/".join(dict.fromkeys("with reference" if c.reference else "without" for c in chosen))
        figures.append(dict(name=f"upscaled false alarms: {label}", value=value, unit="%",
                            note=f"{alarms}/{len(chosen)} ({encodings}; {refs}); "
                                 f"target <= {UPSCALE_MAX_FALSE_ALARMS:g} %"
                                 + ("" if value <= UPSCALE_MAX_FALSE_ALARMS else "  << OVER")))
    return figures


def upscale_shortfalls(cases: list[UpscaleCase]) -> list[str]:
    """Every upscale target the cases miss (empty: all met)."""
    return [f"{row['name']}: {row['value']:.1f} %" for row in upscale_figures(cases) if "<<" in row["note"]]


def figures(results: list[Result], quick: bool, profiles: list[Judgment] | None = None) -> list[dict[str, Any]]:
    return notice() + quality_figures(results) + (profile_figures(profiles) if profiles else []) + speed(10 if quick else 30)


def run(quick: bool = False) -> list[dict[str, Any]]:
    return (figures(evaluate(**(QUICK_SET if quick else DEFAULT_SET)), quick,
                    evaluate_profiles(**(PROFILE_QUICK if quick else PROFILE_SET)))
            + upscale_figures(evaluate_upscale(**(UPSCALE_QUICK if quick else UPSCALE_SET))) + upscale_speed(10 if quick else 30))


def describe(r: Result) -> str:
    keys = ("sharpness_ratio", "log_sharpness", "jpeg_quality", "spread", "dark_fraction", "p99",
            "neighbour_correlation", "colours", "gradient_p99")
    shown = {k: round(r.metrics[k], 3) for k in keys if k in r.metrics}
    extra = {k: round(v, 2) for k, v in r.metrics.items() if k.endswith("_deviation")}
    what = "false alarm" if r.clean else "missed"
    return (f"{what:11s} {r.variant:11s} {r.group:10s} {r.name:22s} verdict={r.verdict} flags={r.flags} "
            f"reference_distance={r.reference_distance} {shown} {extra or ''}").rstrip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_quality")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--misses", action="store_true", help="list every miss and false alarm with its metrics")
    parser.add_argument("--section", choices=("all", "set", "profile", "upscale"), default="all",
                        help="set: the evaluation set and speed; profile: random-seed canaries against their profile; "
                             "upscale: low-resolution drafts upscaled, and the cost of that check")
    args = parser.parse_args(argv)
    from benchmarks.__main__ import print_table

    began = time.perf_counter()
    if args.section == "upscale":
        cases = evaluate_upscale(**(UPSCALE_QUICK if args.quick else UPSCALE_SET))
        print_table([{"bench": "quality", **r} for r in upscale_figures(cases) + upscale_speed(10 if args.quick else 30)])
        if args.misses:
            for c in cases:
                if c.flagged == (c.factor == 0):  # a clean picture flagged, or an upscaled one missed
                    what = "false alarm" if c.factor == 0 else "missed"
                    print(f"{what:11s} {c.group:32s} {c.name:24s} 1/{c.factor} {c.encoding} reference={c.reference}")
        print(f"took {time.perf_counter() - began:.1f}s", file=sys.stderr)
        return 0
    results = evaluate(**(QUICK_SET if args.quick else DEFAULT_SET)) if args.section != "profile" else []
    profiles = None
    if args.section == "all":
        rows_upscale = upscale_figures(evaluate_upscale(**(UPSCALE_QUICK if args.quick else UPSCALE_SET)))
        rows_upscale += upscale_speed(10 if args.quick else 30)
    else:
        rows_upscale = []
    if args.section != "set":
        started = time.perf_counter()
        profiles = evaluate_profiles(**(PROFILE_QUICK if args.quick else PROFILE_SET))
        print(f"profile section took {time.perf_counter() - started:.1f}s", file=sys.stderr)
    rows = figures(results, args.quick, profiles) if args.section != "profile" else profile_figures(profiles or [])
    rows += rows_upscale
    print_table([{"bench": "quality", **r} for r in rows])
    if profiles:
        print()
        print(profile_report(profiles))
    if args.misses and results:
        print()
        for r in sorted((r for r in results if r.wrong), key=lambda r: (r.clean, r.variant, r.group, r.name)):
            print(describe(r))
        print("\n".join(["", "short of target:", *shortfalls(results)]) if shortfalls(results) else "\nall targets met")
    print(f"took {time.perf_counter() - began:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
