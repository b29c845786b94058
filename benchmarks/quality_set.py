"""The evaluation set for image scoring, generated in code (no photos are available offline).

``pictures()`` draws varied procedural content, so that no threshold is tuned to one kind of
picture: the emulators' canary pictures (gradient + flat shapes), fractal "landscapes" (smooth
value noise with fine grain, sky and hills), text-like stroke pages, periodic textures with grain,
anti-aliased shapes with soft shadows, dim night scenes and soft, foggy scenes.  ``variants()``
derives from each picture clean variants (which must pass) and degraded ones (which must be caught).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from probes.emulator.images import render_image

FAMILIES = ("canary", "landscape", "text", "texture", "shapes", "night", "fog")
CLEAN = ("png", "jpeg_q85", "webp_q90", "resize_0.9")
DEGRADED = ("truncated", "undecodable", "wrong_size", "black", "blank", "noise", "blur", "heavy_jpeg",
            "down_up", "swapped", "few_colours")
#: degraded classes that can only be judged against the clean original (given as the reference)
NEEDS_REFERENCE = {"blur", "heavy_jpeg", "swapped", "down_up"}


@dataclass
class Sample:
    family: str
    index: int
    variant: str
    clean: bool
    data: bytes
    reference: bytes  # the clean original, PNG
    requested_size: tuple[int, int]


def encode(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def _value_noise(rng: np.random.Generator, side: int, octaves: int, base: int = 4, persistence: float = 0.55) -> np.ndarray:
    """Fractal value noise in 0..1: random grids upscaled bicubically and summed with falling weights."""
    total = np.zeros((side, side), np.float32)
    weight, norm = 1.0, 0.0
    for o in range(octaves):
        cells = base * 2**o
        grid = Image.fromarray(rng.random((cells, cells), dtype=np.float32), "F")
        total += weight * np.asarray(grid.resize((side, side), Image.Resampling.BICUBIC), np.float32)
        norm += weight
        weight *= persistence
    total /= norm
    return (total - total.min()) / max(float(np.ptp(total)), 1e-6)


def _colourise(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    stops = rng.integers(0, 256, (4, 3)).astype(np.float32)
    x = t * 3
    i = np.clip(x.astype(int), 0, 2)
    f = (x - i)[..., None]
    return stops[i] * (1 - f) + stops[i + 1] * f


def picture(family: str, index: int, side: int = 512) -> Image.Image:
    rng = np.random.default_rng(FAMILIES.index(family) * 1000 + index)
    if family == "canary":
        return render_image(f"canary prompt {index}", index, "bench-model", side, side)
    if family == "landscape":
        rgb = _colourise(_value_noise(rng, side, 6), rng)
        y = np.linspace(0, 1, side)[:, None, None]
        horizon = 0.35 + 0.15 * _value_noise(rng, side, 3)[0][None, :, None]
        sky = np.array([110, 160, 230], np.float32) * (1 - 0.4 * y) + 40
        rgb = np.where(y < horizon, sky + np.zeros_like(rgb), rgb)
        rgb += rng.normal(0, 3, rgb.shape)
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    if family == "text":
        bg = tuple(int(v) for v in rng.integers(200, 256, 3))
        img = Image.new("RGB", (side, side), bg)
        draw = ImageDraw.Draw(img)
        words = ["status", "image", "canary", "apple", "reliability", "monitor", "seed", "prompt", "quality"]
        for line in range(side // 18):
            text = " ".join(rng.choice(words, 6))
            ink = tuple(int(v) for v in rng.integers(0, 90, 3))
            draw.text((8 + int(rng.integers(0, 30)), 6 + 18 * line), text, fill=ink)
        return img
    if family == "texture":
        y, x = np.mgrid[0:side, 0:side].astype(np.float32)
        f1, f2 = rng.uniform(0.05, 0.4, 2)
        a = rng.uniform(0, np.pi)
        wave = np.sin(f1 * (x * np.cos(a) + y * np.sin(a))) * np.cos(f2 * y)
        t = 0.5 + 0.35 * wave + 0.15 * (_value_noise(rng, side, 5) - 0.5)
        rgb = _colourise(np.clip(t, 0, 1), rng) + rng.normal(0, 6, (side, side, 3))
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    if family == "shapes":
        big = Image.new("RGB", (2 * side, 2 * side), tuple(int(v) for v in rng.integers(0, 256, 3)))
        shadow = Image.new("L", big.size, 0)
        draw, sdraw = ImageDraw.Draw(big), ImageDraw.Draw(shadow)
        for _ in range(8):
            cx, cy, r = rng.uniform(0, 2 * side), rng.uniform(0, 2 * side), rng.uniform(0.05, 0.25) * 2 * side
            sdraw.ellipse((cx - r + 20, cy - r + 20, cx + r + 20, cy + r + 20), fill=120)
        big.paste((0, 0, 0), mask=shadow.filter(ImageFilter.GaussianBlur(12)))
        for _ in range(8):
            cx, cy, r = rng.uniform(0, 2 * side), rng.uniform(0, 2 * side), rng.uniform(0.05, 0.25) * 2 * side
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        return big.resize((side, side), Image.Resampling.LANCZOS)
    if family == "night":
        t = _value_noise(rng, side, 6)
        rgb = (_colourise(t, rng) * 0.18 + 8) + rng.normal(0, 2.5, (side, side, 3))
        for _ in range(int(rng.integers(5, 40))):  # lights
            cy, cx = rng.integers(0, side, 2)
            rgb[max(0, cy - 2):cy + 3, max(0, cx - 2):cx + 3] = rng.integers(150, 256, 3)
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    if family == "fog":
        t = _value_noise(rng, side, 3, base=2, persistence=0.4)
        grey = rng.uniform(150, 220)
        rgb = grey + (t[..., None] - 0.5) * rng.uniform(30, 80) * np.array([1.0, 1.0, 1.1]) + rng.normal(0, 1.5, (side, side, 3))
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    raise ValueError(family)


def _degrade(kind: str, img: Image.Image, other: Image.Image, rng: np.random.Generator) -> tuple[bytes, tuple[int, int] | None]:
    w, h = img.size
    if kind == "truncated":
        data = encode(img)
        return data[: int(len(data) * rng.uniform(0.2, 0.9))], None
    if kind == "undecodable":
        return rng.integers(0, 256, int(rng.integers(16, 8192)), dtype=np.uint8).tobytes(), None
    if kind == "wrong_size":
        return encode(img.resize((w // 2, h // 2))), None
    if kind == "black":  # a near-black "safety" placeholder: black with a small grey notice
        black = Image.new("RGB", img.size, tuple(int(v) for v in rng.integers(0, 12, 3)))
        ImageDraw.Draw(black).text((w // 2 - 60, h // 2), "content not available", fill=(90, 90, 90))
        return encode(black), None
    if kind == "blank":
        return encode(Image.new("RGB", img.size, tuple(int(v) for v in rng.integers(0, 256, 3)))), None
    if kind == "noise":
        if rng.random() < 0.5:
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        else:
            pixels = np.clip(rng.normal(128, 50, (h, w, 3)), 0, 255).astype(np.uint8)
        return encode(Image.fromarray(pixels), "PNG" if rng.random() < 0.5 else "JPEG"), None
    if kind == "blur":
        return encode(img.filter(ImageFilter.GaussianBlur(radius=max(w, h) / rng.uniform(48, 96)))), None
    if kind == "heavy_jpeg":
        return encode(img, "JPEG", quality=int(rng.integers(3, 9))), None
    if kind == "down_up":
        small = img.resize((w // 6, h // 6), Image.Resampling.BILINEAR)
        return encode(small.resize((w, h), Image.Resampling.BILINEAR)), None
    if kind == "swapped":
        return encode(other), None
    if kind == "few_colours":  # a flat placeholder card: two colours and a frame
        card = Image.new("RGB", img.size, tuple(int(v) for v in rng.integers(0, 256, 3)))
        d = ImageDraw.Draw(card)
        d.rectangle((w // 8, h // 8, 7 * w // 8, 7 * h // 8), outline=tuple(int(v) for v in rng.integers(0, 256, 3)), width=6)
        d.line((w // 8, h // 8, 7 * w // 8, 7 * h // 8), fill=(0, 0, 0), width=6)
        return encode(card), None
    raise ValueError(kind)


def _clean(kind: str, img: Image.Image) -> bytes:
    if kind == "png":
        return encode(img)
    if kind == "jpeg_q85":
        return encode(img, "JPEG", quality=85)
    if kind == "webp_q90":
        return encode(img, "WEBP", quality=90)
    if kind == "resize_0.9":
        return encode(img.resize((int(img.width * 0.9), int(img.height * 0.9)), Image.Resampling.LANCZOS))
    raise ValueError(kind)


def variants(per_family: int = 6, side: int = 512) -> Iterator[Sample]:
    rng = np.random.default_rng(7)
    for family in FAMILIES:
        for index in range(per_family):
            img = picture(family, index, side)
            reference = encode(img)
            other_family = FAMILIES[(FAMILIES.index(family) + 1 + index) % len(FAMILIES)]
            other = picture(other_family if rng.random() < 0.5 else family, index + 100, side)
            for kind in CLEAN:
                yield Sample(family, index, kind, True, _clean(kind, img), reference, (side, side))
            for kind in DEGRADED:
                data, _ = _degrade(kind, img, other, rng)
                yield Sample(family, index, kind, False, data, reference, (side, side))
