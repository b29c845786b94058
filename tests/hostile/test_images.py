"""``genstatus score IMAGE`` on odd and hostile images, all made here at run time.

Exit codes (README, commands): 0 pass, 1 degraded or fail -- bytes that are not a usable image are a
``fail`` verdict, not an error -- and 2 a file that cannot be read (missing, a directory, over the
size a generated image can have).  Images that would be costly to decode are refused from their
header by the guard in ``monitor.scoring.validate``: those run in a subprocess, whose peak memory
and time are measured against ``genstatus --help``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from monitor.cli import main
from tests.hostile.support import MB, SLACK_S, assert_clean, baseline, run_cli, run_measured

MEMORY_BOUND = 600 * MB  # generous: an allowed 8192 x 8192 RGB picture peaks near 350 MB; refusing takes ~90 MB


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_of_zeros(width: int, height: int, bit_depth: int, colour_type: int, row_bytes: int, extra: bytes = b"",
                 fill: bytes = b"\x00") -> bytes:
    """A valid PNG of rows of ``fill`` bytes; its pixels never exist here and are compressed only once.

    A block of rows is deflated once, ending in a full flush (nothing after it refers back), and
    that segment is repeated; the zlib header and checksum around them are written by hand.
    """
    row = b"\x00" + fill * row_bytes
    per_block = max(1, MB // len(row))
    blocks, rest = divmod(height, per_block)

    def deflated(data: bytes) -> bytes:
        raw = zlib.compressobj(6, zlib.DEFLATED, -15)
        return raw.compress(data) + raw.flush(zlib.Z_FULL_FLUSH)

    block = row * per_block
    checksum = 1
    for _ in range(blocks):
        checksum = zlib.adler32(block, checksum)
    checksum = zlib.adler32(row * rest, checksum)
    finish = zlib.compressobj(6, zlib.DEFLATED, -15)
    stream = (b"\x78\x9c" + deflated(block) * blocks + deflated(row * rest) + finish.flush()
              + struct.pack(">I", checksum & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra + chunk(b"IDAT", stream) + chunk(b"IEND", b"")


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def picture(width: int = 256, height: int = 256) -> Image.Image:
    """Smooth bands and gradients: what any generated picture is at 256 px, and passes every detector."""
    y, x = np.mgrid[0:height, 0:width]
    red = 128 + 100 * np.sin(x / 17.0) * np.cos(y / 23.0)
    green = x * 255 / max(width - 1, 1)
    blue = (x + y) % 256
    return Image.fromarray(np.dstack([red, green, blue]).astype(np.uint8), "RGB")


def with_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    """A JPEG whose frame header claims another size (what a bomb looks like to the header reader)."""
    out = bytearray(data)
    at = next(i for i in range(len(out) - 1) if out[i] == 0xFF and out[i + 1] in (0xC0, 0xC1, 0xC2))
    out[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(out)


def with_webp_size(data: bytes, width: int, height: int) -> bytes:
    """A lossless WebP whose VP8L header claims another size."""
    out = bytearray(data)
    at = out.index(b"VP8L") + 8
    assert out[at] == 0x2F
    bits = int.from_bytes(out[at + 1:at + 5], "little")
    bits = (bits & ~0x0FFFFFFF) | (width - 1) | ((height - 1) << 14)
    out[at + 1:at + 5] = bits.to_bytes(4, "little")
    return bytes(out)


@functools.cache
def odd_images() -> dict[str, tuple[bytes, int, set[str], str]]:
    """name -> (file bytes, exit code, flags that must be there, a flag that must not be).

    Exit 2: ``score`` could not judge the file (not an image, an unsupported format or size); 1: it judged
    a picture bad (truncated, blank, noise ...)."""
    rng = np.random.default_rng(7)
    base = picture()
    png, jpeg = encode(base, "PNG"), encode(base, "JPEG", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    palette = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    frames = [Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).convert("P") for _ in range(3)]
    text_chunks = chunk(b"tEXt", b"Comment\x00" + b"A" * (4 * MB)) + chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * (64 * MB), 9))
    gif_screen = bytearray(encode(Image.new("P", (8, 8)), "GIF"))
    gif_screen[6:10] = struct.pack("<HH", 65535, 65535)  # a 4-gigapixel logical screen around an 8 x 8 frame
    noise = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    return {
        "truncated.png": (png[: len(png) // 2], 1, {"truncated"}, "blank"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], 1, {"truncated"}, "blank"),
        "header-only.png": (png[:33], 2, {"undecodable"}, "blank"),
        "signature-only.png": (b"\x89PNG\r\n\x1a\n", 2, {"undecodable"}, "blank"),
        "zero-bytes.png": (b"", 2, {"empty"}, "blank"),
        "html-error-page.png": (b"<!doctype html><html><body><h1>502 Bad Gateway</h1></body></html>\n", 2, {"undecodable"}, ""),
        "json-error.png": (b'{"error": {"code": "content_policy_violation"}}', 2, {"undecodable"}, ""),
        "svg.png": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', 2, {"undecodable"}, ""),
        "random-bytes.png": (rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), 2, {"undecodable"}, ""),
        "bad-header-crc.png": (png[:29] + b"\x00\x00\x00\x00" + png[33:], 2, {"undecodable"}, "blank"),
        "tiff.png": (encode(base, "TIFF"), 2, {"unexpected_format"}, ""),
        "bmp.png": (encode(base, "BMP"), 2, {"unexpected_format"}, ""),
        "gif-with-a-4-gigapixel-screen.gif": (bytes(gif_screen), 2, {"decompression_bomb"}, ""),
        "jpeg-claiming-65500-squared.jpg": (with_jpeg_size(jpeg, 65500, 65500), 2, {"decompression_bomb"}, ""),
        "png-claiming-2-gigapixel-row.png": (png_of_zeros(2**31 - 1, 1, 8, 0, 0)[:33] + chunk(b"IEND", b""), 2,
                                             {"decompression_bomb"}, ""),
        "animated.gif": (encode(base.convert("P"), "GIF", save_all=True, append_images=frames, duration=100, loop=0), 0, set(), ""),
        "animated.webp": (encode(base, "WEBP", save_all=True, append_images=[base.rotate(90)], duration=100), 0, set(), ""),
        "2000-frames.gif": (encode(Image.new("P", (16, 16)), "GIF", save_all=True,
                                   append_images=[Image.new("P", (16, 16), i % 255) for i in range(2000)]), 1, {"blank"}, ""),
        "cmyk.jpg": (encode(base.convert("CMYK"), "JPEG"), 0, set(), ""),
        "palette-with-transparency.png": (encode(palette, "PNG", transparency=0), 0, set(), ""),
        "fully-transparent.png": (encode(Image.new("RGBA", (256, 256), (0, 0, 0, 0)), "PNG"), 1, {"blank"}, "near_black"),
        "one-pixel.png": (encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"), 1, {"blank"}, ""),
        "greyscale.png": (encode(base.convert("L"), "PNG"), 0, set(), ""),
        "grey-alpha.png": (encode(base.convert("LA"), "PNG"), 0, set(), ""),
        "16-bit-grey.png": (encode(Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257), "PNG"), 0, set(), ""),
        "exif-rotated.jpg": (encode(base, "JPEG", exif=exif.tobytes()), 0, set(), ""),
        "lossless.webp": (encode(base, "WEBP", lossless=True), 0, set(), ""),
        "progressive.jpg": (encode(base, "JPEG", progressive=True), 0, set(), ""),
        "huge-icc-profile.jpg": (encode(base, "JPEG", icc_profile=b"\x00" * MB), 0, set(), ""),
        "huge-text-chunks.png": (png[:33] + text_chunks + png[33:], 1, set(), ""),  # Pillow refuses a 64 MB zTXt
        "png-html-zip-polyglot.png": (png + b"<html><script>alert(1)</script></html>PK\x05\x06" + b"\x00" * 18, 0, set(), ""),
        "random-noise.png": (encode(Image.fromarray(noise), "PNG"), 1, {"noise"}, "blank"),
        "random-noise.jpg": (encode(Image.fromarray(noise), "JPEG", quality=95), 1, {"noise"}, "blank"),
        "grey-noise.png": (encode(Image.fromarray(noise[:, :, 0]), "PNG"), 1, {"noise"}, "blank"),
        "all-black.png": (encode(Image.new("RGB", (512, 512)), "PNG"), 1, {"blank"}, "noise"),
        "all-white.jpg": (encode(Image.new("RGB", (512, 512), (255, 255, 255)), "JPEG"), 1, {"blank"}, "noise"),
    }


ODD_NAMES = ["truncated.png", "truncated.jpg", "header-only.png", "signature-only.png", "zero-bytes.png",
             "html-error-page.png", "json-error.png", "svg.png", "random-bytes.png", "bad-header-crc.png", "tiff.png",
             "bmp.png", "gif-with-a-4-gigapixel-screen.gif", "jpeg-claiming-65500-squared.jpg",
             "png-claiming-2-gigapixel-row.png", "animated.gif", "animated.webp", "2000-frames.gif", "cmyk.jpg",
             "palette-with-transparency.png", "fully-transparent.png", "one-pixel.png", "greyscale.png", "grey-alpha.png",
             "16-bit-grey.png", "exif-rotated.jpg", "lossless.webp", "progressive.jpg", "huge-icc-profile.jpg",
             "huge-text-chunks.png", "png-html-zip-polyglot.png", "random-noise.png", "random-noise.jpg", "grey-noise.png",
             "all-black.png", "all-white.jpg"]


def test_the_corpus_names_every_odd_image():
    assert ODD_NAMES == list(odd_images())


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The longest an odd image may take: ``score`` of a good picture, in this process, plus ``SLACK_S``."""
    good = tmp_path_factory.mktemp("good") / "good.png"
    good.write_bytes(encode(picture(), "PNG"))
    return baseline("score", str(good), "--json") + SLACK_S


@pytest.mark.parametrize("name", ODD_NAMES)
def test_an_odd_image_gets_a_verdict_not_a_traceback(tmp_path, capsys, quick, name):
    data, code, flags, not_flag = odd_images()[name]
    path = tmp_path / name
    path.write_bytes(data)
    run = run_cli(capsys, "score", str(path), "--json")
    assert_clean(run)
    result = json.loads(run.out)
    assert run.code == code, (run.code, result)
    assert flags <= set(result["flags"]), result
    assert not not_flag or not_flag not in result["flags"], result
    assert (result["verdict"] == "pass") == (code == 0) and 0 <= result["score"] <= 1, result
    if run.code in (1, 2) and result["verdict"] == "fail":
        assert result["reasons"], result  # a person can read why
    assert run.seconds < quick, f"{run.seconds:.2f} CPU s, a good picture took {quick - SLACK_S:.2f}"


def test_noise_is_called_noise_in_the_text_output_too(tmp_path, capsys):
    path = tmp_path / "noise.png"
    path.write_bytes(odd_images()["random-noise.png"][0])
    run = run_cli(capsys, "score", str(path))
    assert run.code == 1 and "fail" in run.out and "random noise" in run.out and "blank" not in run.out, run.text


#: name -> (a maker of the file's bytes, exit code, flag): refused from the header (exit 2: not judged), or (the
#: last) decoded within bounds
COSTLY = {
    "16-bit-8192-squared.png": (lambda: png_of_zeros(8192, 8192, 16, 0, 8192 * 2), 2, "decompression_bomb"),
    "strip-1x60000000.png": (lambda: png_of_zeros(1, 60_000_000, 8, 2, 3), 2, "decompression_bomb"),
    "bomb-30000-squared-1-bit.png": (lambda: png_of_zeros(30_000, 30_000, 1, 0, 30_000 // 8), 2, "decompression_bomb"),
    "rgba-8192-squared.png": (lambda: png_of_zeros(8192, 8192, 8, 6, 8192 * 4, fill=b"\x80"), 2, "decompression_bomb"),
    "palette-transparent-8192-squared.png": (lambda: png_of_zeros(8192, 8192, 8, 3, 8192, fill=b"\x05", extra=chunk(
        b"PLTE", bytes(range(256)) * 3) + chunk(b"tRNS", b"\x80" * 256)), 2, "decompression_bomb"),
    "webp-claiming-8192-squared.webp": (lambda: with_webp_size(encode(picture(), "WEBP", lossless=True), 8192, 8192), 2,
                                        "decompression_bomb"),
    "progressive-jpeg-claiming-8192-squared.jpg": (lambda: with_jpeg_size(encode(picture(), "JPEG", progressive=True),
                                                                          8192, 8192), 2, "decompression_bomb"),
    "rgb-8192-squared.png": (lambda: png_of_zeros(8192, 8192, 8, 2, 8192 * 3, fill=b"\x80"), 1, "blank"),  # allowed: decoded
}


@pytest.mark.parametrize("name", list(COSTLY))
def test_a_costly_image_is_refused_cheaply_or_decoded_within_bounds(tmp_path, cli_start, name):
    """Measured before the guard counted what decoding and analysing really hold: an 8192 x 8192 RGBA
    PNG peaked at 1.1 GB, a WebP of that size at 1 GB, a transparent palette one at 0.9 GB."""
    make, code, flag = COSTLY[name]
    data = make()
    path = tmp_path / name
    path.write_bytes(data)
    run = run_measured("score", str(path), "--json")
    assert_clean(run)
    result = json.loads(run.out)
    assert run.code == code and flag in result["flags"], (run.code, result, run.err[-2000:])
    assert run.peak_rss < MEMORY_BOUND, f"{run.peak_rss // MB} MB"
    refused = flag == "decompression_bomb"
    allowed = SLACK_S if refused else 2 * SLACK_S  # decoding 64 MP takes a second of CPU
    assert run.seconds < cli_start.seconds + allowed, f"{run.seconds:.2f} CPU s, --help took {cli_start.seconds:.2f}"
    if refused:
        assert run.peak_rss < cli_start.peak_rss + 100 * MB, f"{run.peak_rss // MB} MB: decoded before it was refused?"


def test_files_that_cannot_be_read_exit_2(tmp_path, capsys):
    """Exit 2 is "we could not judge it": no file, a directory, more bytes than any generated image."""
    too_big = tmp_path / "too-big.png"
    with too_big.open("wb") as sparse:
        sparse.truncate(65 * MB)  # sparse: takes no disk
    cases = [(tmp_path / "missing.png", "no such image file"), (tmp_path, "cannot read the image file"),
             (too_big, "over 64 MB, too large to be a generated image")]
    for path, message in cases:
        run = run_cli(capsys, "score", str(path))
        assert run.code == 2 and run.out == "" and f"genstatus: {path}: {message}" in run.err, run.text
        assert_clean(run)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_file_is_read_no_further_than_an_image_can_be(cli_start):
    run = run_measured("score", "/dev/zero")
    assert_clean(run)
    assert run.code == 2 and "genstatus: /dev/zero: over 64 MB" in run.err, run.text
    assert run.peak_rss < cli_start.peak_rss + 200 * MB, f"{run.peak_rss // MB} MB"


def test_a_reference_that_is_not_an_image_does_not_stop_the_judgement(tmp_path, capsys):
    image, reference = tmp_path / "a.png", tmp_path / "ref.png"
    image.write_bytes(encode(picture(), "PNG"))
    reference.write_bytes(b"<html>not a picture</html>")
    run = run_cli(capsys, "score", str(image), "--reference", str(reference), "--json")
    assert run.code in (0, 1) and json.loads(run.out)["verdict"] in ("pass", "degraded"), run.text


def test_a_file_name_that_is_not_utf8_is_printed_not_a_traceback(tmp_path):
    """Python keeps such bytes as lone surrogates; a strict UTF-8 stdout (a UTF-8 locale, a pipe with
    PYTHONIOENCODING=utf-8) refused them with a traceback."""
    if os.name != "posix":
        pytest.skip("file names are bytes on POSIX only")
    path = os.path.join(os.fsencode(tmp_path), b"shot-\xff.png")
    with open(path, "wb") as image:
        image.write(encode(picture(), "PNG"))
    strict = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    with contextlib.redirect_stdout(strict):
        code = main(["score", os.fsdecode(path)])
    strict.flush()
    out = strict.buffer.getvalue().decode()
    assert code == 0 and "shot-\\udcff.png: pass" in out, out
