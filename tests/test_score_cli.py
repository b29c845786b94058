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
        assert code in (0, 1) and set(data) == KEYS and 0 <= data["score"] <= 1
        if code == 0:
            assert data["verdict"] == "pass"
