"""BRISQUE (monitor/scoring/brisque.py): agreement with the original package, robustness, the stage."""

from __future__ import annotations

import io
import math
from functools import lru_cache

import numpy as np
import pytest
from PIL import Image

from monitor.scoring import brisque as bq
from monitor.scoring.types import Assessment, ScoringInput

# --- test pictures, built with integer arithmetic only (the same bytes on any platform) -------------


def _box(a: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Moving sum over 2r + 1 samples along ``axis`` (edge samples repeated)."""
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r + 1, r)
    c = np.cumsum(np.pad(a, pad, mode="edge"), axis=axis, dtype=np.int64)
    n = a.shape[axis]
    return np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis) - np.take(c, np.arange(n), axis=axis)


def smooth(a: np.ndarray, r: int) -> np.ndarray:
    """(2r+1)^2 box mean, rounded; keeps uint8 input uint8."""
    d = (2 * r + 1) ** 2
    out = (_box(_box(a.astype(np.int64), r, 0), r, 1) + d // 2) // d
    return out.astype(a.dtype)


def fractal(seed: int, h: int = 160, w: int = 224, octaves: int = 6) -> np.ndarray:
    """Smooth random texture, amplitude halving per octave (roughly a 1/f spectrum)."""
    rng = np.random.default_rng(seed)
    total = np.zeros((h, w), np.int64)
    for o in range(octaves):
        cell = max(1, 32 >> o)
        grid = rng.integers(0, 256, (h // cell + 2, w // cell + 2))
        up = np.repeat(np.repeat(grid, cell, 0), cell, 1)[:h, :w]
        total += smooth(up, max(1, cell // 2)) * (64 >> o)
    total //= sum(64 >> o for o in range(octaves))
    lo, hi = int(total.min()), int(total.max())
    return ((total - lo) * 255 // max(1, hi - lo)).astype(np.uint8)


def dead_leaves(seed: int, h: int = 160, w: int = 224, n: int = 400, textured: bool = True) -> np.ndarray:
    """Occluding discs of random grey with a power-law size (the "dead leaves" model of natural
    pictures), optionally with a fractal texture on top: BRISQUE scores it like a photograph."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 128, np.int64)
    for _ in range(n):
        r = 2 + int(rng.integers(1, 1000)) ** 2 // 20000
        cy, cx, v = (int(x) for x in (rng.integers(-10, h + 10), rng.integers(-10, w + 10), rng.integers(0, 256)))
        y0, y1, x0, x1 = max(0, cy - r), min(h, cy + r + 1), max(0, cx - r), min(w, cx + r + 1)
        if y0 < y1 and x0 < x1:
            yy, xx = np.mgrid[y0:y1, x0:x1]
            img[y0:y1, x0:x1][(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = v
    if textured:
        img = img * 3 // 4 + fractal(seed + 50, h, w).astype(np.int64) // 4
    return img.astype(np.uint8)


def add_noise(img: np.ndarray, amplitude: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img.astype(np.int64) + rng.integers(-amplitude, amplitude + 1, img.shape), 0, 255).astype(np.uint8)


def rgb(grey: np.ndarray) -> np.ndarray:
    return np.stack([grey] * 3, axis=-1)


@lru_cache(maxsize=1)
def reference_pictures() -> dict[str, np.ndarray]:
    """H x W x 3 uint8 pictures, as given to the original package (grey ones as three equal channels)."""
    leaves = dead_leaves(0)
    frac = fractal(2)
    blocks = np.repeat(np.repeat(fractal(3, 160, 208)[::8, ::8], 8, 0), 8, 1)[:157, :203]  # flat 8 x 8 blocks, odd size
    yy, xx = np.mgrid[0:120, 0:150]
    two = np.where(((yy // 4 + xx // 4) % 2 == 0) ^ ((yy - 60) ** 2 + (xx - 75) ** 2 < 40**2), 30, 220).astype(np.uint8)
    colour = np.stack([dead_leaves(5), fractal(6), dead_leaves(7, textured=False)], axis=-1)
    return {
        "leaves": rgb(leaves),
        "leaves_blur": rgb(smooth(leaves, 1)),
        "leaves_noise12": rgb(add_noise(leaves, 12, 1)),
        "leaves_noise25": rgb(add_noise(leaves, 25, 2)),
        "flat_leaves": rgb(dead_leaves(1, textured=False)),
        "fractal": rgb(frac),
        "blocks": rgb(blocks),
        "two_level": rgb(two),
        "colour": colour,
        "uniform_noise": rgb(np.random.default_rng(9).integers(0, 256, (96, 128), dtype=np.uint8)),
    }


# Scores of reference_pictures() from the original implementation: the PyPI package brisque 0.2.0
# (BRISQUE(url=False).score(picture)) on numpy 1.26.4, scipy 1.13.1, scikit-image 0.24.0,
# opencv-python-headless 4.11.0.86 and libsvm-official 3.37.0 (it does not run on numpy 2).  Here the
# largest difference is 0.0013 (leaves_blur); on 53 photographs (scikit-image samples and their
# blurred, noisy and JPEG-compressed versions) it was 0.037 (a binary silhouette), 0.007 otherwise.
# 155.845 is the package's saturated score (-rho: every kernel term underflows), reached by the
# two-level picture and by pure noise, whose shape fit the package lets diverge.
REFERENCE = {
    "leaves": 50.48882488895535,
    "leaves_blur": 57.72644498995098,
    "leaves_noise12": 69.64694415353333,
    "leaves_noise25": 95.62306947038277,
    "flat_leaves": 121.22267426297984,
    "fractal": 46.08259785504387,
    "blocks": 56.652004895186195,
    "two_level": 155.845,
    "colour": 40.56832411838397,
    "uniform_noise": 155.845,
}
TOLERANCE = 0.01


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_agrees_with_the_original_package(name):
    assert bq.brisque_score(reference_pictures()[name]) == pytest.approx(REFERENCE[name], abs=TOLERANCE)


def test_blur_and_noise_raise_the_score_of_a_natural_like_picture():
    for seed in (0, 3):
        clean = dead_leaves(seed)
        base = bq.brisque_score(clean)
        assert base < 60
        blur1, blur2 = (bq.brisque_score(smooth(clean, r)) for r in (1, 2))
        noise1, noise2 = (bq.brisque_score(add_noise(clean, a, seed)) for a in (12, 40))
        assert base + 5 < blur1 < blur2, (seed, base, blur1, blur2)
        assert base + 5 < noise1 < noise2, (seed, base, noise1, noise2)


def test_blur_and_noise_raise_the_score_of_a_photograph():
    data = pytest.importorskip("skimage.data")
    from PIL import ImageFilter

    photo = Image.fromarray(data.astronaut())
    base = bq.brisque_score(np.asarray(photo))
    blurred = bq.brisque_score(np.asarray(photo.filter(ImageFilter.GaussianBlur(1.5))))
    noisy = bq.brisque_score(add_noise(np.asarray(photo), 30, 1))
    assert base < 20 and blurred > base + 20 and noisy > base + 10, (base, blurred, noisy)


def test_uniform_input_is_blank():
    for grey in (np.zeros((64, 64)), np.full((50, 70), 255, np.uint8), np.full((9, 9, 3), 77, np.uint8),
                 np.full((1, 1), 3.0), np.full((40, 40), 128.2)):
        assert bq.brisque_score(grey) is None
    one_dot = np.full((100, 100), 90.0)
    one_dot[50, 50] = 91  # a standard deviation of 0.01 grey levels
    assert bq.brisque_score(one_dot) is None


def edge_inputs():
    rng = np.random.default_rng(11)
    yield "2x2", np.array([[0, 255], [255, 0]], np.uint8)
    yield "1x2", np.array([[0.0, 255.0]])
    yield "1 row", rng.integers(0, 256, (1, 300)).astype(np.uint8)
    yield "1 column", rng.integers(0, 256, (300, 1)).astype(np.uint8)
    yield "3x5 random", rng.random((3, 5)) * 255
    yield "7x7 random", rng.integers(0, 256, (7, 7)).astype(np.uint8)
    yield "half black half white", np.repeat([[0] * 40 + [255] * 40], 60, axis=0).astype(np.uint8)
    yield "1 px checkerboard", (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    yield "two levels 1 apart", (np.indices((64, 64)).sum(axis=0) % 2 + 100).astype(np.float64)
    dot = np.zeros((100, 100))
    dot[50, 50] = 255
    yield "one white dot on black", dot
    yield "one black dot on white", 255 - dot
    yield "huge dynamic range", np.where(rng.random((64, 64)) < 0.5, -1e300, 1e300)
    yield "tiny values", rng.random((64, 64)) * 1e-300
    yield "nan and inf", np.where(rng.random((64, 64)) < 0.3, np.nan, np.where(rng.random((64, 64)) < 0.5, np.inf, -np.inf))
    yield "16-bit range", rng.integers(0, 65536, (64, 64)).astype(np.float64)
    yield "uniform noise", rng.integers(0, 256, (128, 128)).astype(np.uint8)
    yield "gaussian noise", np.clip(rng.normal(128, 60, (128, 128)), 0, 255)
    yield "binary noise", (rng.random((128, 128)) < 0.5) * 255.0
    yield "sparse noise", (rng.random((128, 128)) < 0.001) * 255.0
    yield "faint gradient", np.linspace(100, 103, 128 * 128).reshape(128, 128)
    yield "steep gradient", np.tile(np.arange(256, dtype=np.float64), (32, 1))
    yield "stripes", np.tile([0.0, 0.0, 255.0], (30, 30))
    yield "rgba", np.dstack([rng.integers(0, 256, (40, 40, 3)), np.full((40, 40), 255)]).astype(np.uint8)


@pytest.mark.parametrize("name,grey", list(edge_inputs()), ids=[n for n, _ in edge_inputs()])
def test_edge_inputs_give_a_finite_score_or_blank(name, grey):
    score = bq.brisque_score(grey)
    assert score is None or (isinstance(score, float) and math.isfinite(score)), (name, score)


def test_random_inputs_never_give_nan():
    rng = np.random.default_rng(12)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 48, 2))
        kind = int(rng.integers(0, 4))
        if kind == 0:
            grey = rng.integers(0, 256, (h, w)).astype(np.uint8)
        elif kind == 1:  # a few levels
            grey = rng.choice([0.0, 1.0, 128.0, 255.0], (h, w), p=[0.7, 0.1, 0.1, 0.1])
        elif kind == 2:  # blocks
            grey = np.kron(rng.integers(0, 3, (h // 4 + 1, w // 4 + 1)), np.ones((4, 4)))[:h, :w] * 100.0
        else:
            grey = rng.normal(0, 1e6, (h, w))
        score = bq.brisque_score(grey)
        assert score is None or math.isfinite(score), (kind, h, w, score)


def test_aggd_fit_degenerate_samples_are_finite():
    for x in (np.array([]), np.zeros(10), np.ones(10), -np.ones(10), np.array([0.0, 0.0, 1e-300]),
              np.array([-1.0, 0.0]), np.array([1e-170, -1e-170])):
        fit = bq.aggd_fit(x)
        assert all(math.isfinite(v) for v in fit), (x, fit)


def test_shape_inversion_matches_the_gamma_function():
    for alpha in (0.3, 0.8, 1.0, 2.0, 3.5, 14.0):
        rho = math.gamma(2 / alpha) ** 2 / (math.gamma(1 / alpha) * math.gamma(3 / alpha))
        assert float(np.interp(rho, bq._rho_table(), bq._ALPHAS)) == pytest.approx(alpha, rel=1e-6)
    rng = np.random.default_rng(4)
    gaussian = rng.normal(0, 1, 200_000)
    alpha, mean, sl, sr = bq.aggd_fit(gaussian)
    assert alpha == pytest.approx(2.0, abs=0.03) and abs(mean) < 0.01
    assert sl == pytest.approx(1, abs=0.01) and sr == pytest.approx(1, abs=0.01)
    laplace = rng.laplace(0, 1, 200_000)
    assert bq.aggd_fit(laplace)[0] == pytest.approx(1.0, abs=0.03)


def _scipy_brisque(grey: np.ndarray) -> float | None:
    """The score as computed with scipy (``ndimage.correlate1d`` along the rows, ``special.gammaln``), as this
    module did before it dropped scipy to start faster."""
    from scipy import ndimage, special

    def local_mean(image):
        rows = image.shape[0]
        padded = np.pad(image, ((3, 3), (0, 0)))
        out = bq._GAUSS[3] * image
        for k in range(3):
            out += bq._GAUSS[k] * (padded[k:k + rows] + padded[6 - k:6 - k + rows])
        return ndimage.correlate1d(out, bq._GAUSS, axis=1, mode="constant", cval=0.0)

    alphas = bq._ALPHAS
    rhos = np.exp(2 * special.gammaln(2 / alphas) - special.gammaln(1 / alphas) - special.gammaln(3 / alphas))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bq, "_local_mean", local_mean)
        patch.setattr(bq, "_rho_table", lambda: rhos)
        patch.setattr(bq.math, "lgamma", lambda x: float(special.gammaln(x)))
        return bq.brisque_score(grey)


def test_local_mean_is_bit_for_bit_scipys():
    from scipy import ndimage

    rng = np.random.default_rng(7)
    for shape in ((384, 384), (17, 5), (1, 9), (9, 1), (255, 384)):
        image = rng.random(shape)
        mu = bq._local_mean(image)
        rows = image.shape[0]
        padded = np.pad(image, ((3, 3), (0, 0)))
        columns = bq._GAUSS[3] * image
        for k in range(3):
            columns += bq._GAUSS[k] * (padded[k:k + rows] + padded[6 - k:6 - k + rows])
        assert np.array_equal(mu, ndimage.correlate1d(columns, bq._GAUSS, axis=1, mode="constant", cval=0.0)), shape


def test_rho_table_matches_scipys_gammaln():
    from scipy import special

    alphas = bq._ALPHAS
    rhos = np.exp(2 * special.gammaln(2 / alphas) - special.gammaln(1 / alphas) - special.gammaln(3 / alphas))
    assert np.allclose(bq._rho_table(), rhos, rtol=1e-11, atol=1e-14)  # lgamma differences of ~50 near alpha 0.02


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_scores_equal_the_scipy_computation(name):
    picture = reference_pictures()[name]
    assert bq.brisque_score(picture) == pytest.approx(_scipy_brisque(picture), rel=1e-10, abs=1e-10)


def test_scoring_does_not_import_scipy():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from monitor.scoring import brisque as bq; "
            "bq.brisque_score(np.arange(4096, dtype=np.uint8).reshape(64, 64)); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_model_loads_from_package_data():
    sv, coef, _, gamma, rho, lo, hi = bq._model()
    assert sv.shape == (770, 36) and coef.shape == (770,) and gamma == 0.05 and rho == -155.845
    assert lo.shape == hi.shape == (36,) and np.all(hi > lo)
    assert (bq.DATA_DIR / "NOTICE").is_file() and (bq.DATA_DIR / "LICENSE.brisque").is_file()


# --- the pipeline stage ---------------------------------------------------------------------------


def _assessment(image: Image.Image) -> Assessment:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    out = Assessment()
    out.image = Image.open(io.BytesIO(buf.getvalue()))
    out.image.load()
    return out


def test_stage_records_the_metric_without_degrading():
    out = _assessment(Image.fromarray(rgb(dead_leaves(0))))
    bq.no_reference_quality(ScoringInput(data=b""), out)
    # 160 x 224 is below LONG_SIDE, so it is measured as it is: the table's score
    assert out.metrics["brisque"] == pytest.approx(REFERENCE["leaves"], abs=TOLERANCE)
    assert out.flags == [] and out.reasons == []


def test_stage_without_a_profile_never_degrades_even_bad_pictures():
    noise = np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    out = _assessment(Image.fromarray(noise))
    bq.no_reference_quality(ScoringInput(data=b""), out)
    assert math.isfinite(out.metrics["brisque"]) and out.flags == []


def test_stage_marks_a_uniform_picture_blank():
    out = _assessment(Image.new("RGB", (300, 200), (40, 90, 200)))
    bq.no_reference_quality(ScoringInput(data=b""), out)
    assert "brisque" not in out.metrics and out.metrics["brisque_blank"] == 1.0


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "LA", "1", "I;16", "CMYK"])
def test_stage_handles_image_modes(mode):
    image = Image.fromarray(rgb(dead_leaves(2, 96, 128)))
    image = image.convert("L").convert(mode) if mode in ("I;16", "1", "LA") else image.convert(mode)
    out = _assessment(image) if mode != "CMYK" else Assessment(image=image)
    bq.no_reference_quality(ScoringInput(data=b""), out)
    assert math.isfinite(out.metrics["brisque"]), out.metrics


def test_analysis_copy_is_at_most_long_side():
    big = Image.fromarray(np.kron(rgb(dead_leaves(4, 100, 60)), np.ones((10, 10, 1), np.uint8)))  # 600 x 1000
    pixels = bq.analysis_pixels(big)
    assert max(pixels.shape[:2]) == bq.LONG_SIDE and pixels.shape[:2] == (bq.LONG_SIDE, round(600 * bq.LONG_SIDE / 1000))
    small = Image.fromarray(rgb(dead_leaves(4, 100, 60)))
    assert bq.analysis_pixels(small).shape == (100, 60, 3)  # never upscaled
