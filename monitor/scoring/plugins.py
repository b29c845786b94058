"""Fail fast on optional quality checks the config asks for but this machine cannot run.

Called by ``check-config``, ``run``, ``probe`` and ``baseline``: a missing OCR package or CLIP
weights file is reported before any probe, not discovered as a skipped check in every result.
"""

from __future__ import annotations

from monitor.config import Config


def plugin_problems(config: Config, *, load_models: bool = False) -> list[str]:
    """One line per problem, naming the config key; empty when every requested check can run."""
    problems: list[str] = []
    texts = [f"canaries[{i}].expect_text" for i, c in enumerate(config.canaries) if c.expect_text]
    if texts:
        from monitor.scoring.ocr import ocr_available

        if not ocr_available():
            problems.append(f"{texts[0]}: checking text needs the OCR extra: pip install 'genstatus[ocr]'")
    clips = [("quality.clip", config.quality.clip)]
    clips += [(f"services[{i}].quality.clip", s.quality.clip) for i, s in enumerate(config.services) if s.quality]
    seen = set()
    for where, clip in clips:
        if clip is None or (clip.model, str(clip.weights)) in seen:
            continue
        seen.add((clip.model, str(clip.weights)))
        from monitor.scoring.clip import ClipUnavailable, check_clip

        try:
            check_clip(clip, load_model=load_models)
        except ClipUnavailable as exc:
            problems.append(f"{where}: {exc}")
    return problems
