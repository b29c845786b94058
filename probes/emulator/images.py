"""Deterministic canary pictures for the emulators.

The same (prompt, seed, model, style) always gives the same picture, and a different
seed gives a clearly different one (perceptual hashes far apart), so drift and
"stuck output" detection can be tested against the emulators.
"""

from __future__ import annotations

import hashlib
import io
import os
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = 12
GRADIENT_CELLS = 64


def render_image(prompt: str, seed: int, model: str, width: int, height: int, *, style: str = "default") -> Image.Image:
    """A gradient background with a dozen coloured shapes, all drawn from a seeded RNG."""
    return _render(prompt, seed, model, width, height, style).copy()


@lru_cache(maxsize=32)
def render_png(prompt: str, seed: int, model: str, width: int, height: int, *, style: str = "default") -> bytes:
    """``render_image`` encoded as PNG, cached: the emulators serve the same canary repeatedly."""
    return encode_png(_render(prompt, seed, model, width, height, style))


@lru_cache(maxsize=16)
def _render(prompt: str, seed: int, model: str, width: int, height: int, style: str) -> Image.Image:
    digest = hashlib.sha256(f"{prompt}\0{seed}\0{model}\0{style}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    img = _gradient(rng, width, height)
    draw = ImageDraw.Draw(img)
    scale = min(width, height)
    for _ in range(SHAPES):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.08, 0.3) * scale
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        else:
            angles = np.sort(rng.uniform(0, 2 * np.pi, 3))
            draw.polygon([(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in angles], fill=colour)
    return img


def _gradient(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A linear gradient between two random colours in a random direction.

    Drawn at a small size and scaled up: bilinear scaling keeps a linear gradient
    exact and is far cheaper than computing every pixel.
    """
    start, end = rng.integers(0, 256, (2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    steps = np.linspace(0.0, 1.0, GRADIENT_CELLS, dtype=np.float32)
    t = steps[None, :] * np.cos(angle) + steps[:, None] * np.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    small = (start + (end - start) * t[..., None]).astype(np.uint8)
    return Image.fromarray(small, "RGB").resize((width, height), Image.Resampling.BILINEAR)


def encode_png(img: Image.Image) -> bytes:
    """PNG bytes; low compression because the emulators favour speed over size."""
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def encode(img: Image.Image, fmt: str, quality: int = 90) -> bytes:
    """``png``, ``jpeg`` or ``webp`` bytes (GPT-image ``output_format``)."""
    if fmt == "png":
        return encode_png(img)
    out = io.BytesIO()
    img.save(out, format=fmt.upper(), quality=quality)
    return out.getvalue()


def lowres(picture: Image.Image, factor: int) -> Image.Image:
    """``picture`` as a provider's low-resolution draft at the full size: shrunk ``factor`` times and
    blown up again with nearest-neighbour (blocks of ``factor`` x ``factor`` identical pixels)."""
    factor = max(1, factor)
    small = picture.resize((max(1, picture.width // factor), max(1, picture.height // factor)), Image.Resampling.BOX)
    return small.resize(picture.size, Image.Resampling.NEAREST)


@lru_cache(maxsize=8)
def blank_png(width: int, height: int) -> bytes:
    """A uniform grey image: the shape of a provider's "blank output" failure."""
    return encode_png(Image.new("RGB", (width, height), (128, 128, 128)))


def image_for(
    fault: str | None, prompt: str, seed: int, model: str, width: int, height: int, *, fmt: str = "png",
    style: str = "default", factor: int = 4,
) -> bytes:
    """The image an emulator returns: the canary picture, or the degenerate one a fault asks for.

    Every emulator uses this, so a fault name means the same picture for every provider.
    ``factor`` is ``lowres_image``'s: the draft is 1/factor of the requested size.
    """
    if fault == "undecodable_image":
        return os.urandom(4096)
    if fault == "blank_image":
        return blank_png(width, height)
    if fault == "black_image":
        return encode(Image.new("RGB", (width, height), (3, 3, 3)), fmt)
    if fault == "noise_image":
        rng = np.random.default_rng(seed)
        return encode(Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB"), fmt)
    if fault == "wrong_size":
        width, height = max(64, width // 2), max(64, height // 2)
    if fault == "model_swap":
        model, style = f"{model}-swapped", "swapped"
    if fault == "cached_image":
        seed = 1  # one picture for every request with this prompt
    if fault == "blurred_image":
        picture = render_image(prompt, seed, model, width, height, style=style)
        data = encode(picture.filter(ImageFilter.GaussianBlur(radius=max(width, height) / 64)), fmt)
    elif fault == "lowres_image":
        data = encode(lowres(render_image(prompt, seed, model, width, height, style=style), factor), fmt)
    elif fmt == "png":
        data = render_png(prompt, seed, model, width, height, style=style)
    else:
        data = encode(render_image(prompt, seed, model, width, height, style=style), fmt)
    if fault == "truncated_image":
        return data[: len(data) // 2]
    return data
