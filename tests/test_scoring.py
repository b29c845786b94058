"""The foundation's scoring pipeline: decode/validate, blank detector, hashes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from monitor.enums import Verdict
from monitor.scoring import score_image


def png(image: Image.Image, fmt="PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def picture(w=256, h=256, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = (np.sin(x / (7 + seed)) + np.cos(y / 11)) * 60 + 128
    rgb = np.stack([base, base[::-1], np.roll(base, 40, axis=1)], axis=-1) + rng.normal(0, 4, (h, w, 3))
    return Image.fromarray(np.clip(rgb, 0, 255).astype("uint8"))


def test_valid_image_passes_with_hashes():
    a = score_image(png(picture()), requested_size=(256, 256))
    assert a.valid and a.verdict is Verdict.PASS and a.score == 1.0
    assert len(a.hashes["phash"]) == 16 and len(a.hashes["dhash"]) == 16
    assert a.format == "PNG" and (a.width, a.height) == (256, 256) and len(a.sha256) == 64


def test_jpeg_and_webp_accepted():
    for fmt in ("JPEG", "WEBP"):
        assert score_image(png(picture(), fmt)).verdict is Verdict.PASS


def test_truncated_undecodable_empty_and_wrong_size_are_invalid():
    data = png(picture())
    for blob, flag in [(data[: len(data) // 2], "truncated"), (b"\x89PNG not really", "undecodable"),
                       (b"", "empty"), (bytes(range(256)) * 40, "undecodable")]:
        a = score_image(blob)
        assert not a.valid and a.verdict is Verdict.FAIL and flag in a.flags, (flag, a.flags, a.reasons)
    a = score_image(data, requested_size=(512, 512))
    assert not a.valid and a.flags == ["wrong_size"] and "256x256" in a.reasons[0]


def test_blank_and_black_images_fail_but_decode():
    for colour, word in [((0, 0, 0), "black"), ((255, 255, 255), "white"), ((90, 140, 200), "single colour")]:
        a = score_image(png(Image.new("RGB", (128, 128), colour)))
        assert a.valid and a.verdict is Verdict.FAIL and a.flags == ["blank"] and word in a.reasons[0]


def test_decompression_bomb_is_refused():
    bomb = png(Image.new("1", (9000, 9000)))  # 81 M pixels, a few KB on disk
    a = score_image(bomb)
    assert not a.valid and a.flags == ["decompression_bomb"]


def test_different_pictures_have_distant_hashes():
    import imagehash

    a = score_image(png(picture(seed=1)))
    b = score_image(png(picture(seed=5)))
    assert imagehash.hex_to_hash(a.hashes["phash"]) - imagehash.hex_to_hash(b.hashes["phash"]) > 10


def test_sixteen_bit_greyscale_png_is_scaled_not_clipped():
    """Pillow's own conversion clips 16-bit values at 255 (a near-white card); scoring scales them."""
    import io

    import numpy as np
    from PIL import Image

    from monitor.scoring import score_image
    from probes.emulator.images import render_image

    grey = np.asarray(render_image("a red apple", 3, "m", 256, 256).convert("L"), dtype=np.uint16) * 257
    out = io.BytesIO()
    Image.fromarray(grey).save(out, "PNG")
    assessment = score_image(out.getvalue(), requested_size=(256, 256))
    assert assessment.valid and assessment.verdict.value == "pass", assessment.reasons
    assert assessment.metrics["colours"] > 5


def test_transparent_background_is_judged_as_shown_over_white():
    """GPT-image's transparent backgrounds hide black (0, 0, 0, 0) pixels: judged over white, a sticker
    is a picture, not a near-black placeholder; a fully transparent image is blank."""
    import io

    import numpy as np
    from PIL import Image

    from monitor.scoring import score_image
    from probes.emulator.images import render_image

    rgba = np.asarray(render_image("a red apple", 3, "m", 256, 256).convert("RGBA")).copy()
    yy, xx = np.mgrid[0:256, 0:256]
    rgba[(yy - 128) ** 2 + (xx - 128) ** 2 > 40**2] = (0, 0, 0, 0)  # a small sticker, 8 % of the canvas
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, "PNG")
    assessment = score_image(out.getvalue())
    assert "near_black" not in assessment.flags and "blank" not in assessment.flags, assessment.reasons
    empty = io.BytesIO()
    Image.new("RGBA", (128, 128), (0, 0, 0, 0)).save(empty, "PNG")
    assert score_image(empty.getvalue()).flags == ["blank"]


def test_scoring_skips_the_stages_left_when_its_budget_is_spent():
    """A budget of zero stops after the first stage: the rest are named, the verdict is not turned into a failure."""
    from monitor.scoring.pipeline import run_stages
    from monitor.scoring.types import ScoringInput

    data = png(picture())
    full = run_stages(ScoringInput(data=data))
    cut = run_stages(ScoringInput(data=data), budget_s=0.0)
    assert "scoring_budget" not in full.flags
    assert cut.flags == ["scoring_budget"] and cut.valid
    assert "skipped: " in cut.reasons[0] and "no_reference_quality" in cut.reasons[0]
