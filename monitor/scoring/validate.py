"""Stage 1: decode with Pillow (bomb-guarded) and check the format and dimensions."""

from __future__ import annotations

import hashlib
import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from monitor.scoring.types import Assessment, ScoringInput

MAX_PIXELS = 64 * 1024 * 1024  # 8192 x 8192; anything larger is refused as a decompression bomb
MAX_DECODED_BYTES = 256 * 1024 * 1024  # what decoding and analysing it may take (a 16-bit 8192² PNG is 130 KB on the wire)
MAX_ASPECT = 64  # a 1 x 60 000 000 strip is not a picture anybody asked for
ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP", "GIF"}


def decode_and_validate(given: ScoringInput, out: Assessment) -> None:
    out.sha256 = hashlib.sha256(given.data).hexdigest()
    if not given.data:
        out.fail("empty", "the response carried no image bytes", invalid=True)
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(given.data))
            out.format = image.format
            out.width, out.height = image.size
            if image.width * image.height > MAX_PIXELS:
                raise Image.DecompressionBombError(f"{image.width}x{image.height} pixels")
            if out.format not in ALLOWED_FORMATS:  # refused from the header: never decoded
                out.fail("unexpected_format", f"unexpected image format {out.format}", invalid=True)
                return
            _refuse_costly(image)
            image.load()  # full decode: catches truncated files
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        out.fail("decompression_bomb", f"image too large to decode safely ({exc})", invalid=True)
        return
    except UnidentifiedImageError:
        out.fail("undecodable", "the bytes are not an image format Pillow can read", invalid=True)
        return
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        out.fail("truncated", f"the image is truncated or corrupt ({exc})", invalid=True)
        return
    if given.requested_size and not _size_matches(given, out.width, out.height):
        want = "x".join(map(str, given.requested_size))
        what = "the aspect ratio of " if given.size_check == "aspect" else ""
        out.fail("wrong_size", f"image is {out.width}x{out.height}, {what}{want} was requested", invalid=True)
        return
    try:
        image = eight_bit(image)
    except Exception as exc:  # noqa: BLE001 - any conversion failure means an unusable image
        out.fail("undecodable", f"the image cannot be converted for analysis ({type(exc).__name__})", invalid=True)
        return
    out.image = image
    try:
        out.small  # noqa: B018 - the analysis copy every later stage uses; odd modes fail here
    except Exception as exc:  # noqa: BLE001 - any conversion failure means an unusable image
        out.image = None
        out.fail("undecodable", f"the image cannot be converted for analysis ({type(exc).__name__})", invalid=True)


WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def _refuse_costly(image: Image.Image) -> None:
    """Refuse, before decoding, what would cost too much memory or time to decode and analyse."""
    width, height = image.size
    if min(width, height) == 0 or max(width, height) / min(width, height) > MAX_ASPECT:
        raise Image.DecompressionBombError(f"a {width}x{height} strip")
    needed = width * height * peak_bytes_per_pixel(image)
    if needed > MAX_DECODED_BYTES:
        raise Image.DecompressionBombError(f"{width}x{height} {image.format} {image.mode} would take "
                                           f"{needed // 2**20} MB to decode and analyse")


def peak_bytes_per_pixel(image: Image.Image) -> int:
    """The memory a pixel takes at the peak of decoding and analysing, known from the header alone.

    Pillow holds 1 byte a pixel for modes 1, L and P, 2 for 16-bit grey and 4 for every other
    mode (RGB included); WebP decodes through three more 4-byte buffers and a progressive JPEG keeps
    2 bytes of coefficients per band; ``eight_bit`` adds float32 and 8-bit copies of wide modes, an
    RGB picture over white for transparent ones, and ``analysis_copy`` an RGB copy of other modes.
    (Measured: an 8192 x 8192 RGBA PNG peaked at 1.1 GB, a WebP of that size at 1 GB on load alone.)
    """
    mode = image.mode
    held = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    if image.format == "WEBP":
        held += 12
    elif image.format == "JPEG" and image.info.get("progressive"):
        held += 2 * len(image.getbands())
    if mode in WIDE_MODES:
        return held + 2 + 4 + 1  # the array interface's copy, float32, the 8-bit result
    if _transparent(image):
        return held + (0 if mode in ("RGBA", "LA") else 4) + 4  # RGBA made from P or PA, then RGB
    return held + (0 if mode in ("RGB", "L") else 4)


def eight_bit(image: Image.Image) -> Image.Image:
    """16-bit and float greyscale as 8-bit "L" (scaled, not clipped: Pillow's own conversion clips
    16-bit values at 255, which turns a 16-bit picture into a near-white card); a transparent picture
    (e.g. GPT-image's ``background: transparent``) over white, as it is shown -- dropping the alpha
    would judge the hidden colour of transparent pixels, usually black; other modes as is."""
    if _transparent(image):
        # pasted through its own alpha onto white: one RGB copy, where compositing RGBA images took three
        rgba = image if image.mode in ("RGBA", "LA") else image.convert("RGBA")
        shown = Image.new("RGB", image.size, (255, 255, 255))
        shown.paste(rgba, (0, 0), rgba)
        return shown
    if image.mode not in WIDE_MODES:
        return image
    pixels = np.array(image, dtype=np.float32)  # float32 in place: exact for 16-bit values, half of float64's memory
    if image.mode.startswith("I;16"):
        top = 65535.0
    else:
        peak = float(np.nanmax(pixels)) if pixels.size else 0.0
        top = 1.0 if image.mode == "F" and peak <= 1.0 else (65535.0 if peak > 255 else 255.0)
    np.nan_to_num(pixels, copy=False, nan=0.0, posinf=top, neginf=0.0)
    pixels *= 255.0 / top
    np.clip(pixels, 0, 255, out=pixels)
    np.rint(pixels, out=pixels)
    return Image.fromarray(pixels.astype(np.uint8), "L")


def _transparent(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


ASPECT_TOLERANCE = 0.03  # providers round aspect-ratio sizes to multiples of 8, 16 or 64


def _size_matches(given: ScoringInput, width: int, height: int) -> bool:
    assert given.requested_size is not None
    if given.size_check == "none":
        return True
    want_w, want_h = given.requested_size
    if given.size_check == "aspect":
        return abs((width / height) / (want_w / want_h) - 1) <= ASPECT_TOLERANCE
    return (width, height) == (want_w, want_h)
