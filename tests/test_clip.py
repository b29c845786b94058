"""The optional CLIP plug-in (monitor/scoring/clip.py): wiring, weight formats, failing fast, offline.

The model is a real open_clip architecture registered from a tiny config (a 1-layer ViT and a
1-layer text transformer, 32-d embeddings) so that creating, saving and loading it takes well under
a second; its weights are random, so only the plumbing is judged here, not CLIP's judgement.
"""

from __future__ import annotations

import io
import json
import math
import os
import socket
import sys
import threading

import pytest

torch = pytest.importorskip("torch", reason="the CLIP plug-in needs torch and open_clip (extra 'clip')")

_TORCHVISION_STAND_IN = None  # keeps the op schemas below registered for the whole session


def _tolerate_torchvision_without_compiled_ops() -> None:
    """Let a torchvision whose compiled ops cannot load be imported, for these tests only.

    PyPI's x86_64 torchvision wheels are built against CUDA torch: beside a CPU build of torch their
    ``_C.so`` does not load, and ``import torchvision`` then stops at registering a fake kernel for
    ``torchvision::nms`` ("operator torchvision::nms does not exist").  open_clip imports torchvision
    for its transforms (pure Python, no compiled op), so declaring the two op schemas torchvision
    registers unconditionally lets it import.  Only on that exact failure: a torchvision that
    matches its torch (CPU index, or CUDA torch) imports untouched.  The plug-in itself has no such
    workaround; on a mismatched install it reports ClipUnavailable.
    """
    global _TORCHVISION_STAND_IN
    try:
        import torchvision  # noqa: F401
        return
    except ImportError:
        return  # importorskip("open_clip") below says so
    except RuntimeError as exc:
        if "torchvision::nms does not exist" not in str(exc):
            pytest.skip(f"torchvision cannot be imported: {exc}", allow_module_level=True)
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    _TORCHVISION_STAND_IN = torch.library.Library("torchvision", "DEF")  # noqa: TOR901
    _TORCHVISION_STAND_IN.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_STAND_IN.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")


_tolerate_torchvision_without_compiled_ops()
open_clip = pytest.importorskip("open_clip", reason="the CLIP plug-in needs open_clip (extra 'clip')")

from PIL import Image

from monitor.config import ClipConfig, QualityConfig
from monitor.enums import Verdict
from monitor.scoring import clip
from monitor.scoring.types import Assessment, ScoringInput
from monitor.scoring.validate import decode_and_validate

TINY = "genstatus-test-tiny-clip"
TINY_OTHER = "genstatus-test-tiny-clip-wider"


def _config(width: int) -> dict:
    return {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": width, "head_width": 32, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Registers the two tiny architectures with open_clip (its own config mechanism)."""
    folder = tmp_path_factory.mktemp("clip-configs")
    (folder / f"{TINY}.json").write_text(json.dumps(_config(64)))
    (folder / f"{TINY_OTHER}.json").write_text(json.dumps(_config(96)))
    open_clip.add_model_config(folder)
    assert TINY in open_clip.list_models()
    return TINY


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection attempt (a download) fails the test; the cache starts empty."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"the CLIP plug-in tried to open a network connection {args[1:]!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    clip._CACHE.clear()
    yield
    clip._CACHE.clear()


def _state_dict(name: str = TINY, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return open_clip.create_model(name, pretrained=None).state_dict()


def _save(state: dict, path, fmt: str):
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif fmt == "training":  # open_clip's training checkpoint: wrapped, with DistributedDataParallel's prefix
        torch.save({"epoch": 3, "name": "run", "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        torch.save(state, path)
    return path


@pytest.fixture
def weights(tiny_models, tmp_path):
    return _save(_state_dict(), tmp_path / "tiny.pt", "pt")


def _png(colour=(200, 30, 40), size=(96, 64)) -> bytes:
    buffer = io.BytesIO()
    image = Image.new("RGB", size, colour)
    image.paste((20, 20, 220), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _score(cfg: ClipConfig | None, prompt: str | None = "a red card with a blue square", data: bytes | None = None):
    given = ScoringInput(data=data or _png(), prompt=prompt, quality=QualityConfig(clip=cfg))
    out = Assessment(size_bytes=len(given.data))
    decode_and_validate(given, out)
    assert out.image is not None
    clip.prompt_agreement(given, out)
    return out


@pytest.mark.parametrize("fmt, suffix", [("pt", ".pt"), ("training", ".bin"), ("safetensors", ".safetensors")])
def test_scores_the_prompt_with_weights_from_a_local_file(tiny_models, tmp_path, fmt, suffix):
    state = _state_dict(seed=1)
    path = _save(state, tmp_path / f"weights{suffix}", fmt)
    cfg = ClipConfig(weights=path, model=TINY, min_similarity=-1.0)
    out = _score(cfg)
    similarity = out.metrics["clip_similarity"]
    assert math.isfinite(similarity) and -1.0 <= similarity <= 1.0
    assert out.verdict is Verdict.PASS and out.flags == [] and out.reasons == []
    loaded = clip.load(cfg).model.state_dict()  # the file's weights, not a random initialisation
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_the_same_picture_and_prompt_give_the_same_similarity(weights):
    cfg = ClipConfig(weights=weights, model=TINY, min_similarity=-1.0)
    first = _score(cfg).metrics["clip_similarity"]
    assert _score(cfg).metrics["clip_similarity"] == pytest.approx(first, abs=1e-6)
    other = _score(cfg, data=_png(colour=(10, 200, 10), size=(300, 500))).metrics["clip_similarity"]
    assert other != pytest.approx(first, abs=1e-6)


def test_below_the_minimum_the_image_is_degraded_with_a_reason(weights):
    out = _score(ClipConfig(weights=weights, model=TINY, min_similarity=1.0))
    assert out.verdict is Verdict.DEGRADED and out.flags == ["prompt_mismatch"]
    assert out.score == pytest.approx(clip.MISMATCH_SCORE)
    assert f"{out.metrics['clip_similarity']:.3f}" in out.reasons[0] and "prompt" in out.reasons[0]


def test_does_nothing_without_config_or_prompt(weights):
    for out in (_score(None), _score(ClipConfig(weights=weights, model=TINY), prompt=None)):
        assert "clip_similarity" not in out.metrics and out.verdict is Verdict.PASS and out.reasons == []
    assert clip._CACHE == {}  # nothing was even loaded


def test_the_model_is_loaded_once_for_all_threads(weights, monkeypatch):
    calls = []
    create = open_clip.create_model_and_transforms

    def counting(*args, **kwargs):
        calls.append(args)
        return create(*args, **kwargs)

    monkeypatch.setattr(open_clip, "create_model_and_transforms", counting)
    cfg = ClipConfig(weights=weights, model=TINY, min_similarity=-1.0)
    results = []
    threads = [threading.Thread(target=lambda: results.append(_score(cfg).metrics["clip_similarity"]))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(results) == 4
    assert max(results) - min(results) < 1e-5
    assert clip.load(cfg) is clip.load(ClipConfig(weights=weights, model=TINY, min_similarity=0.5))


def test_a_missing_weights_file_fails_fast_with_its_path(tiny_models, tmp_path):
    missing = tmp_path / "nowhere" / "open_clip_model.safetensors"
    with pytest.raises(clip.ClipUnavailable, match="does not exist") as raised:
        clip.check_clip(ClipConfig(weights=missing, model=TINY))
    assert str(missing) in str(raised.value)
    with pytest.raises(clip.ClipUnavailable, match="does not exist"):
        clip.check_clip(ClipConfig(weights=missing), load_model=False)  # the default ViT-B-32, not built
    out = _score(ClipConfig(weights=missing, model=TINY))  # while scoring: noted, nothing judged
    assert out.verdict is Verdict.PASS and "clip_similarity" not in out.metrics
    assert out.reasons == [f"CLIP prompt check skipped: {raised.value}"]


def test_unreadable_empty_or_odd_weights_fail_fast(tiny_models, tmp_path):
    (tmp_path / "empty.safetensors").write_bytes(b"")
    (tmp_path / "weights.npz").write_bytes(b"x")
    (tmp_path / "folder.pt").mkdir()
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    for name, message in [("empty.safetensors", "is empty"), ("weights.npz", "state dict file"),
                          ("folder.pt", "not a file"), ("garbage.pt", "cannot load CLIP weights")]:
        with pytest.raises(clip.ClipUnavailable, match=message) as raised:
            clip.check_clip(ClipConfig(weights=tmp_path / name, model=TINY))
        assert str(tmp_path / name) in str(raised.value)


def test_weights_of_another_architecture_are_refused(tiny_models, tmp_path):
    path = _save(_state_dict(TINY_OTHER), tmp_path / "wider.pt", "pt")
    with pytest.raises(clip.ClipUnavailable, match=f"do not fit CLIP model '{TINY}'"):
        clip.check_clip(ClipConfig(weights=path, model=TINY))


def test_unknown_or_downloading_models_are_refused(weights):
    for model, message in [("ViT-Q-99", "unknown CLIP model 'ViT-Q-99'"),
                           ("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "built-in architectures"),
                           ("ViT-B-16-SigLIP", "Hugging Face"), ("roberta-ViT-B-32", "Hugging Face")]:
        if model in ("ViT-B-16-SigLIP", "roberta-ViT-B-32") and model not in open_clip.list_models():
            continue
        with pytest.raises(clip.ClipUnavailable, match=message):
            clip.check_clip(ClipConfig(weights=weights, model=model))
    clip.check_clip(ClipConfig(weights=weights, model="ViT-B-32"), load_model=False)  # known, not built


def test_without_open_clip_the_message_says_how_to_install(weights, monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # makes "import open_clip" raise ImportError
    with pytest.raises(clip.ClipUnavailable, match=r"install the clip extra; choose a CPU torch build first"):
        clip.check_clip(ClipConfig(weights=weights, model=TINY))


def test_a_replaced_weights_file_is_loaded_again(weights):
    cfg = ClipConfig(weights=weights, model=TINY, min_similarity=-1.0)
    first = clip.load(cfg)
    _save(_state_dict(seed=7), weights, "pt")
    os.utime(weights, ns=(os.stat(weights).st_atime_ns, os.stat(weights).st_mtime_ns + 1_000_000_000))
    second = clip.load(cfg)
    assert second is not first and len(clip._CACHE) == 1  # the old model is not kept alive
    assert not torch.equal(first.model.state_dict()["text_projection"], second.model.state_dict()["text_projection"])
