"""The runner settles the final outcome from adapter result, scoring and latency threshold."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
from PIL import Image

from monitor.config import CanaryConfig, ServiceConfig
from monitor.engine.runner import apply_scoring, resolve_seed
from monitor.enums import Outcome, ProbeKind
from probes.base import ProbeResult

SERVICE = ServiceConfig(id="s", provider="openai", canaries=["c"], latency_threshold="2s")
CANARY = CanaryConfig(id="c", prompt="p", size="64x64")


def image_bytes(size=(64, 64), blank=False) -> bytes:
    """A smooth, detailed test picture (or a blank one) of ``size``."""
    width, height = size
    if blank:
        pixels = np.zeros((height, width, 3), "uint8")
    else:
        y, x = np.mgrid[0:height, 0:width] / max(width, height)
        channels = [np.sin(x * 9 + y * 4), np.cos(y * 11 - x * 3), np.sin((x + y) * 7)]
        pixels = np.clip(np.stack(channels, axis=-1) * 100 + 128, 0, 255).astype("uint8")
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def result_with(image: bytes, total_ms: float = 500.0) -> ProbeResult:
    result = ProbeResult(service="s", canary="c", region="r", kind=ProbeKind.CANARY, started_at=datetime.now(UTC),
                         outcome=Outcome.OK, image=image)
    result.latency_ms["total"] = total_ms
    return result


def test_good_image_is_ok_with_image_fields():
    result = result_with(image_bytes())
    apply_scoring(result, SERVICE, CANARY)
    assert result.outcome is Outcome.OK and result.quality_verdict == "pass"
    assert (result.image_width, result.image_height, result.image_format) == (64, 64, "PNG")
    assert result.hashes["phash"] and result.image_bytes > 0


def test_slow_when_total_latency_over_threshold():
    result = result_with(image_bytes(), total_ms=2500)
    apply_scoring(result, SERVICE, CANARY)
    assert result.outcome is Outcome.SLOW and "2s threshold" in result.error_detail


def test_blank_is_degraded_quality_and_wrong_size_bad_output():
    blank = result_with(image_bytes(blank=True))
    apply_scoring(blank, SERVICE, CANARY)
    assert blank.outcome is Outcome.DEGRADED_QUALITY and "blank" in blank.quality_flags
    wrong = result_with(image_bytes(size=(32, 64)))
    apply_scoring(wrong, SERVICE, CANARY)
    assert wrong.outcome is Outcome.BAD_OUTPUT and "32x64" in wrong.error_detail


def test_failed_runs_are_left_alone():
    result = result_with(b"")
    result.outcome = Outcome.SERVER_ERROR
    apply_scoring(result, SERVICE, CANARY)
    assert result.outcome is Outcome.SERVER_ERROR and result.quality_score is None


def test_random_seed_is_drawn_per_run_and_fixed_seed_kept():
    assert resolve_seed(CanaryConfig(id="a", prompt="p", seed=42)) == 42
    assert resolve_seed(CanaryConfig(id="a", prompt="p")) is None
    drawn = {resolve_seed(CanaryConfig(id="a", prompt="p", seed="random")) for _ in range(20)}
    assert len(drawn) > 15


def test_size_check_aspect_and_none():
    from probes.base import SizeCheck

    canary = CanaryConfig(id="c", prompt="p", size="128x64")
    for size, check, outcome in [((256, 128), SizeCheck.ASPECT, Outcome.OK), ((256, 256), SizeCheck.ASPECT, Outcome.BAD_OUTPUT),
                                 ((300, 300), SizeCheck.NONE, Outcome.OK), ((256, 128), SizeCheck.EXACT, Outcome.BAD_OUTPUT)]:
        result = result_with(image_bytes(size=size))
        result.size_check = check
        apply_scoring(result, SERVICE, canary)
        assert result.outcome is outcome, (size, check, result.error_detail)
