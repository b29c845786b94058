"""The quality evaluation set (benchmarks/quality_set.py) and the targets scoring must reach on it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from benchmarks import bench_quality, quality_set
from benchmarks.bench_quality import MUST_CATCH, Result, describe, evaluate, shortfalls
from benchmarks.quality_set import CLEAN, DEGRADED, PHOTO, PROCEDURAL, picture, variants
from monitor.enums import Verdict


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_photo_family_loads_bundled_photographs_without_network():
    pytest.importorskip("skimage")
    names = quality_set.available_photos()
    assert len(names) >= 12, names  # a release that stops bundling them would need pooch and the network
    for index in range(3):
        img = picture(PHOTO, index, 512)
        assert img.mode == "RGB" and img.size == (512, 512)
        assert float(np.asarray(img, np.float32).std()) > 5  # a real picture, not a fill


def test_every_picture_gets_every_variant():
    samples = list(variants(per_family=1, photos=2))
    pictures = {(s.family, s.index) for s in samples}
    expected = len(PROCEDURAL) + (min(2, len(quality_set.available_photos())))
    assert len(pictures) == expected
    for key in pictures:
        kinds = [s.variant for s in samples if (s.family, s.index) == key]
        assert kinds == [*CLEAN, *DEGRADED]
    assert all(s.group == ("photo" if s.family == PHOTO else "procedural") for s in samples)
    assert all(s.name for s in samples)


def test_swapped_is_another_picture_of_the_same_family_and_size():
    for s in variants(per_family=1, photos=3, only=(PHOTO, "canary", "fog")):
        if s.variant != "swapped":
            continue
        swapped, original = _pixels(s.data), _pixels(s.reference)
        assert swapped.shape == original.shape
        assert not np.array_equal(swapped, original)
        if s.family == PHOTO:
            names = quality_set.available_photos()
            same_family = [np.asarray(picture(PHOTO, j, 512)) for j in range(len(names)) if j != s.index]
        else:
            same_family = [np.asarray(picture(s.family, s.index + 100, 512))]
        assert any(np.array_equal(swapped, p) for p in same_family), (s.family, s.name)


def test_without_scikit_image_the_set_is_procedural_and_the_benchmark_says_so(monkeypatch):
    monkeypatch.setattr(quality_set, "available_photos", lambda: ())
    assert quality_set.families() == PROCEDURAL
    assert list(variants(per_family=1, only=(PHOTO,))) == []
    [line] = bench_quality.notice()
    assert line["value"] == "skipped" and "scikit-image" in line["note"]


def _result(variant: str, alarm: bool, group: str = "photo") -> Result:
    return Result(group, PHOTO, "x", variant, variant in CLEAN, Verdict.DEGRADED if alarm else Verdict.PASS)


def test_shortfalls_name_each_missed_target():
    ok = [_result("blur", True)] * 19 + [_result("png", False)] * 50 + [_result("noise", True)] * 5
    assert shortfalls(ok) == []
    assert shortfalls(ok + [_result("blur", False)]) == []  # 19 of 20 is 95 %
    assert shortfalls(ok + [_result("blur", False)] * 2) == ["blur [photo]: 19/21 caught, target 95 %"]
    assert shortfalls(ok + [_result("noise", False)]) == ["noise [photo]: 5/6 caught, target 100 %"]
    assert shortfalls(ok + [_result("png", True, "procedural")]) == [
        "png [procedural]: 1/1 false alarms, target <= 2 %", "clean [procedural]: 1/1 false alarms, target <= 2 %"]


def test_scoring_reaches_the_targets_on_a_quick_subset():
    """Every truncated/undecodable/wrong-size/black/blank/noise variant caught, >= 95 % of blur,
    heavy JPEG and swapped content, <= 2 % false alarms on clean variants -- for photographs and
    procedural pictures separately."""
    results = evaluate(per_family=1, photos=6)
    assert {r.variant for r in results} == {*CLEAN, *DEGRADED}
    assert set(MUST_CATCH) <= set(DEGRADED)
    short = shortfalls(results)
    details = [describe(r) for r in results if r.wrong]
    assert not short, "\n".join(short + details)


# -- reference profiles of random-seed canaries (bench_quality's profile section) ------------------


def test_profile_simulation_scores_as_score_image_does():
    """The profile section measures every picture once and runs the stages from ``references.compare``
    on per profile: the verdicts, flags and metrics must be those of ``score_image(data, profile=...,
    seed=...)``, and its reference entries those of ``reference_entry(data)``."""
    from monitor.scoring import score_image
    from monitor.scoring.pipeline import reference_entry
    from monitor.scoring.profile import ReferenceProfile

    canary, other = bench_quality.simulated_canaries(families=("landscape", "fog"), emulators=0, photos=0)
    measured = bench_quality.measure_outputs(canary, other, outputs=6)
    kinds = [kind for samples in measured.samples for kind, _, _ in samples]
    assert set(bench_quality.PROFILE_DEGRADED) <= set(kinds)
    for samples, made in zip(measured.samples, measured.entries):
        expected = reference_entry(samples[0][1], seed=None, with_thumbnail=False)
        assert (made.hashes, made.stats, made.histogram, made.sha256) == (
            expected.hashes, expected.stats, expected.histogram, expected.sha256)
    verdicts = set()
    for members in ((0, 1, 2), (3, 4, 5)):
        profile = ReferenceProfile(images=[measured.entries[i] for i in members], seed=None)
        for i in set(range(6)) - set(members):
            for kind, data, m in measured.samples[i]:
                got = bench_quality.judge(m, data, profile, seed=77 + i)
                want = score_image(data, profile=profile, seed=77 + i)
                assert (got.verdict, got.flags, got.reasons, got.score, got.metrics) == (
                    want.verdict, want.flags, want.reasons, want.score, want.metrics), (kind, i)
                verdicts.add(got.verdict)
    assert verdicts == {Verdict.PASS, Verdict.DEGRADED, Verdict.FAIL}


def test_swapped_content_of_a_simulated_canary_is_another_kind_of_picture():
    names = [c.name for c in bench_quality.simulated_canaries(photos=0)]
    assert len(names) == len(bench_quality.PROFILE_FAMILIES) + len(bench_quality.EMULATOR_CANARIES)
    assert not any(a.startswith("emulator:") and b.startswith("emulator:")
                   for a, b in zip(names, names[1:] + names[:1]))


def test_random_seed_profiles_stay_quiet_on_clean_outputs():
    """The quick subset -- other crops of one photograph, the emulators' canary pictures, landscapes
    and fog as the outputs of one prompt with different seeds: <= 2 % false alarms on clean outputs
    for profiles of 3, 5 and 10 references, while blur, heavy JPEG, noise and a placeholder card are
    all caught."""
    pytest.importorskip("skimage")
    from benchmarks.bench_quality import MAX_FALSE_ALARMS, PROFILE_QUICK, PROFILE_SIZES

    judgments = bench_quality.evaluate_profiles(**PROFILE_QUICK)
    for n in PROFILE_SIZES:
        clean = [j for j in judgments if j.n == n and j.clean]
        alarms = [j for j in clean if j.alarm]
        assert len(clean) >= 100
        assert 100 * len(alarms) / len(clean) <= MAX_FALSE_ALARMS, (n, [(j.canary, j.output, j.fired) for j in alarms])
    for kind in ("blur", "heavy_jpeg", "noise", "few_colours"):
        missed = [(j.canary, j.n, j.output) for j in judgments if j.variant == kind and not j.alarm]
        assert not missed, (kind, missed)
    rows = bench_quality.profile_figures(judgments)
    assert {r["name"] for r in rows} >= {f"profile false alarms [photo, N={n}]" for n in PROFILE_SIZES}
    assert "colour_distance" in bench_quality.profile_report(judgments)
