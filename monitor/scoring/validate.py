"""Stage 1: decode with Pillow (bomb-guarded) and check the format and dimensions."""

from __future__ import annotations

import hashlib
import io
import warnings

from PIL import Image, UnidentifiedImageError

from monitor.scoring.pipeline import Assessment, ScoringInput

MAX_PIXELS = 64 * 1024 * 1024  # 8192 x 8192; anything larger is refused as a decompression bomb
ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP", "GIF"}


def decode_and_validate(given: ScoringInput, out: Assessment) -> None:
    out.sha256 = hashlib.sha256(given.data).hexdigest()
    if not given.data:
        out.fail("empty", "the response carried no image bytes", invalid=True)
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(given.data))
            out.format = image.format
            out.width, out.height = image.size
            if image.width * image.height > MAX_PIXELS:
                raise Image.DecompressionBombError(f"{image.width}x{image.height} pixels")
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
    if out.format not in ALLOWED_FORMATS:
        out.fail("unexpected_format", f"unexpected image format {out.format}", invalid=True)
        return
    if given.requested_size and not _size_matches(given, out.width, out.height):
        want = "x".join(map(str, given.requested_size))
        what = "the aspect ratio of " if given.size_check == "aspect" else ""
        out.fail("wrong_size", f"image is {out.width}x{out.height}, {what}{want} was requested", invalid=True)
        return
    out.image = image
    try:
        out.small  # noqa: B018 - the analysis copy every later stage uses; odd modes fail here
    except Exception as exc:  # noqa: BLE001 - any conversion failure means an unusable image
        out.image = None
        out.fail("undecodable", f"the image cannot be converted for analysis ({type(exc).__name__})", invalid=True)


ASPECT_TOLERANCE = 0.03  # providers round aspect-ratio sizes to multiples of 8, 16 or 64


def _size_matches(given: ScoringInput, width: int, height: int) -> bool:
    assert given.requested_size is not None
    if given.size_check == "none":
        return True
    want_w, want_h = given.requested_size
    if given.size_check == "aspect":
        return abs((width / height) / (want_w / want_h) - 1) <= ASPECT_TOLERANCE
    return (width, height) == (want_w, want_h)
