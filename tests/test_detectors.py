"""Degenerate-output detectors and reference drift (monitor/scoring)."""

from __future__ import annotations

import io

import imagehash
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from monitor.enums import Verdict
from monitor.scoring import score_image
from probes.emulator.images import encode_png, render_image


def enc(image: Image.Image, fmt="PNG", **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def canary(seed=1, side=256) -> Image.Image:
    return render_image("a red apple on a table", seed, "test-model", side, side)


def test_clean_canary_pictures_pass_every_detector():
    for seed in range(20):
        for fmt in ("PNG", "JPEG"):
            a = score_image(enc(canary(seed), fmt, **({"quality": 85} if fmt == "JPEG" else {})), noise_check=True)
            assert a.verdict is Verdict.PASS, (seed, fmt, a.flags, a.reasons)


def test_near_black_placeholder_fails_unless_prompt_asks_for_dark():
    img = Image.new("RGB", (256, 256), (4, 4, 4))
    ImageDraw.Draw(img).text((70, 120), "content not available", fill=(90, 90, 90))
    a = score_image(enc(img))
    assert a.verdict is Verdict.FAIL and a.flags == ["near_black"] and "black" in a.reasons[0]
    assert "near_black" not in score_image(enc(img), prompt="a black cat at night").flags


def test_pure_noise_fails():
    rng = np.random.default_rng(3)
    noise = Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8))
    for data in (enc(noise), enc(noise, "JPEG", quality=90)):
        a = score_image(data, noise_check=True)
        assert a.verdict is Verdict.FAIL and a.flags == ["noise"] and "noise" in a.reasons[0]


def test_few_colours_card_is_degraded():
    card = Image.new("RGB", (256, 256), (200, 60, 60))
    ImageDraw.Draw(card).rectangle((40, 40, 216, 216), outline=(255, 255, 255), width=6)
    a = score_image(enc(card))
    assert a.verdict is Verdict.DEGRADED and "few_colours" in a.flags and "colours" in a.reasons[0]
    assert "few_colours" in score_image(enc(card), prompt="a red apple on a table").flags


def test_flat_art_prompts_may_have_few_colours():
    logo = Image.new("RGB", (256, 256), (255, 255, 255))
    ImageDraw.Draw(logo).ellipse((60, 60, 196, 196), fill=(230, 110, 20))
    for prompt in ("a minimalist logo of a fox", "flat vector icon of a house", "black and white line art"):
        assert "few_colours" not in score_image(enc(logo), prompt=prompt).flags, prompt


def test_featureless_gradient_is_low_detail():
    y = np.linspace(60, 70, 256, dtype=np.float32)[:, None, None] * np.ones((256, 256, 3), np.float32)
    y[..., 0] += np.linspace(0, 30, 256)[None, :]
    a = score_image(enc(Image.fromarray(y.astype(np.uint8))))
    assert "low_detail" in a.flags and a.verdict is not Verdict.PASS


def test_heavy_jpeg_is_degraded_and_normal_jpeg_passes():
    assert "jpeg_artifacts" in score_image(enc(canary(), "JPEG", quality=5)).flags
    assert score_image(enc(canary(), "JPEG", quality=75)).verdict is Verdict.PASS


def test_hashes_include_whash_and_colour_hash():
    a = score_image(encode_png(canary()))
    assert set(a.hashes) == {"phash", "dhash", "whash", "colorhash"} and len(a.hashes["whash"]) == 16


def _bits(a: bytes, b: bytes, kind="phash") -> int:
    ha, hb = score_image(a).hashes[kind], score_image(b).hashes[kind]
    return imagehash.hex_to_hash(ha) - imagehash.hex_to_hash(hb)


def test_emulator_seeds_far_apart_and_reencode_close():
    one, two = encode_png(canary(1)), encode_png(canary(2))
    assert _bits(one, two) >= 16 and _bits(one, two, "dhash") >= 16
    assert _bits(one, enc(canary(1), "JPEG", quality=85)) <= 6


def test_reference_drift_and_blur():
    ref = encode_png(canary(1))
    same = score_image(enc(canary(1), "JPEG", quality=85), references=[ref])
    assert same.verdict is Verdict.PASS and same.reference_distance is not None and same.reference_distance <= 6
    other = score_image(encode_png(canary(2)), references=[ref])
    assert other.verdict is Verdict.DEGRADED and "drift" in other.flags and other.reference_distance > 10
    blurred = score_image(enc(canary(1).filter(ImageFilter.GaussianBlur(4))), references=[ref])
    assert blurred.verdict is Verdict.DEGRADED and "blurry" in blurred.flags
    assert 0.0 <= blurred.score <= 1.0
    assert score_image(ref).reference_distance is None
    assert score_image(ref, references=[b"junk"]).verdict is Verdict.PASS  # an unusable reference is skipped


def test_a_fine_even_texture_is_not_blank_but_a_noisy_fill_is():
    """A fine texture averages to one grey at 64 px; only a fill is also flat at 256 px."""
    y, x = np.mgrid[0:768, 0:768]
    rng = np.random.default_rng(3)
    mesh = 150.0 - 60 * ((x % 6 == 0) | (y % 6 == 0)) + rng.normal(0, 3, x.shape)  # a window screen
    for picture in (mesh, 120.0 + 70 * (((x // 3) + (y // 3)) % 2)):  # and a fine chessboard
        data = enc(Image.fromarray(picture.clip(0, 255).astype(np.uint8)).convert("RGB"), "JPEG", quality=90)
        assert "blank" not in score_image(data).flags
    fill = Image.fromarray((128 + rng.normal(0, 1.5, x.shape)).clip(0, 255).astype(np.uint8)).convert("RGB")
    assert "blank" in score_image(enc(fill, "JPEG", quality=85)).flags
