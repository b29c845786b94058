"""Optional stage: does the picture show what the canary prompt asked for?  CLIP, from a local file.

A CLIP model embeds the picture and the prompt in one space; the cosine similarity of the two
embeddings says how well they agree.  For OpenAI's ViT-B-32 a picture of what was asked for
measures about 0.25..0.35 and an unrelated one about 0.1..0.2, hence the default cut-off of 0.2
(``quality.clip.min_similarity``); other models and weights have other scales, so the cut-off is
the operator's.  Below it the image is degraded (``prompt_mismatch``), not failed: CLIP is a
statistical judge, and a badly drawn but on-topic picture can score low.

The plug-in is optional (``pip install 'genstatus[clip]'``, after choosing a torch build: see
README) and fully offline:

* the architecture is one of open_clip's built-in configs (``open_clip.list_models()``), created
  with ``pretrained=None``; the weights come only from ``quality.clip.weights``, a state dict as
  open_clip distributes them (``.safetensors``, ``.bin``, ``.pt``/``.pth``, read with
  ``weights_only=True``, also inside a training checkpoint's ``state_dict``);
* the tokenizer is open_clip's bundled CLIP BPE vocabulary, so models whose text tower needs a
  Hugging Face model or tokenizer (SigLIP, RoBERTa, mT5, NLLB, CLIPA, ...) are refused rather
  than fetched;
* nothing sets ``HF_HUB_OFFLINE`` (that would change other code in the process): with no
  pretrained tag and no hub tokenizer, open_clip has nothing to download.

``check_clip(cfg)`` fails fast with ``ClipUnavailable`` (not installed, bad file, unknown or
unsupported model); call it where the configuration is loaded.  The model is loaded once per
(model, weights file) and shared by all threads; the prompt's embedding is cached, as canary
prompts repeat.  Inference runs on the CPU, about 0.1..0.3 s per picture for ViT-B-32.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.scoring.types import Assessment, ScoringInput

log = logging.getLogger(__name__)

MISMATCH_SCORE = 0.3  # the score of a picture that ignores its prompt (like a placeholder card)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
CLIP_VOCAB_SIZE = 49408  # open_clip's bundled BPE vocabulary; other text towers need a hub tokenizer
TEXT_CACHE_SIZE = 256

INSTALL_HINT = (
    "install the clip extra; choose a CPU torch build first: "
    "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu, "
    "or on a GPU machine the CUDA build of your choice from https://pytorch.org, "
    "then pip install 'genstatus[clip]'"
)


class ClipUnavailable(RuntimeError):
    """The CLIP check cannot run: the message says why and what to do."""


def _backend() -> tuple[Any, Any]:
    """``(torch, open_clip)``, or ClipUnavailable with the install hint."""
    try:
        import open_clip
        import torch
    except ImportError as exc:
        raise ClipUnavailable(f"the CLIP check needs torch and open_clip, which are not importable ({exc}): "
                              f"{INSTALL_HINT}") from exc
    except Exception as exc:  # e.g. a torchvision built for another torch fails with RuntimeError
        raise ClipUnavailable(f"open_clip cannot be imported ({type(exc).__name__}: {exc}); torch and torchvision "
                              f"must be builds of the same release from the same index: {INSTALL_HINT}") from exc
    return torch, open_clip


def _check_model_name(open_clip: Any, name: str) -> dict:
    """The built-in config of ``name``; ClipUnavailable when it is unknown or would need a download."""
    if ":" in name:
        raise ClipUnavailable(f"CLIP model {name!r}: only open_clip's built-in architectures are supported "
                              "(e.g. ViT-B-32), with the weights given as a local file")
    config = open_clip.get_model_config(name) if name in open_clip.list_models() else None
    if not config:
        known = ", ".join(m for m in ("ViT-B-32", "ViT-B-16", "ViT-L-14", "RN50") if m in open_clip.list_models())
        raise ClipUnavailable(f"unknown CLIP model {name!r}: open_clip has no such architecture "
                              f"(e.g. {known}; open_clip.list_models() lists them all)")
    text = config.get("text_cfg", {})
    if any(key.startswith("hf_") for key in text) or text.get("vocab_size", CLIP_VOCAB_SIZE) != CLIP_VOCAB_SIZE:
        raise ClipUnavailable(f"CLIP model {name!r} needs a Hugging Face text model or tokenizer, which would be "
                              "downloaded: choose a model with the standard CLIP text tower (e.g. ViT-B-32)")
    return config


def _check_weights(path: Path) -> Path:
    path = Path(path).expanduser()
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ClipUnavailable(f"CLIP weights {path}: expected a state dict file ({', '.join(WEIGHT_SUFFIXES)})")
    if not path.exists():
        raise ClipUnavailable(f"CLIP weights file {path} does not exist (it is never downloaded: "
                              "put the model's weights there, e.g. open_clip_model.safetensors)")
    if not path.is_file():
        raise ClipUnavailable(f"CLIP weights {path} is not a file")
    try:
        with path.open("rb") as handle:
            if not handle.read(1):
                raise ClipUnavailable(f"CLIP weights file {path} is empty")
    except OSError as exc:
        raise ClipUnavailable(f"CLIP weights file {path} is not readable ({exc.strerror or exc})") from exc
    return path


@dataclass
class _Loaded:
    """A model ready to embed, shared by every thread (inference only reads it)."""

    name: str
    model: Any
    preprocess: Any
    tokenizer: Any
    torch: Any
    image_side: int
    _texts: OrderedDict = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def text_embedding(self, prompt: str) -> Any:
        with self._lock:
            cached = self._texts.get(prompt)
            if cached is not None:
                self._texts.move_to_end(prompt)
                return cached
        with self.torch.inference_mode():
            emb = self.model.encode_text(self.tokenizer([prompt]))
            emb = self.torch.nn.functional.normalize(emb.float(), dim=-1)[0]
        with self._lock:
            self._texts[prompt] = emb
            while len(self._texts) > TEXT_CACHE_SIZE:
                self._texts.popitem(last=False)
        return emb

    def image_embedding(self, image) -> Any:
        if image.mode != "RGB":
            image = (image.convert("RGBA") if image.mode in ("P", "PA", "LA") else image).convert("RGB")
        factor = min(image.width, image.height) // (2 * self.image_side)
        if factor > 1:  # an integer box reduce first: resizing 8k pictures with bicubic is slow
            image = image.reduce(factor)
        with self.torch.inference_mode():
            emb = self.model.encode_image(self.preprocess(image).unsqueeze(0))
            return self.torch.nn.functional.normalize(emb.float(), dim=-1)[0]

    def similarity(self, image, prompt: str) -> float:
        return float((self.image_embedding(image) * self.text_embedding(prompt)).sum())


_CACHE: dict[tuple, _Loaded | ClipUnavailable] = {}
_CACHE_LOCK = threading.Lock()


def _key(name: str, path: Path) -> tuple:
    try:
        stat = path.stat()
        return name, str(path.resolve()), stat.st_mtime_ns, stat.st_size  # a replaced file is loaded again
    except OSError:
        return name, str(path), None, None


class _QuietRandomInit(logging.Filter):
    """open_clip logs 'Model initialized randomly' for pretrained=None; the weights follow at once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


def _build(name: str, path: Path) -> _Loaded:
    torch, open_clip = _backend()
    config = _check_model_name(open_clip, name)
    path = _check_weights(path)
    quiet = _QuietRandomInit()
    root = logging.getLogger()
    root.addFilter(quiet)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None, device="cpu")
    except Exception as exc:  # e.g. a timm backbone without timm installed
        raise ClipUnavailable(f"cannot build CLIP model {name!r} ({type(exc).__name__}: {exc})") from exc
    finally:
        root.removeFilter(quiet)
    try:
        open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
    except OSError as exc:
        raise ClipUnavailable(f"cannot read CLIP weights {path} ({exc})") from exc
    except Exception as exc:  # torch reports a wrong file as RuntimeError, UnpicklingError, ...
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Error(s) in loading state_dict" in str(exc) or "size mismatch" in str(exc):
            raise ClipUnavailable(f"the weights in {path} do not fit CLIP model {name!r} ({detail[:300]}): "
                                  "set quality.clip.model to the architecture they were trained with") from exc
        raise ClipUnavailable(f"cannot load CLIP weights {path} as a state dict ({type(exc).__name__}: "
                              f"{detail[:300]}); OpenAI's TorchScript .pt files are not supported, use the "
                              "open_clip .safetensors/.bin release of the weights") from exc
    model.eval()
    model.requires_grad_(False)
    text = config.get("text_cfg", {})
    tokenizer = open_clip.SimpleTokenizer(context_length=text.get("context_length", 77),
                                          **text.get("tokenizer_kwargs", {}))
    size = config.get("vision_cfg", {}).get("image_size", 224)
    side = max(size) if isinstance(size, (list, tuple)) else int(size)
    log.info("CLIP model %s loaded from %s", name, path)
    return _Loaded(name=name, model=model, preprocess=preprocess, tokenizer=tokenizer, torch=torch, image_side=side)


def load(cfg) -> _Loaded:
    """The model for ``cfg`` (a ``ClipConfig``), loaded once per (model, weights file) and cached.

    A failure is cached too (until the file changes), so a broken configuration costs one attempt.
    """
    key = _key(cfg.model, Path(cfg.weights).expanduser())
    with _CACHE_LOCK:  # one load at a time: concurrent callers wait for it instead of loading again
        found = _CACHE.get(key)
        if found is None:
            try:
                found = _build(cfg.model, Path(cfg.weights).expanduser())
            except ClipUnavailable as exc:
                found = exc
            for stale in [k for k in _CACHE if k[:2] == key[:2]]:  # the same file before it was replaced
                del _CACHE[stale]
            _CACHE[key] = found
    if isinstance(found, ClipUnavailable):
        raise ClipUnavailable(str(found))  # a fresh exception: re-raising one instance would grow its traceback
    return found


def check_clip(cfg, *, load_model: bool = True) -> None:
    """Fail fast: ClipUnavailable when the CLIP check cannot run with ``cfg`` (a ``ClipConfig``).

    Checks that torch and open_clip import, that the model is a supported built-in architecture
    and that the weights file is there and readable; with ``load_model`` (the default) it also
    loads the weights into the model (cached, so the first picture does not pay for it again).
    """
    if load_model:
        load(cfg)
        return
    _, open_clip = _backend()
    _check_model_name(open_clip, cfg.model)
    _check_weights(Path(cfg.weights))


def prompt_agreement(given: ScoringInput, out: Assessment) -> None:
    cfg = given.quality.clip if given.quality is not None else None
    if cfg is None or not given.prompt or out.image is None:
        return
    try:
        similarity = load(cfg).similarity(out.image, given.prompt)
    except ClipUnavailable as exc:  # a configuration problem, not the service's: say so, judge nothing
        out.reasons.append(f"CLIP prompt check skipped: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - a picture the model cannot take must not break scoring
        out.reasons.append(f"CLIP prompt check skipped: {type(exc).__name__}: {exc}")
        return
    if not math.isfinite(similarity):
        out.reasons.append("CLIP prompt check skipped: the similarity is not a number")
        return
    out.metrics["clip_similarity"] = similarity
    if similarity < cfg.min_similarity:
        out.degrade("prompt_mismatch", f"the image does not seem to show what the prompt asks for: CLIP "
                                       f"similarity {similarity:.3f} is below {cfg.min_similarity:.2f} "
                                       f"({cfg.model})", MISMATCH_SCORE)
