"""Low-resolution output upscaled to the requested size (monitor/scoring/resolution.py)."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image, ImageFilter

from benchmarks import bench_quality
from benchmarks.quality_set import FLAT_ART, PERIODIC, flat_art, periodic_texture, picture, upscale_nearest
from monitor.config import ServiceConfig
from monitor.enums import Outcome, Verdict
from monitor.scoring import score_image
from monitor.scoring.resolution import RINGING, block_factor, blocks_explain_edges, boundary_profiles, comb
from probes.emulator.images import image_for, lowres, render_image
from probes.emulator.stability import SERVICE_DEFAULTS as STABILITY_DEFAULTS
from probes.providers.openai import OpenAIAdapter
from probes.providers.stability import StabilityAdapter
from tests.providers.helpers import probe


def png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def jpeg(img: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def webp(img: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    img.save(out, "WEBP", quality=quality)
    return out.getvalue()


def photo_like(seed: int, side: int = 512) -> Image.Image:
    """A procedural natural-looking picture: fractal landscape with grain (no photograph needed)."""
    return picture("landscape", seed, side)


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
@pytest.mark.parametrize("family", ["landscape", "canary", "texture", "shapes"])
def test_nearest_neighbour_upscale_is_flagged_with_its_factor(family, factor):
    img = picture(family, 1, 512)
    a = score_image(upscale_nearest(img, factor), requested_size=(512, 512))
    assert "upscaled" in a.flags and a.verdict is Verdict.DEGRADED, (a.flags, a.metrics)
    assert abs(a.metrics["block_factor"] - factor) <= 0.5


def test_reason_names_the_effective_resolution():
    a = score_image(upscale_nearest(photo_like(2), 4))
    (reason,) = [r for r in a.reasons if "lower resolution" in r]
    assert "4.0 x 4.0" in reason and "128x128 of the 512x512 returned" in reason


def test_same_picture_clean_is_not_flagged_and_was_passing_before():
    """The clean picture passes; its blocky version is the only thing that changed."""
    img = photo_like(3)
    assert score_image(png(img)).verdict is Verdict.PASS
    clean = score_image(png(img), references=[png(img)])
    assert clean.verdict is Verdict.PASS and clean.metrics["block_factor"] == 0
    blocky = score_image(upscale_nearest(img, 3), references=[png(img)])
    assert blocky.flags == ["upscaled"], blocky.flags  # no other check sees it: this detector is what catches it


@pytest.mark.parametrize("side", [500, 509, 333])
@pytest.mark.parametrize("factor", [3, 8])
def test_factor_that_does_not_divide_the_size(side, factor):
    """Blocks of floor(k) and ceil(k) pixels (509 / 3 = 169.67) are still a lattice."""
    img = picture("canary", 4, side)
    a = score_image(upscale_nearest(img, factor))
    assert "upscaled" in a.flags, a.metrics
    assert factor - 0.5 <= a.metrics["block_factor"] <= factor + 1


def test_non_square_and_different_factors_per_axis_are_handled():
    img = picture("shapes", 2, 512).resize((640, 384))
    small = img.resize((160, 96), Image.Resampling.LANCZOS)
    assert "upscaled" in score_image(png(small.resize((640, 384), Image.Resampling.NEAREST))).flags


@pytest.mark.parametrize("factor", [3, 4, 8])
def test_jpeg_reencoded_upscale_is_flagged_with_its_factor(factor):
    """JPEG q85 after the upscale (what many providers serve): ringing fills the quiet boundaries, but
    the block edges still stand out as a comb; at 512 px a 1/8 draft sits on JPEG's own grid (its
    blocks stay flat, unlike JPEG's blocks on real content), at 500 px it drifts across it (8.06)."""
    pictures = [picture(family, i, side) for family in ("canary", "landscape", "text", "shapes", "night", "texture")
                for i, side in ((0, 512), (1, 500), (2, 512))]
    factors = [block_factor(Image.open(io.BytesIO(upscale_nearest(img, factor, 85))))[0] for img in pictures]
    caught = [f for f in factors if f >= 2]
    assert len(caught) >= 16, factors  # 18 of 18 measured
    assert all(abs(f - factor) <= 0.5 for f in caught), factors


@pytest.mark.parametrize("factor", [3, 4, 8])
def test_jpeg_reencoded_upscale_of_photographs_is_flagged(factor):
    pytest.importorskip("skimage")  # the photographs bundled with scikit-image (benchmarks/quality_set.py)
    pictures = [picture("photo", i, 512 if i % 2 else 500) for i in range(6)]
    caught = sum("upscaled" in score_image(upscale_nearest(img, factor, 85)).flags for img in pictures)
    assert caught >= 5, caught


def test_webp_reencoded_upscale_off_the_codec_grid_is_flagged():
    pictures = [picture(family, 0, 512) for family in ("landscape", "text", "shapes", "night")]
    caught = sum(block_factor(Image.open(io.BytesIO(upscale_nearest(img, 3, 90, "WEBP"))))[0] == pytest.approx(3, abs=0.5)
                 for img in pictures)
    assert caught >= 3, caught


def test_comb_of_a_jpeg_draft_repeats_along_the_picture_and_a_clean_jpegs_does_not():
    draft = Image.open(io.BytesIO(upscale_nearest(picture("landscape", 1, 500), 3, 85)))
    clean = Image.open(io.BytesIO(jpeg(picture("landscape", 1, 500), 85)))
    for img in (draft, clean):
        grey = np.asarray(img.convert("L"), dtype=np.float32)
        columns = comb(boundary_profiles(grey, 1, RINGING)[1], 8)
        if img is draft:
            assert columns.holds and columns.period == pytest.approx(500 / 167), columns
        else:
            assert not columns.holds, columns


def test_mid_block_peak_of_a_smooth_jpeg_is_not_a_comb():
    """A smooth JPEG keeps mostly the lowest frequency of each 8 x 8 block, a half cosine whose
    differences peak mid-block: on its own that is a period-8 (or 4) comb off JPEG's grid, measured
    1.4 x the rest along the whole of this picture; periods that share JPEG's grid need 2 x."""
    img = picture("landscape", 2, 512)
    data = jpeg(img, 85)
    assert block_factor(Image.open(io.BytesIO(data)))[0] == 0
    assert "upscaled" in score_image(upscale_nearest(img, 4, 85)).flags


def test_flat_codec_blocks_need_edges_a_smooth_clean_jpeg_does_not_have():
    """Fog at quality 60 keeps each 8 x 8 block's mean only, as flat as a 1/8 draft's, but with edges
    of ~0.5 grey levels; the same fog drawn as a 1/8 draft has no more (and is missed: nothing tells)."""
    for index in range(4):
        fog = picture("fog", index, 512)
        assert block_factor(Image.open(io.BytesIO(jpeg(fog, 60))))[0] == 0
    draft = Image.open(io.BytesIO(upscale_nearest(picture("night", 2, 512), 8, 85)))
    assert block_factor(draft)[0] == 8  # dim, but edges of 2.4 grey levels on flat blocks


@pytest.mark.parametrize("kind", list(PERIODIC))
def test_natural_periodic_textures_are_not_read_as_blocks(kind):
    """A window screen, a weave, bricks, tiles, a chessboard or a spreadsheet repeat their edges at one
    spacing (3..9 px here, with grain of 2..6 grey levels, blurred or not), but are not a picture made
    of blocks: never ``upscaled``, in PNG, JPEG q60/q85/q95 or WebP q75/q90."""
    for index in range(14):
        img = periodic_texture(kind, index, 512 if index % 2 == 0 else 500)
        for data in (png(img), jpeg(img, 60), jpeg(img, 85), jpeg(img, 95), webp(img, 75), webp(img, 90)):
            assert block_factor(Image.open(io.BytesIO(data)))[0] == 0, (kind, index)
    a = score_image(jpeg(periodic_texture(kind, 3, 512)), prompt=PERIODIC[kind])
    assert "upscaled" not in a.flags, a.metrics


def test_window_screen_at_every_period_passes_as_jpeg():
    """Thin dark lines every 3..9 px over shading with grain (sigma 4) used to be flagged at every period
    (edges at one spacing all along the picture), but a line is a step between two cells alike inside."""
    y, x = np.mgrid[0:768, 0:768]
    rng = np.random.default_rng(1)
    for period in range(3, 10):
        base = 120 + 60 * np.sin(x / 90.0) + 40 * np.cos(y / 70.0) - 50.0 * ((x % period == 0) | (y % period == 0))
        grey = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
        img = Image.fromarray(grey).convert("RGB")
        for data in (jpeg(img, 85), jpeg(img, 95), jpeg(img.filter(ImageFilter.GaussianBlur(0.6)), 85)):
            decoded = Image.open(io.BytesIO(data))
            assert not blocks_explain_edges(np.asarray(decoded.convert("L"), dtype=np.float32), 1, period)
            assert "upscaled" not in score_image(data, prompt="a photo of a window screen").flags, period


def test_blocks_explain_the_edges_of_a_draft_and_not_of_a_pattern():
    """The block test on its own: a JPEG draft's edges are its blocks' differences; a chessboard's
    are too, but its blocks alternate (two apart alike); a brick wall's mortar is a step between
    bricks alike."""
    draft = np.asarray(Image.open(io.BytesIO(upscale_nearest(picture("landscape", 1, 512), 4, 85))).convert("L"),
                       dtype=np.float32)
    assert all(blocks_explain_edges(draft, axis, 4) for axis in (1, 0))
    for kind, index in (("chessboard", 1), ("brick", 1), ("mesh", 1)):  # period 4 each (bricks: 8 x 16)
        grey = np.asarray(Image.open(io.BytesIO(jpeg(periodic_texture(kind, index, 512), 85))).convert("L"),
                          dtype=np.float32)
        period = 8 if kind == "brick" else 4
        assert not all(blocks_explain_edges(grey, axis, period) for axis in (1, 0)), kind


def test_noisy_chessboard_png_is_not_a_lattice_of_copies_but_the_same_without_grain_is():
    """The grain inside each square leaves no boundary exactly 0: not blocks, though the edges repeat."""
    noisy = periodic_texture("chessboard", 1, 512)  # 4 px squares, grain
    assert block_factor(Image.open(io.BytesIO(png(noisy))))[0] == 0
    squares = (np.add.outer(np.arange(512) // 4, np.arange(512) // 4) % 2 * 120 + 60).astype(np.uint8)
    assert block_factor(Image.fromarray(squares))[0] == pytest.approx(4)


def test_chessboard_aligned_to_the_jpeg_grid_is_not_a_1_8_draft():
    """8 px squares on JPEG's grid whose grain q60 wiped out are as flat as a 1/8 draft's blocks, but
    every other square is alike, where a draft's blocks vary with what it shows."""
    board = periodic_texture("chessboard", 12, 512)  # 8 px squares, grain sigma 2
    for quality in (60, 85, 95):
        assert block_factor(Image.open(io.BytesIO(jpeg(board, quality))))[0] == 0, quality


def test_bilinear_upscale_is_still_caught_by_the_sharpness_check_not_by_this_one():
    img = photo_like(5)
    small = img.resize((85, 85), Image.Resampling.BILINEAR)
    smooth = png(small.resize((512, 512), Image.Resampling.BILINEAR))
    a = score_image(smooth, references=[png(img)])
    assert "blurry" in a.flags and "upscaled" not in a.flags, a.flags


@pytest.mark.parametrize("index", range(6))
def test_clean_photo_like_pictures_in_every_encoding_are_not_flagged(index):
    for family in ("landscape", "texture", "night", "fog", "text", "shapes"):
        img = picture(family, index, 512 if index % 2 else 500)
        for data in (png(img), jpeg(img, 85), jpeg(img, 60), jpeg(img, 95), webp(img, 75), webp(img, 90)):
            a = score_image(data)
            assert "upscaled" not in a.flags, (family, index, a.metrics)


def test_blurred_picture_is_not_read_as_blocks():
    blurred = photo_like(7).filter(ImageFilter.GaussianBlur(3))
    assert score_image(png(blurred)).metrics["block_factor"] == 0


@pytest.mark.parametrize("kind", ["flat", "logo", "gradient"])
def test_flat_art_logos_and_gradients_are_not_flagged_even_without_their_prompt(kind):
    for index in range(8):
        img = flat_art(kind, index)
        for data in (png(img), jpeg(img), jpeg(img, 60), jpeg(img, 95), webp(img, 75), webp(img, 90)):
            assert block_factor(Image.open(io.BytesIO(data)))[0] == 0, (kind, index)


def test_pixel_art_is_a_lattice_and_is_not_flagged_when_the_prompt_asks_for_it():
    sprites = [flat_art("pixel_art", i) for i in range(12)]
    blocky = [s for s in sprites if block_factor(s)[0] >= 2]
    assert len(blocky) >= 4  # deliberately a grid: the detector does see it
    for sprite in blocky:
        data = png(sprite)
        assert "upscaled" in score_image(data, prompt="a knight in a castle").flags
        assert "upscaled" not in score_image(data, prompt=FLAT_ART["pixel_art"]).flags
        assert "upscaled" not in score_image(data, prompt="Pixelated 16-bit sprite of a cat").flags


def test_blocky_references_mean_pixel_art_is_this_canarys_normal():
    sprite = next(s for s in (flat_art("pixel_art", i) for i in range(12)) if block_factor(s)[0] >= 2)
    other = next(s for s in (flat_art("pixel_art", i) for i in range(12, 40))
                 if abs(block_factor(s)[0] - block_factor(sprite)[0]) <= 0.5)
    assert "upscaled" not in score_image(png(sprite), references=[png(other)]).flags
    # a smooth reference says nothing of the kind
    assert "upscaled" in score_image(png(sprite), references=[png(photo_like(1))]).flags


def test_tiny_and_degenerate_pictures_do_not_break_it():
    for img in (Image.new("RGB", (8, 8), (1, 2, 3)), Image.new("L", (40, 3000), 128),
                Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 700, 3), dtype=np.uint8))):
        assert block_factor(img)[0] == 0
        for data in (jpeg(img.convert("RGB")), webp(img.convert("RGB"), 90)):  # the comb and codec-grid tests too
            assert block_factor(Image.open(io.BytesIO(data)))[0] == 0
    for size in ((1, 500), (500, 1), (3, 3)):
        assert block_factor(Image.open(io.BytesIO(jpeg(Image.new("RGB", size, (9, 9, 9))))))[0] == 0


def test_emulator_lowres_image_is_the_requested_size_and_blocky():
    data = image_for("lowres_image", "a red apple", 7, "dall-e-3", 1024, 1024)
    img = Image.open(io.BytesIO(data))
    assert img.size == (1024, 1024)
    assert block_factor(img)[0] == pytest.approx(4, abs=0.5)
    assert lowres(render_image("x", 1, "m", 64, 64), 1).size == (64, 64)


@pytest.mark.parametrize("factor", [4, 8])
def test_probe_against_the_emulator_lowres_fault_fails_quality(emulator, openai_service, canary, factor):
    """OpenAI draws a new picture every call (no seeds); the rare near-uniform canary picture has no
    edges to show blocks in (1 in 100 measured), so two of three runs must be flagged."""
    emulator.faults.set("openai", "lowres_image", factor=factor)
    records = [probe(OpenAIAdapter, openai_service, canary) for _ in range(3)]
    flagged = [r for r in records if r.outcome is Outcome.DEGRADED_QUALITY and "upscaled" in r.quality_flags]
    assert len(flagged) >= 2, [(r.outcome, r.quality_flags) for r in records]
    assert any(f"{factor}.0 x {factor}.0" in reason for reason in flagged[0].quality_reasons), flagged[0].quality_reasons
    assert all(r.image_width == 1024 and r.image_height == 1024 for r in records)  # the requested size, not wrong_size
    emulator.faults.clear()
    clean = probe(OpenAIAdapter, openai_service, canary)
    assert clean.outcome is Outcome.OK and "upscaled" not in clean.quality_flags


def test_lowres_fault_on_a_seeded_provider_is_degraded_quality(emulator, canary):
    """Every emulator serves the fault through ``images.image_for``; with a fixed seed the run is reproducible."""
    service = ServiceConfig(id="stability-lowres", provider="stability", base_url=emulator.base_url("stability"),
                            api_key="sk-stability-test-0123456789", canaries=[canary.id], timeout=timedelta(seconds=5),
                            allow_private_network=True, **STABILITY_DEFAULTS)
    emulator.faults.set("stability", "lowres_image")
    record = probe(StabilityAdapter, service, canary, seed=1234)
    assert record.outcome is Outcome.DEGRADED_QUALITY and "upscaled" in record.quality_flags, record.quality_flags
    emulator.faults.clear()
    assert probe(StabilityAdapter, service, canary, seed=1234).outcome is Outcome.OK


def test_benchmark_upscale_section_smoke():
    cases = bench_quality.evaluate_upscale(per_family=1, photos=0, flat=1, periodic=1)
    rows = bench_quality.upscale_figures(cases)
    names = [r["name"] for r in rows]
    assert "upscaled caught: 1/3 png, no reference" in names and "upscaled caught: 1/8 jpeg_q85, with reference" in names
    assert any(n.startswith("upscaled false alarms: pixel art") for n in names)
    caught = {r["name"]: r["value"] for r in rows}
    assert caught["upscaled caught: 1/4 png, no reference"] >= 80
    assert caught["upscaled false alarms: clean procedural"] == 0
    assert caught["upscaled false alarms: periodic textures"] == 0
    assert "upscaled caught: 1/3 webp_q90, no reference" in names
    assert any("jpeg_q60/jpeg_q85/jpeg_q95/webp_q75/webp_q90" in r["note"] for r in rows if "clean procedural" in r["name"])
    assert caught["upscaled caught: 1/4 jpeg_q85, no reference"] >= 80
    speed = bench_quality.upscale_speed(rounds=2, warmup=1)
    assert speed[1]["name"] == "upscale check / decode" and speed[1]["value"] > 0
    assert speed[2]["name"] == "upscale check, JPEG q85" and speed[2]["value"] > 0
