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

``python -m benchmarks.bench_quality [--quick] [--misses]`` prints the same table, and with
``--misses`` every missed degraded variant and every false alarm with its flags and metrics.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from benchmarks.quality_set import (
    CLEAN, DEGRADED, NEEDS_REFERENCE, PHOTO, encode, picture, picture_name, photos_available, variants,
)
from monitor.enums import Verdict
from monitor.scoring import score_image

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
    from monitor.scoring import detectors, hashes, validate
    from monitor.scoring.pipeline import Assessment, ScoringInput

    given = ScoringInput(data=data)
    out = Assessment(size_bytes=len(data))
    for stage in (validate.decode_and_validate, *detectors.DETECTORS, hashes.perceptual_hashes):
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
             note="decode + validation + detectors + pHash/dHash/wHash/colour hash"),
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


def figures(results: list[Result], quick: bool) -> list[dict[str, Any]]:
    return notice() + quality_figures(results) + speed(10 if quick else 30)


def run(quick: bool = False) -> list[dict[str, Any]]:
    return figures(evaluate(**(QUICK_SET if quick else DEFAULT_SET)), quick)


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
    args = parser.parse_args(argv)
    from benchmarks.__main__ import print_table

    began = time.perf_counter()
    results = evaluate(**(QUICK_SET if args.quick else DEFAULT_SET))
    print_table([{"bench": "quality", **r} for r in figures(results, args.quick)])
    if args.misses:
        print()
        for r in sorted((r for r in results if r.wrong), key=lambda r: (r.clean, r.variant, r.group, r.name)):
            print(describe(r))
        print("\n".join(["", "short of target:", *shortfalls(results)]) if shortfalls(results) else "\nall targets met")
    print(f"took {time.perf_counter() - began:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
