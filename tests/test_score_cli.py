"""``genstatus score`` (docs/contracts.md, ``genstatus score`` output): output contract, exit codes, and never crashing on any file."""

from __future__ import annotations

import io
import json

import numpy as np

from monitor.cli import main
from probes.emulator.images import encode_png, render_image

KEYS = {"verdict", "score", "flags", "hashes", "reference_distance", "reasons"}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_good_image_passes_with_json_contract(tmp_path, capsys):
    path = tmp_path / "a.png"
    path.write_bytes(encode_png(render_image("apple", 1, "m", 256, 256)))
    code, out, _ = run(capsys, "score", str(path), "--json")
    data = json.loads(out)
    assert code == 0 and set(data) == KEYS and data["verdict"] == "pass" and data["reference_distance"] is None
    assert 0 <= data["score"] <= 1 and data["hashes"]["phash"]


def test_reference_drift_text_output_and_exit_1(tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(encode_png(render_image("apple", 1, "m", 256, 256)))
    b.write_bytes(encode_png(render_image("apple", 2, "m", 256, 256)))
    code, out, _ = run(capsys, "score", str(a), "--reference", str(b), "--prompt", "apple")
    assert code == 1 and "degraded" in out and "reference" in out


def test_missing_files_are_usage_errors(tmp_path, capsys):
    code, _, err = run(capsys, "score", str(tmp_path / "nope.png"))
    assert code == 2 and "no such image file" in err
    img = tmp_path / "a.png"
    img.write_bytes(encode_png(render_image("apple", 1, "m", 64, 64)))
    code, _, err = run(capsys, "score", str(img), "--reference", str(tmp_path / "missing.png"))
    assert code == 2 and "no such reference file" in err and len(err.strip().splitlines()) == 1


def test_fuzz_random_and_truncated_bytes_never_crash(tmp_path, capsys):
    rng = np.random.default_rng(0)
    good = []
    for fmt in ("PNG", "JPEG", "WEBP", "GIF"):
        out = io.BytesIO()
        render_image("fuzz", 3, "m", 96, 96).convert("RGB" if fmt != "GIF" else "P").save(out, fmt)
        good.append(out.getvalue())
    blobs = []
    for i in range(300):
        if i % 3 == 0:
            blobs.append(rng.integers(0, 256, int(rng.integers(0, 2048)), dtype=np.uint8).tobytes())
        else:
            data = good[i % len(good)]
            cut = data[: int(rng.integers(0, len(data)))]
            if i % 3 == 2 and cut:  # flip a few bytes too
                arr = bytearray(cut)
                for j in rng.integers(0, len(arr), 4):
                    arr[j] = int(rng.integers(0, 256))
                cut = bytes(arr)
            blobs.append(cut)
    path = tmp_path / "f.bin"
    for blob in blobs:
        path.write_bytes(blob)
        code, out, _ = run(capsys, "score", str(path), "--json", "--reference", str(path))
        data = json.loads(out)
        assert set(data) == KEYS and 0 <= data["score"] <= 1
        not_judged = {"empty", "undecodable", "unexpected_format", "decompression_bomb"} & set(data["flags"])
        assert code == (2 if not_judged else 0 if data["verdict"] == "pass" else 1), (code, data)


def _pictures(tmp_path):
    from PIL import Image

    good = tmp_path / "good.png"
    good.write_bytes(encode_png(render_image("apple", 1, "m", 256, 256)))
    other = tmp_path / "other.png"
    other.write_bytes(encode_png(render_image("a lighthouse at night", 9, "m", 256, 256)))
    blank = tmp_path / "blank.png"
    Image.new("RGB", (256, 256), (90, 90, 90)).save(blank)
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(noise)
    text = tmp_path / "notes.png"
    text.write_text("not a picture\n")
    return good, other, blank, noise, text


def test_repeated_and_listed_references_are_all_kept(tmp_path, capsys):
    """``--reference a --reference b`` kept only b; ``--reference a b`` kept both: both forms keep both now."""
    from monitor.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["score", "x.png", "--reference", "a.png", "--reference", "b.png"]).reference == ["a.png", "b.png"]
    assert parser.parse_args(["score", "x.png", "--reference", "a.png", "b.png"]).reference == ["a.png", "b.png"]
    assert parser.parse_args(["score", "x.png", "--reference", "a.png", "b.png", "--reference", "c.png"]).reference == [
        "a.png", "b.png", "c.png"]
    good, other, *_ = _pictures(tmp_path)
    # the image is one of the references: 0 bits from the nearest only when that reference was kept
    for argv in (["--reference", str(good), "--reference", str(other)], ["--reference", str(other), "--reference", str(good)],
                 ["--reference", str(other), str(good)]):
        code, out, _ = run(capsys, "score", str(good), "--json", *argv)
        data = json.loads(out)
        assert code == 0 and data["reference_distance"] == 0, (argv, data)


def test_a_reference_that_cannot_serve_is_named_in_reasons(tmp_path, capsys):
    good, other, blank, noise, text = _pictures(tmp_path)
    code, out, _ = run(capsys, "score", str(good), "--json", "--reference", str(good), str(blank), "--reference", str(noise),
                       str(text))
    data = json.loads(out)
    assert code == 0 and data["verdict"] == "pass" and data["reference_distance"] == 0, data
    dropped = [r for r in data["reasons"] if r.startswith("reference ")]
    assert len(dropped) == 3, data["reasons"]
    assert dropped[0].startswith(f"reference {blank} dropped: the image is blank"), dropped
    assert dropped[1].startswith(f"reference {noise} dropped: the image looks like random noise"), dropped
    assert dropped[2] == f"reference {text} dropped: the bytes are not an image format Pillow can read", dropped
    # every reference dropped: judged without a profile, and said so
    code, out, _ = run(capsys, "score", str(good), "--reference", str(blank))
    assert code == 0 and f"reference {blank} dropped: the image is blank" in out and "bits from" not in out, out


def test_a_file_that_is_not_an_image_exits_2_and_a_broken_picture_1(tmp_path, capsys):
    """2: we could not judge it (missing, unreadable, not an image); 1: judged and failed."""
    good, _, blank, _, text = _pictures(tmp_path)
    code, out, err = run(capsys, "score", str(text))
    assert code == 2 and "fail" in out and "not an image format" in out and err == "", (out, err)
    code, out, _ = run(capsys, "score", str(text), "--json")
    assert code == 2 and json.loads(out)["flags"] == ["undecodable"]
    (tmp_path / "empty.png").write_bytes(b"")
    assert run(capsys, "score", str(tmp_path / "empty.png"))[0] == 2
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:-200])  # a real PNG cut short: a broken picture
    code, out, _ = run(capsys, "score", str(tmp_path / "cut.png"), "--json")
    assert code == 1 and "truncated" in json.loads(out)["flags"], out
    assert run(capsys, "score", str(blank))[0] == 1
    assert run(capsys, "score", str(tmp_path / "missing.png"))[0] == 2
