"""The probe-cost benchmark keeps working, and what it made cheaper still scores exactly as before.

The cheaper paths (shared conversions, integer block means, run-length de-duplication in BRISQUE,
metric-only stages skipped when nothing reads them, a bounded number of concurrent scorings) are
checked against the straightforward computation they replace, on emulator outputs and the quality
set's pictures: same verdict, score, flags, reasons, hashes and BRISQUE score.
"""

from __future__ import annotations

import io
import threading
import time

import imagehash
import numpy as np
import pytest
from PIL import Image

from benchmarks import bench_probe_cost as bench
from benchmarks.quality_set import variants
from monitor.config import CanaryConfig
from monitor.engine import runner as runner_module
from monitor.engine.runner import ProbeRunner, scoring_slots
from monitor.enums import Verdict
from monitor.scoring import brisque, detectors, hashes, score_image
from monitor.scoring.pipeline import reference_entry
from monitor.scoring.profile import ReferenceProfile
from probes.emulator.images import encode, render_image

# -- the straightforward code paths the cheaper ones replace -----------------------------


def _hashes_from_rgb(out) -> dict[str, str]:
    small = out.small
    return {"phash": str(imagehash.phash(small)), "dhash": str(imagehash.dhash(small)),
            "whash": str(imagehash.whash(small, image_scale=64)), "colorhash": str(imagehash.colorhash(small, binbits=3))}


def _float_block_means(rgb: np.ndarray, side: int = 64) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.float32)
    return rgb.reshape(side, rgb.shape[0] // side, side, rgb.shape[1] // side, 3).mean(axis=(1, 3))


def _unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.unique(values, return_inverse=True)


def _pictures() -> list[tuple[str, bytes, tuple[int, int]]]:
    """Emulator outputs in every format they are served in, odd modes, and the quality set's
    clean and degraded variants (blank, noise, blur, heavy JPEG, few colours, ...)."""
    out = []
    for seed in (1234, 99):
        image = render_image("a red apple on a wooden table", seed, "dall-e-3", 640, 448)
        for fmt in ("png", "jpeg", "webp"):
            out.append((f"emulator {seed} {fmt}", encode(image, fmt), image.size))
    rgba = render_image("a logo", 5, "m", 320, 320).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((320, 320)))
    for name, image in (("rgba", rgba), ("grey", render_image("fog", 6, "m", 300, 500).convert("L"))):
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        out.append((name, buffer.getvalue(), image.size))
    for sample in variants(per_family=1, side=256, photos=0):
        out.append((f"{sample.family} {sample.variant}", sample.data, sample.requested_size))
    return out


PICTURES = _pictures()


def _judgement(assessment) -> dict:
    return {**assessment.to_dict(), "valid": assessment.valid, "sha256": assessment.sha256,
            "size": (assessment.format, assessment.width, assessment.height)}


@pytest.mark.parametrize("name, data, size", PICTURES, ids=[p[0] for p in PICTURES])
def test_scoring_is_the_same_as_the_straightforward_computation(name, data, size, monkeypatch):
    fast = score_image(data, requested_size=size, noise_check=True)
    with monkeypatch.context() as patch:
        patch.setattr(hashes, "hash_image", _hashes_from_rgb)
        patch.setattr(detectors, "block_means", _float_block_means)
        patch.setattr(brisque, "_distinct", _unique)
        plain = score_image(data, requested_size=size, noise_check=True)
    assert _judgement(fast) == _judgement(plain)
    assert fast.hashes == plain.hashes
    assert fast.metrics == plain.metrics  # BRISQUE (bit for bit), spread, correlations, statistics
    if fast.verdict is not Verdict.FAIL:  # a decisive failure ends the run before BRISQUE
        assert "brisque" in fast.metrics or "brisque_blank" in fast.metrics


def _profile(data: bytes) -> ReferenceProfile:
    """Three re-encodes of the picture (of a canary render when it does not decode)."""
    try:
        image = Image.open(io.BytesIO(data)).convert("RGB")
    except OSError:
        image = render_image("a red apple on a wooden table", 1234, "dall-e-3", 320, 320)
    entries = []
    for quality in (95, 90, 85):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        entries.append(reference_entry(buffer.getvalue(), seed=7, with_thumbnail=False))
    return ReferenceProfile(images=[e for e in entries if e is not None], seed=7)


@pytest.mark.parametrize("name, data, size", PICTURES[:8] + PICTURES[-15:], ids=[p[0] for p in PICTURES[:8] + PICTURES[-15:]])
def test_skipping_the_metric_only_stages_never_changes_the_judgement(name, data, size):
    """The runner scores with ``all_metrics=False``: BRISQUE and the profile statistics run only for a profile."""
    for profile in (None, _profile(data)):
        every = score_image(data, requested_size=size, profile=profile, seed=7)
        needed = score_image(data, requested_size=size, profile=profile, seed=7, all_metrics=False)
        assert _judgement(needed) == _judgement(every)
        if profile is None:
            assert "brisque" not in needed.metrics and "log_sharpness" not in needed.metrics
        else:
            assert needed.metrics == every.metrics


def test_a_profile_still_catches_what_only_brisque_and_the_statistics_see():
    """With a profile the skipped stages run again: a blurred canary is still judged against its normal."""
    image = render_image("a red apple on a wooden table", 1234, "dall-e-3", 512, 512)
    profile = _profile(encode(image, "png"))
    from PIL import ImageFilter

    blurred = encode(image.filter(ImageFilter.GaussianBlur(4)), "png")
    needed = score_image(blurred, requested_size=(512, 512), profile=profile, seed=7, all_metrics=False)
    assert needed.verdict is Verdict.DEGRADED and "blurry" in needed.flags and "brisque" in needed.metrics
    assert _judgement(needed) == _judgement(score_image(blurred, requested_size=(512, 512), profile=profile, seed=7))


def test_the_thumbnail_keeps_the_aspect_and_the_pipeline_lets_go_of_the_pixels():
    image = render_image("a red apple on a wooden table", 1234, "dall-e-3", 1024, 640)
    assessment = score_image(encode(image, "png"), want_thumbnail=True, all_metrics=False)
    assert assessment.thumbnail is not None
    with Image.open(io.BytesIO(assessment.thumbnail)) as thumb:
        assert thumb.format == "WEBP" and max(thumb.size) == 160 and thumb.size[1] == 100
    assert assessment.image is None and assessment._small is None and assessment._luma is None
    assert assessment._grey is None and assessment._rgb32 is None


def test_scoring_runs_at_most_one_image_per_cpu_at_once(emulator, openai_service, monkeypatch):
    """Many services answering at the same moment: the scorings queue, the probes do not."""
    running, peak, lock = 0, 0, threading.Lock()
    original = runner_module.apply_scoring

    def counting(*args, **kwargs):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            time.sleep(0.05)  # long enough for every thread to arrive
            return original(*args, **kwargs)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(runner_module, "apply_scoring", counting)
    config = bench.services_config(emulator.url, 0, "sqlite://")
    services = [openai_service.model_copy(update={"id": f"openai-{n}"}) for n in range(scoring_slots() + 4)]
    config = config.model_copy(update={"services": services})
    runner = ProbeRunner(config)
    canary = CanaryConfig(id="still-life", prompt="a red apple", size="1024x1024", seed=1234)
    outcomes: list[str] = []
    threads = [threading.Thread(target=lambda s=s: outcomes.append(str(runner.run(s, canary).outcome)))
               for s in services]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        runner.close()
    assert outcomes == ["ok"] * len(services)
    assert 2 <= peak <= scoring_slots()


def test_the_benchmark_measures_every_figure():
    with bench.emulator_process() as (url, pid):
        cpu, images = bench.probe_cpu(url, pid, rounds=1)
        ratios = bench.scoring_ratios({k: images[k] for k in sorted(images)[:2]}, repeat=1)
        runtime = bench.measure_runtime(url, 3, 4.0, "2s")
    assert cpu["probes"] >= 10 and cpu["requests"] >= 1 and cpu["scoring"] > 0 and cpu["store"] > 0 and cpu["adapter"] > 0
    assert cpu["outside"] == pytest.approx(cpu["adapter"] + cpu["references"] + cpu["store"])
    assert cpu["emulator"] > 0  # the emulator's CPU is its own process's, not counted in ours
    assert len(images) >= 10 and len(ratios) == 2 and all(r["decode"] > 0 and r["scoring"] > 0 for r in ratios)
    assert runtime["services"] == 3 and runtime["probes"] >= 3 and runtime["Threads"] >= 2
    assert runtime["VmHWM"] >= runtime["VmRSS"] > 0


def test_malloc_arenas_are_capped_on_glibc_unless_the_operator_chose(monkeypatch):
    import platform

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert runner_module.limit_malloc_arenas(2) is False  # the operator's own setting wins
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert runner_module.limit_malloc_arenas(scoring_slots()) is expected


def test_a_repeated_file_reuses_the_thumbnail_and_a_new_one_gets_its_own():
    first = encode(render_image("a red apple", 1, "m", 512, 512), "png")
    second = encode(render_image("a red apple", 2, "m", 512, 512), "png")
    made = score_image(first, want_thumbnail=True)
    assert made.thumbnail is not None and made.sha256 is not None
    previous = (made.sha256, b"the thumbnail stored last time")
    assert score_image(first, want_thumbnail=True, previous_thumbnail=previous).thumbnail is previous[1]
    fresh = score_image(second, want_thumbnail=True, previous_thumbnail=previous).thumbnail
    assert fresh is not None and fresh != previous[1] and fresh != made.thumbnail
    assert fresh == score_image(second, want_thumbnail=True).thumbnail


def test_the_runner_reuses_the_thumbnail_of_a_fixed_seed_repeat(emulator):
    config = bench.services_config(emulator.url, 11, "sqlite://")
    service = next(s for s in config.services if s.provider == "automatic1111")  # honours the fixed seed
    canary = config.canaries_of(service)[0]
    runner = ProbeRunner(config)
    try:
        first, second = runner.run(service, canary), runner.run(service, canary)
    finally:
        runner.close()
    assert first.image_sha256 == second.image_sha256 and first.thumbnail
    assert second.thumbnail is first.thumbnail  # not encoded again
