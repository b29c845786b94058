"""``monitor.scoring.phash``: the same 64 bits as ``imagehash.phash`` (stored hashes stay comparable), without scipy."""

from __future__ import annotations

import subprocess
import sys

import imagehash
import numpy as np
from PIL import Image, ImageDraw

from monitor.scoring.phash import phash
from probes.emulator.images import render_image


def corpus() -> list[Image.Image]:
    """Renders, noise, flat colours, stripes, checkerboards, shapes and ramps: the ties of flat and symmetric
    pictures (DCT coefficients exactly 0) are where a different summation could flip a bit."""
    rng = np.random.default_rng(0)
    images = [render_image(f"prompt {i}", i, "m", 256, 256) for i in range(60)]
    images += [Image.fromarray(rng.integers(0, 256, (64 + i, 80, 3), dtype=np.uint8)) for i in range(20)]
    images += [Image.new("RGB", (100, 100), (c, c // 2, 255 - c)) for c in range(0, 256, 15)]
    rows, cols = np.indices((256, 256))
    for step in (2, 3, 4, 5, 8, 16, 32):
        images.append(Image.fromarray(((rows + cols) // step % 2 * 255).astype(np.uint8)))
        images.append(Image.fromarray((cols // step % 2 * 255).astype(np.uint8)))
        images.append(Image.fromarray((rows // step % 2 * 200).astype(np.uint8)))
    for i in range(15):
        shape = Image.new("RGB", (256, 256), (255, 255, 255))
        ImageDraw.Draw(shape).rectangle([i * 3, i * 2, 128 + i, 200], fill=(0, 0, 0))
        images.append(shape)
        images.append(Image.fromarray(np.tile(np.linspace(0, 255 - i, 256), (256, 1)).astype(np.uint8)))
    images.append(Image.new("L", (1, 1), 7))
    images.append(render_image("a wide one", 3, "m", 512, 128).convert("RGBA"))
    return images


def test_bits_equal_imagehash():
    different = [i for i, image in enumerate(corpus()) if str(phash(image)) != str(imagehash.phash(image))]
    assert different == []


def test_phash_does_not_import_scipy():
    code = ("import sys; from PIL import Image; from monitor.scoring.phash import phash; "
            "phash(Image.new('RGB', (64, 64), (10, 20, 30))); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
