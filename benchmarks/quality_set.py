"""The evaluation set for image scoring: natural photographs and procedural pictures.

``picture()`` gives varied content, so that no threshold is tuned to one kind of picture:

* the "photo" family: natural photographs bundled inside the scikit-image wheel
  (``skimage.data``, read from the package's own data directory, never downloaded), centre-cropped
  to a square and resized to the canary size, grey ones converted to RGB.  Without scikit-image
  the set is procedural only (``photos_available()`` says so).
* procedural families drawn in code: the emulators' canary pictures (gradient + flat shapes),
  fractal "landscapes" (smooth value noise with fine grain, sky and hills), text-like stroke
  pages, periodic textures with grain, anti-aliased shapes with soft shadows, dim night scenes
  and soft, foggy scenes.

``variants()`` derives from each picture clean variants (which must pass) and degraded ones
(which must be caught).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from probes.emulator.images import render_image

PROCEDURAL = ("canary", "landscape", "text", "texture", "shapes", "night", "fog")
PHOTO = "photo"
FAMILIES = (*PROCEDURAL, PHOTO)
#: natural photographs shipped in the scikit-image wheel (``skimage.data.<name>()`` with no download),
#: in an order that keeps a short prefix varied (portrait, food, grey scene, space, texture, animal).
#: Left out: drawings and synthetic images (logo, colorwheel, checkerboard, horse, phantom), pictures
#: smaller than 300 px (page, text, microaneurysms, lfw_subset) and the right view of the stereo pair
#: (almost the same picture as the left one, so it would spoil "swapped").
PHOTOS = ("astronaut", "coffee", "camera", "hubble_deep_field", "grass", "chelsea", "rocket", "coins",
          "immunohistochemistry", "moon", "motorcycle", "brick", "retina", "gravel", "clock", "cell")
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
    name: str = ""  # the picture: a photo's name, or "family#index"

    @property
    def group(self) -> str:
        """``photo`` or ``procedural``."""
        return "photo" if self.family == PHOTO else "procedural"


def encode(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def _png(image: Image.Image) -> bytes:
    """PNG for the set: the fastest zlib level (the pixels, all that scoring sees, are the same)."""
    return encode(image, "PNG", compress_level=1)


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


@lru_cache(maxsize=1)
def available_photos() -> tuple[str, ...]:
    """The names of :data:`PHOTOS` that load here: empty without scikit-image (or if a later release
    stops bundling them: ``skimage.data`` then needs the optional ``pooch`` and the network)."""
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        return ()
    names = []
    for name in PHOTOS:
        try:
            _photo_array(name)
        except Exception:  # noqa: BLE001 - not bundled in this release: left out
            continue
        names.append(name)
    return tuple(names)


def photos_available() -> bool:
    return bool(available_photos())


@lru_cache(maxsize=len(PHOTOS))
def _photo_array(name: str) -> np.ndarray:
    import skimage.data

    pixels = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    pixels = np.asarray(pixels)
    if name == "moon":  # shipped as a 2x nearest-neighbour upscale (every 2 x 2 block is one pixel): its original
        pixels = pixels[::2, ::2]
    if pixels.dtype != np.uint8:
        raise ValueError(f"{name}: {pixels.dtype} pixels")
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    return np.ascontiguousarray(pixels[..., :3])


def photo(name: str, side: int = 512) -> Image.Image:
    """A bundled photograph as RGB, centre-cropped to a square and resized (Lanczos) to ``side``."""
    pixels = _photo_array(name)
    h, w = pixels.shape[:2]
    crop = min(h, w)
    top, left = (h - crop) // 2, (w - crop) // 2
    img = Image.fromarray(np.ascontiguousarray(pixels[top:top + crop, left:left + crop]))
    return img if crop == side else img.resize((side, side), Image.Resampling.LANCZOS)


def picture_name(family: str, index: int) -> str:
    if family == PHOTO:
        names = available_photos()
        return names[index % len(names)] if names else f"{family}#{index}"
    return f"{family}#{index}"


def picture(family: str, index: int, side: int = 512) -> Image.Image:
    if family == PHOTO:
        names = available_photos()
        if not names:
            raise RuntimeError("no photographs: scikit-image is not installed")
        return photo(names[index % len(names)], side)
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
        data = _png(img)
        return data[: int(len(data) * rng.uniform(0.2, 0.9))], None
    if kind == "undecodable":
        return rng.integers(0, 256, int(rng.integers(16, 8192)), dtype=np.uint8).tobytes(), None
    if kind == "wrong_size":
        return _png(img.resize((w // 2, h // 2))), None
    if kind == "black":  # a near-black "safety" placeholder: black with a small grey notice
        black = Image.new("RGB", img.size, tuple(int(v) for v in rng.integers(0, 12, 3)))
        ImageDraw.Draw(black).text((w // 2 - 60, h // 2), "content not available", fill=(90, 90, 90))
        return _png(black), None
    if kind == "blank":
        return _png(Image.new("RGB", img.size, tuple(int(v) for v in rng.integers(0, 256, 3)))), None
    if kind == "noise":
        if rng.random() < 0.5:
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        else:
            pixels = np.clip(rng.normal(128, 50, (h, w, 3)), 0, 255).astype(np.uint8)
        noise = Image.fromarray(pixels)
        return (_png(noise) if rng.random() < 0.5 else encode(noise, "JPEG")), None
    if kind == "blur":  # what an upscaled or softened provider output looks like: a radius of ~1 % of the side
        return _png(img.filter(ImageFilter.GaussianBlur(radius=max(w, h) * rng.uniform(0.008, 0.012)))), None
    if kind == "heavy_jpeg":
        return encode(img, "JPEG", quality=int(rng.integers(3, 9))), None
    if kind == "down_up":
        small = img.resize((w // 6, h // 6), Image.Resampling.BILINEAR)
        return _png(small.resize((w, h), Image.Resampling.BILINEAR)), None
    if kind == "swapped":
        return _png(other), None
    if kind == "few_colours":  # a flat placeholder card: two colours and a frame
        card = Image.new("RGB", img.size, tuple(int(v) for v in rng.integers(0, 256, 3)))
        d = ImageDraw.Draw(card)
        d.rectangle((w // 8, h // 8, 7 * w // 8, 7 * h // 8), outline=tuple(int(v) for v in rng.integers(0, 256, 3)), width=6)
        d.line((w // 8, h // 8, 7 * w // 8, 7 * h // 8), fill=(0, 0, 0), width=6)
        return _png(card), None
    raise ValueError(kind)


def _clean(kind: str, img: Image.Image) -> bytes:
    if kind == "png":
        return _png(img)
    if kind == "jpeg_q85":
        return encode(img, "JPEG", quality=85)
    if kind == "webp_q90":
        return encode(img, "WEBP", quality=90)
    if kind == "resize_0.9":
        return _png(img.resize((int(img.width * 0.9), int(img.height * 0.9)), Image.Resampling.LANCZOS))
    raise ValueError(kind)


def families() -> tuple[str, ...]:
    """The families this machine can draw: the photo family only when scikit-image is installed."""
    return FAMILIES if photos_available() else PROCEDURAL


def variants(per_family: int = 6, side: int = 512, photos: int | None = None,
             only: tuple[str, ...] | None = None) -> Iterator[Sample]:
    """Every variant of ``per_family`` pictures of each procedural family and of ``photos`` photographs
    (None: every available one).  ``only`` restricts the families.  "swapped" is another picture of
    the same family and size."""
    rng = np.random.default_rng(7)
    for family in families():
        if only is not None and family not in only:
            continue
        count = per_family
        if family == PHOTO:
            total = len(available_photos())
            count = total if photos is None else min(photos, total)
        for index in range(count):
            img = picture(family, index, side)
            reference = _png(img)
            if family == PHOTO:  # another photograph, of the whole set (not just the ones scored)
                total = len(available_photos())
                other = picture(family, (index + 1 + int(rng.integers(0, max(total - 1, 1)))) % total, side)
            else:
                other = picture(family, index + 100, side)
            name = picture_name(family, index)
            for kind in CLEAN:
                data = reference if kind == "png" else _clean(kind, img)
                yield Sample(family, index, kind, True, data, reference, (side, side), name)
            for kind in DEGRADED:
                data, _ = _degrade(kind, img, other, rng)
                yield Sample(family, index, kind, False, data, reference, (side, side), name)


def degrade(kind: str, img: Image.Image, other: Image.Image, rng: np.random.Generator) -> bytes:
    """The encoded degraded version ``kind`` (one of :data:`DEGRADED`) of ``img``, exactly as
    :func:`variants` makes it; "swapped" is ``other``."""
    return _degrade(kind, img, other, rng)[0]


def photo_crop(name: str, rng: np.random.Generator, side: int = 512, scale: tuple[float, float] = (0.7, 0.95)) -> Image.Image:
    """Another composition of a bundled photograph: a square crop at a random position whose side is
    a random share ``scale`` of the photograph's short side, resized (Lanczos) to ``side``.  Crops of
    one photograph stand in for the outputs of one prompt with different seeds: the same scene, the
    subject elsewhere and a little nearer or farther."""
    pixels = _photo_array(name)
    h, w = pixels.shape[:2]
    crop = rng.uniform(*scale) * min(h, w)
    top, left = rng.uniform(0, h - crop), rng.uniform(0, w - crop)
    return Image.fromarray(pixels).resize((side, side), Image.Resampling.LANCZOS,
                                          box=(left, top, left + crop, top + crop))


# -- low-resolution drafts upscaled, and the blocky pictures that are not one --------------------

#: pictures that are flat or blocky on purpose, each with the prompt that asks for it
FLAT_ART = {"pixel_art": "pixel art of a knight, 8-bit sprite", "flat": "a flat illustration of a city, vector art",
            "logo": "a minimalist logo for a coffee shop",
            "gradient": "a minimalist poster: a smooth colour gradient and two flat shapes"}


def upscale_nearest(img: Image.Image, factor: float, quality: int | None = None, fmt: str = "JPEG") -> bytes:
    """``img`` shrunk to 1/``factor`` of its size (Lanczos) and blown up again with nearest-neighbour
    to the same size -- a provider's low-resolution draft at the requested size -- as PNG, or with a
    ``quality``, re-encoded after the upscale as ``fmt`` (JPEG or WEBP)."""
    w, h = img.size
    small = img.resize((max(1, round(w / factor)), max(1, round(h / factor))), Image.Resampling.LANCZOS)
    up = small.resize((w, h), Image.Resampling.NEAREST)
    return encode(up, fmt, quality=quality) if quality and fmt != "PNG" else _png(up)


def flat_art(kind: str, index: int, side: int = 512) -> Image.Image:
    """A picture of :data:`FLAT_ART` ``kind``: pixel art (a 16..64-cell sprite on a grid, drawn as
    blocks of 8..32 px: a lattice on purpose), a flat illustration (flat-coloured shapes, no
    gradients, some anti-aliased, some pixel-exact), a logo (a mark and a word on a plain ground) or a
    flat-design gradient (a smooth 8-bit ramp, a staircase of one-level steps, under two flat shapes)."""
    rng = np.random.default_rng((31, list(FLAT_ART).index(kind), index))
    if kind == "pixel_art":
        cells = int(rng.choice([16, 24, 32, 48, 64]))
        palette = rng.integers(0, 256, (int(rng.integers(4, 12)), 3), dtype=np.uint8)
        grid = _value_noise(rng, cells, 3, base=2)
        sprite = palette[np.minimum((grid * len(palette)).astype(int), len(palette) - 1)]
        return Image.fromarray(sprite).resize((side, side), Image.Resampling.NEAREST)
    if kind == "flat":
        smooth = bool(index % 2)  # drawn at 2x and reduced (anti-aliased) or drawn pixel-exact
        big = 2 * side if smooth else side
        img = Image.new("RGB", (big, big), tuple(int(v) for v in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(6, 16))):
            x0, y0 = (int(v) for v in rng.integers(0, big, 2))
            x1, y1 = (int(v) for v in (x0, y0) + rng.integers(big // 16, big // 2, 2))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            shape = int(rng.integers(0, 3))
            if shape == 0:
                draw.rectangle((x0, y0, x1, y1), fill=colour)
            elif shape == 1:
                draw.ellipse((x0, y0, x1, y1), fill=colour)
            else:
                draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=colour)
        return img.resize((side, side), Image.Resampling.LANCZOS) if smooth else img
    if kind == "logo":
        ground = (255, 255, 255) if index % 2 == 0 else tuple(int(v) for v in rng.integers(0, 256, 3))
        img = Image.new("RGB", (side, side), ground)
        draw = ImageDraw.Draw(img)
        ink = tuple(int(v) for v in rng.integers(0, 200, 3))
        r = side * rng.uniform(0.15, 0.3)
        c = side / 2
        if index % 3 == 0:
            draw.ellipse((c - r, c - r - side / 8, c + r, c + r - side / 8), fill=ink)
        elif index % 3 == 1:
            draw.rectangle((c - r, c - r - side / 8, c + r, c + r - side / 8), outline=ink, width=max(2, side // 40))
        else:
            draw.polygon([(c - r, c + r - side / 8), (c, c - r - side / 8), (c + r, c + r - side / 8)], fill=ink)
        draw.text((c - side / 6, c + r), "BREW & CO", fill=ink, font_size=max(10, side // 14))
        return img
    if kind == "gradient":
        y, x = np.mgrid[0:side, 0:side].astype(np.float32)
        angle = rng.uniform(0, np.pi)
        t = (x * np.cos(angle) + y * np.sin(angle)) * rng.uniform(0.03, 0.8) / (side / 512)
        start, scale = rng.uniform(0, 120, 3), rng.uniform(0.3, 1.0, 3)
        img = Image.fromarray(np.clip(start + t[..., None] * scale, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(2):
            cx, cy, r = (float(v) for v in rng.uniform(0.2, 0.8, 3) * side * np.array([1, 1, 0.3]))
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        return img
    raise ValueError(kind)


#: natural periodic textures that a canary may well ask for, each with such a prompt: a lattice of
#: edges at one spacing, but not one of flat blocks (resolution.py must not read them as a draft)
PERIODIC = {"mesh": "a close-up photo of a window screen", "weave": "macro photo of woven linen fabric",
            "brick": "a red brick wall", "tiles": "a tiled bathroom floor", "chessboard": "a chessboard, top view",
            "sheet": "a spreadsheet on a monitor"}


def periodic_texture(kind: str, index: int, side: int = 512) -> Image.Image:
    """A picture of :data:`PERIODIC` ``kind`` over smooth shading with grain (sigma 2..6 grey levels),
    at period 3..9 px (``index`` picks the period, the grain and, every other one, a 0.6 px blur):
    a window screen (dark 1-px lines both ways), a fabric weave (two crossed square or sine waves),
    a brick wall (offset rows with mortar lines), a tiled floor (tiles with grout and their own
    shade), a chessboard and a spreadsheet (grid lines and text)."""
    rng = np.random.default_rng((37, list(PERIODIC).index(kind), index))
    period = 3 + index % 7
    sigma = 2 + 2 * (index % 3)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    shade = 120 + 50 * np.sin(x / rng.uniform(60, 120) + rng.uniform(0, 6)) + 35 * np.cos(y / rng.uniform(50, 100))
    if kind == "mesh":
        t = shade - rng.uniform(30, 70) * ((x % period == 0) | (y % period == 0))
    elif kind == "weave":
        if index % 2:
            warp, weft = np.sin(2 * np.pi * x / period), np.sin(2 * np.pi * y / period)
        else:
            warp, weft = np.sign(np.sin(2 * np.pi * (x + 0.5) / period)), np.sign(np.sin(2 * np.pi * (y + 0.5) / period))
        t = shade + 25 * warp * weft + 10 * warp
    elif kind == "brick":
        height, width = period * 2, period * 4
        row = y // height
        mortar = (y % height == 0) | ((x + (row % 2) * width // 2) % width == 0)
        tone = rng.uniform(-25, 25, (side // height + 2, side // width + 3))
        column = ((x + (row % 2) * width // 2) // width).astype(int)
        t = shade + tone[row.astype(int), column] + 60 * mortar
    elif kind == "tiles":
        size = period * 2
        grout = (x % size < 1) | (y % size < 1)
        tone = rng.uniform(-15, 15, (side // size + 1, side // size + 1))
        t = shade + tone[(y // size).astype(int), (x // size).astype(int)] - 45 * grout
    elif kind == "chessboard":
        t = 60 + 120 * (((x // period) + (y // period)) % 2) + 0.2 * (shade - 120)
    elif kind == "sheet":
        img = Image.new("L", (side, side), 250)
        draw = ImageDraw.Draw(img)
        pitch = period + 6
        for yy in range(0, side, pitch):
            draw.line([(0, yy), (side, yy)], fill=180)
        for xx in range(0, side, pitch * 4):
            draw.line([(xx, 0), (xx, side)], fill=180)
            for yy in range(0, side, pitch):
                draw.text((xx + 3, yy + 1), f"{rng.uniform(0, 99):.1f}", fill=20, font_size=max(6, pitch - 2))
        t = np.asarray(img, dtype=np.float32) + 0.1 * (shade - 120)
    else:
        raise ValueError(kind)
    grey = np.clip(t + rng.normal(0, sigma, t.shape), 0, 255)
    tint = np.array([1.0, 0.92, 0.8]) if kind != "sheet" else np.ones(3)
    img = Image.fromarray(np.clip(grey[..., None] * tint, 0, 255).astype(np.uint8))
    return img.filter(ImageFilter.GaussianBlur(0.6)) if index % 2 else img
