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
