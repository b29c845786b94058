"""The runner joins the adapter's answer and scoring into the stored record and settles the final outcome."""

from __future__ import annotations

import io
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import numpy as np
from PIL import Image

from monitor.config import CanaryConfig, QualityConfig, ServiceConfig
from monitor.engine.runner import apply_scoring, resolve_seed
from monitor.enums import Outcome, ProbeKind
from monitor.store.record import ANSWER_FIELDS, LATENCY_PHASES, ResultRecord
from probes.base import PHASES, ProbeResult

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
    answer = result_with(image_bytes())
    result = apply_scoring(answer, SERVICE, CANARY)
    assert isinstance(result, ResultRecord) and result.thumbnail and result.kept_image is None
    assert result.outcome is Outcome.OK and result.quality_verdict == "pass"
    assert (result.image_width, result.image_height, result.image_format) == (64, 64, "PNG")
    assert result.hashes["phash"] and result.image_bytes > 0


def test_slow_when_total_latency_over_threshold():
    result = apply_scoring(result_with(image_bytes(), total_ms=2500), SERVICE, CANARY)
    assert result.outcome is Outcome.SLOW and "2s threshold" in result.error_detail


def test_blank_is_degraded_quality_and_wrong_size_bad_output():
    answer = result_with(image_bytes(blank=True))
    blank = apply_scoring(answer, SERVICE, CANARY)
    assert blank.outcome is Outcome.DEGRADED_QUALITY and "blank" in blank.quality_flags
    assert answer.outcome is Outcome.OK and answer.error_detail is None  # the provider's answer is left as it was
    wrong = apply_scoring(result_with(image_bytes(size=(32, 64))), SERVICE, CANARY)
    assert wrong.outcome is Outcome.BAD_OUTPUT and "32x64" in wrong.error_detail


def test_failed_runs_are_left_alone():
    answer = result_with(b"")
    answer.outcome, answer.error_detail, answer.http_status = Outcome.SERVER_ERROR, "HTTP 500: oops", 500
    result = apply_scoring(answer, SERVICE, CANARY)
    assert result.outcome is Outcome.SERVER_ERROR and result.quality_score is None and result.thumbnail is None
    assert (result.error_detail, result.http_status) == ("HTTP 500: oops", 500)


def test_failing_image_is_kept_when_configured():
    answer = result_with(image_bytes(blank=True))
    result = apply_scoring(answer, SERVICE, CANARY, quality=QualityConfig(keep_failing_images="7d"))
    assert result.outcome is Outcome.DEGRADED_QUALITY and result.kept_image == answer.image
    assert result.keep_until == answer.started_at + timedelta(days=7)


def test_record_joins_every_answer_field_and_prints_like_before():
    """Every field of the answer but what it hands to scoring is copied into the record; the JSON keys are the result record's."""
    answer_fields = {f.name for f in fields(ProbeResult)} - {"image", "size_check"}
    assert set(ANSWER_FIELDS) == answer_fields and LATENCY_PHASES == PHASES
    record = ResultRecord.join(result_with(b"x"))
    assert list(record.to_dict()) == [
        "service", "canary", "region", "kind", "started_at", "finished_at", "outcome", "latency_ms", "http_status",
        "request_id", "error_detail", "image_bytes", "image_format", "image_width", "image_height", "image_sha256",
        "hashes", "quality_score", "quality_verdict", "quality_flags", "quality_reasons", "cost", "model_version",
        "revised_prompt", "seed"]
    assert record.image is None and record.to_dict()["kind"] == "canary"


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
        answer = result_with(image_bytes(size=size))
        answer.size_check = check
        result = apply_scoring(answer, SERVICE, canary)
        assert result.outcome is outcome, (size, check, result.error_detail)
