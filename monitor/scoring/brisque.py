"""No-reference image quality: BRISQUE (Mittal, Moorthy & Bovik, IEEE TIP 2012), in plain numpy.

BRISQUE measures how far the local statistics of a picture are from those of natural, undistorted
pictures.  The luminance is normalised locally (MSCN coefficients: subtract a 7 x 7 Gaussian mean,
sigma 7/6, divide by the local deviation + 1/255); undistorted pictures give MSCN coefficients close
to a unit Gaussian, while blur makes them peaky, noise makes them flat and JPEG blocking skews the
products of neighbours.  Asymmetric generalised Gaussian fits (moment matching) of the coefficients
and of their products with the horizontal, vertical and both diagonal neighbours give 18 features;
the same at half resolution gives 36.  They are scaled to -1..1 and an RBF support-vector regressor
trained on human opinion scores maps them to a score: about 0..100, **lower is better** (the raw
regression is not clipped, so it can stray a little outside 0..100).

The model (``data/brisque_svm.txt``) and the feature ranges (``data/brisque_range.json``) are those
of the PyPI package ``brisque`` 0.2.0, vendored under its Apache-2.0 licence (``data/NOTICE``,
``data/LICENSE.brisque``).  The package's own code no longer runs on numpy 2, so the features are
extracted here, reproducing the package's particular choices exactly, because the model only
scores features computed the way it was trained on: ITU-R 709 luminance (skimage's rgb2gray), zero
padding for the Gaussian, the asymmetric fit for the MSCN coefficients too, OpenCV's bicubic
half-scale (``_half``), the package's rounding of exactly flat areas (``_flat_mscn``), and a table
inversion of the shape function where the package called a root finder (the shape is clipped at
1000, where the score saturates at 155.845 as the package's does).  ``tests/test_brisque.py``
keeps the reference scores this must match.

The pipeline stage measures a copy whose long side is ``LONG_SIDE`` = 384 px (never upscaled):
BRISQUE judges blur and noise at the pixel level, and this size separates a small blur from benign
re-encoding best; the shared 256 px analysis copy is squashed to a square and too small to show a
1-2 px blur.  On synthetic content (flat graphics, text, added grain) BRISQUE is not monotonic, and
clean and degraded pictures overlap in score, so it is only recorded as a metric and compared with
the canary's own normal (``monitor.scoring.profile``), never with a fixed cut-off.

No scipy: importing it costs a one-shot ``genstatus score`` more than the measurement itself.  The
Gaussian mean along the rows uses shifted slices in the order ``scipy.ndimage.correlate1d`` sums
(bit for bit the same), and the gamma function is ``math.lgamma``; ``tests/test_brisque.py`` keeps
both equal to the scipy computation.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from monitor.scoring.types import Assessment, ScoringInput, rgb_or_grey

DATA_DIR = Path(__file__).with_name("data")

#: long side, in pixels, of the copy the pipeline stage measures (see the module docstring)
LONG_SIDE = 384
#: a picture whose luminance has a standard deviation below this many grey levels (of 255) is blank
BLANK_STDDEV = 0.5

_LUMA = np.array([0.2125, 0.7154, 0.0721])  # skimage.color.rgb2gray, as the model's features used
_C = 1.0 / 255.0  # stabilising constant of the MSCN division, on 0..1 luminance
_SIGMA = 7.0 / 6.0
_GAUSS = np.exp(-((np.arange(7) - 3.0) ** 2) / (2 * _SIGMA**2))
_GAUSS /= _GAUSS.sum()  # the normalised 7 x 7 kernel is the outer product of this with itself
_YX = np.indices((7, 7)) - 3  # ... and computed as the package does, for the flat areas (see _flat_mscn)
_KERNEL_2D = 1 / (2 * np.pi * _SIGMA**2) * np.exp(-(_YX[0] ** 2 + _YX[1] ** 2) / (2 * _SIGMA**2))
_KERNEL_2D = _KERNEL_2D / np.sum(_KERNEL_2D)
#: MSCN magnitudes below this come from an exactly flat 7 x 7 area (rounding stays below 1e-13,
#: while a real difference of one 8-bit level at the kernel's corner gives more than 1e-8)
_ROUNDING = 1e-10
_CUBIC_HALF = np.array([-0.09375, 0.59375, 0.59375, -0.09375])  # OpenCV bicubic (a = -0.75) at t = 0.5

# rho(alpha) = G(2/a)^2 / (G(1/a) G(3/a)) rises monotonically from 0 to 3/4; it is inverted by table.
_ALPHAS = np.geomspace(0.02, 1000.0, 40000)
_DEGENERATE = (2.0, 0.0, 0.0, 0.0)  # the fit of an all-zero sample: any finite value does


def _lgamma(x: np.ndarray) -> np.ndarray:
    return np.frompyfunc(math.lgamma, 1, 1)(x).astype(np.float64)


@lru_cache(maxsize=1)
def _rho_table() -> np.ndarray:
    """rho at each of ``_ALPHAS`` (computed on first use: about 15 ms)."""
    return np.exp(2 * _lgamma(2 / _ALPHAS) - _lgamma(1 / _ALPHAS) - _lgamma(3 / _ALPHAS))


def _local_mean(image: np.ndarray) -> np.ndarray:
    """The 7 x 7 Gaussian mean with zeros outside, as shifted slices down the columns, then along the
    rows (there in ``scipy.ndimage.correlate1d``'s order of operations, so its results bit for bit)."""
    rows, cols = image.shape
    padded = np.pad(image, ((3, 3), (0, 0)))
    out = _GAUSS[3] * image
    for k in range(3):  # the kernel is symmetric: w[k] = w[6 - k]
        out += _GAUSS[k] * (padded[k:k + rows] + padded[6 - k:6 - k + rows])
    padded = np.pad(out, ((0, 0), (3, 3)))
    result = _GAUSS[3] * out
    for k in range(3):
        result += _GAUSS[k] * (padded[:, k:k + cols] + padded[:, 6 - k:6 - k + cols])
    return result


def mscn(image: np.ndarray) -> np.ndarray:
    """Mean-subtracted, contrast-normalised coefficients of a 0..1 luminance image."""
    mu = _local_mean(image)
    sigma = np.sqrt(np.abs(mu * mu - _local_mean(image * image)))
    out = (image - mu) / (sigma + _C)
    flat = np.abs(out) < _ROUNDING
    if flat.any():
        values, where = _distinct(image[flat])
        out[flat] = _flat_mscn(values)[where]
    return out


def _distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)``, sorting only the first value of each run of equal
    neighbours: flat areas come in runs along the rows, so there are a few hundred runs, not 50,000 values."""
    head = np.empty(values.size, dtype=bool)
    head[:1] = True
    np.not_equal(values[1:], values[:-1], out=head[1:])
    starts = np.flatnonzero(head)
    distinct, where = np.unique(values[starts], return_inverse=True)
    return distinct, np.repeat(where.ravel(), np.diff(starts, append=values.size))


def _flat_mscn(values: np.ndarray) -> np.ndarray:
    """MSCN of pixels in an exactly flat 7 x 7 area of the given values, rounded as the package rounds.

    Such a coefficient is floating-point rounding (|c| < 1e-13), but its *sign* decides on which side
    of the asymmetric fit the pixel and its neighbour products count, which moves the score of a
    picture with many flat areas (heavy JPEG, flat graphics) by several points.  The package's
    ``convolve2d`` sums the 49 products in the kernel's row order; this repeats that sum per value.
    """
    mu = np.zeros_like(values)
    mu_sq = np.zeros_like(values)
    squares = values * values
    for w in _KERNEL_2D.ravel():
        mu = mu + w * values
        mu_sq = mu_sq + w * squares
    return (values - mu) / (np.sqrt(np.abs(mu * mu - mu_sq)) + _C)


def _half(image: np.ndarray) -> np.ndarray:
    """OpenCV's ``resize(fx=0.5, fy=0.5, INTER_CUBIC)``: output n = round-half-even(n / 2), at least 1."""
    for axis in (1, 0):  # rows first, then columns, as OpenCV does (the rounding depends on it)
        n = image.shape[axis]
        n_out = max(1, int(np.rint(n * 0.5)))
        base = 2 * np.arange(n_out)
        image = sum(w * np.take(image, np.clip(base + k, 0, n - 1), axis=axis)
                    for w, k in zip(_CUBIC_HALF, (-1, 0, 1, 2)))
    return image


def aggd_fit(x: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric generalised Gaussian by moment matching: (shape, mean, sigma_left, sigma_right).

    Always finite: an empty or all-zero sample, or one-sided data, has a defined fallback.
    """
    x = x.ravel()
    n = x.size
    if n == 0:
        return _DEGENERATE
    left = np.minimum(x, 0.0)  # the package's sides: x < 0 and x >= 0
    right = np.maximum(x, 0.0)
    n_left = int(np.count_nonzero(left))
    n_right = n - n_left
    left_sq = float(np.einsum("i,i->", left, left))  # not BLAS: no threads to wake for one sum
    right_sq = float(np.einsum("i,i->", right, right))
    mean_sq = (left_sq + right_sq) / n
    mean_abs = (float(right.sum()) - float(left.sum())) / n
    if not (mean_sq > 0 and math.isfinite(mean_sq) and math.isfinite(mean_abs)):
        return _DEGENERATE
    r_hat = mean_abs * mean_abs / mean_sq
    left_ms = left_sq / n_left if n_left else 0.0
    right_ms = right_sq / n_right if n_right else 0.0
    if left_ms > 0 and right_ms > 0:
        g = math.sqrt(left_ms) / math.sqrt(right_ms)
        r_big = r_hat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    else:  # one-sided: the limit of the correction for g -> 0 or g -> infinity is 1
        r_big = r_hat
    if not math.isfinite(r_big):
        return _DEGENERATE
    alpha = float(np.interp(r_big, _rho_table(), _ALPHAS))  # clipped to the table's ends
    sigma_l, sigma_r = math.sqrt(left_ms), math.sqrt(right_ms)
    # mean = (beta_r - beta_l) G(2/a) / G(1/a), beta = sigma sqrt(G(1/a) / G(3/a))
    factor = math.exp(0.5 * (math.lgamma(1 / alpha) - math.lgamma(3 / alpha))
                      + math.lgamma(2 / alpha) - math.lgamma(1 / alpha))
    return alpha, (sigma_r - sigma_l) * factor, sigma_l, sigma_r


def _scale_features(image: np.ndarray) -> list[float]:
    m = mscn(image)
    alpha, _, sl, sr = aggd_fit(m)
    features = [alpha, (sl * sl + sr * sr) / 2]
    for a, b in ((m[:, :-1], m[:, 1:]), (m[:-1, :], m[1:, :]), (m[:-1, :-1], m[1:, 1:]), (m[1:, :-1], m[:-1, 1:])):
        alpha, mean, sl, sr = aggd_fit(a * b)
        features += [alpha, mean, sl * sl, sr * sr]
    return features


def features(grey: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of a 0..1 luminance image (18 at full, 18 at half resolution)."""
    return np.array(_scale_features(grey) + _scale_features(_half(grey)))


@lru_cache(maxsize=1)
def _model() -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float, np.ndarray, np.ndarray]:
    """(support vectors, coefficients, |sv|^2, gamma, rho, feature minima, feature maxima)."""
    header: dict[str, str] = {}
    coefs: list[float] = []
    rows: list[dict[int, float]] = []
    with open(DATA_DIR / "brisque_svm.txt", encoding="ascii") as fh:
        for line in fh:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "SV":
                break
            header[parts[0]] = " ".join(parts[1:])
        for line in fh:
            parts = line.split()
            if parts:
                coefs.append(float(parts[0]))
                rows.append({int(k): float(v) for k, v in (p.split(":") for p in parts[1:])})
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise ValueError(f"unexpected BRISQUE model: {header}")
    ranges = json.loads((DATA_DIR / "brisque_range.json").read_text(encoding="ascii"))
    lo, hi = np.array(ranges["min"], dtype=np.float64), np.array(ranges["max"], dtype=np.float64)
    sv = np.zeros((len(rows), lo.size))
    for i, row in enumerate(rows):  # libsvm's sparse format: absent indices are zeros
        for k, v in row.items():
            sv[i, k - 1] = v
    return sv, np.array(coefs), (sv * sv).sum(axis=1), float(header["gamma"]), float(header["rho"]), lo, hi


def predict(feats: np.ndarray) -> float:
    """The SVR's output for 36 raw features: scaled to -1..1 by the training ranges, then
    sum(coef * exp(-gamma |x - sv|^2)) - rho, as libsvm computes it (the package returns it as is)."""
    sv, coef, sv_sq, gamma, rho, lo, hi = _model()
    x = -1.0 + 2.0 * (feats - lo) / (hi - lo)
    dist = np.maximum(sv_sq + x @ x - 2.0 * (sv @ x), 0.0)
    return float(coef @ np.exp(-gamma * dist) - rho)


def brisque_score(grey: np.ndarray) -> float | None:
    """BRISQUE score of a luminance image in 0..255 (about 0..100, lower is better), or None if blank.

    ``grey`` is 2-D (an H x W x 3/4 array is converted with the model's luminance weights); values
    are clipped to 0..255 and NaN counts as 0.  None means the picture is (almost) uniform -- its
    standard deviation below ``BLANK_STDDEV`` grey levels -- where the statistics are undefined.
    The result is always a finite float otherwise.
    """
    pixels = np.asarray(grey)
    if pixels.dtype != np.uint8:
        pixels = np.clip(np.nan_to_num(pixels.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0), 0.0, 255.0)
    image = np.multiply(pixels, 1.0 / 255.0, dtype=np.float64)  # bit for bit skimage's img_as_float of 8-bit values
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = image[..., :3] @ _LUMA
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"expected a 2-D luminance image (or H x W x 3), got shape {np.shape(grey)}")
    if float(image.std()) * 255.0 < BLANK_STDDEV:
        return None
    score = predict(features(image))
    return score if math.isfinite(score) else None


def analysis_pixels(image: Image.Image) -> np.ndarray:
    """8-bit pixels (H x W x 3, or H x W for greyscale) of ``image`` at most ``LONG_SIDE`` px on its long
    side: an integer ``reduce`` (box), then an antialiased bicubic resize to exactly ``LONG_SIDE``."""
    image = rgb_or_grey(image)
    factor = max(1, max(image.size) // LONG_SIDE)
    if factor > 1:
        image = image.reduce(factor)
    if max(image.size) > LONG_SIDE:
        scale = LONG_SIDE / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(image)


def no_reference_quality(given: ScoringInput, out: Assessment) -> None:
    """Pipeline stage: ``metrics["brisque"]`` (or ``metrics["brisque_blank"] = 1`` for a uniform picture)."""
    score = brisque_score(analysis_pixels(out.image if out.image is not None else out.small))
    if score is None:
        out.metrics["brisque_blank"] = 1.0
        return
    out.metrics["brisque"] = score
