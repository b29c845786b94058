"""The Gemini adapter (Gemini image models and Imagen) against its emulator over loopback HTTP, and google-genai."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from io import BytesIO

import pytest
from PIL import Image
from werkzeug.wrappers import Request, Response

from monitor.config import CanaryConfig, ServiceConfig
from monitor.enums import Outcome, ProbeKind
from probes.base import ProbeContext, SizeCheck
from probes.emulator.gemini import FAULT_OUTCOMES, SERVICE_DEFAULTS
from probes.http import make_client
from probes.providers.gemini import GeminiAdapter
from tests.providers.helpers import run_with_runner, serve, with_

API_KEY = "AIzaSyEmulatorTestKey0123456789abcdef"
IMAGEN = "imagen-4.0-generate-001"


@pytest.fixture
def service(emulator) -> ServiceConfig:
    return ServiceConfig(
        id="gemini-test", provider="gemini", base_url=emulator.base_url("gemini", service="gemini-test"), api_key=API_KEY,
        canaries=["still-life"], timeout=timedelta(seconds=5), allow_private_network=True, **SERVICE_DEFAULTS,
    )


run = run_with_runner


# -- clean runs ----------------------------------------------------------------------------------


def test_clean_gemini_run(service, canary):
    result = run(service, canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert (result.image_width, result.image_height) == (1024, 1024)
    assert result.model_version == "gemini-2.5-flash-image" and result.http_status == 200
    assert result.request_id and result.seed == 1234
    assert result.latency_ms["generation"] > 0 and result.latency_ms["download"] is None


def test_same_seed_same_image(service, canary):
    assert run(service, canary).image_sha256 == run(service, canary).image_sha256


def test_clean_imagen_run_has_no_seed(service, canary):
    result = run(with_(service, model=IMAGEN), canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert result.model_version == IMAGEN and result.seed is None


@pytest.mark.parametrize(
    "model, size, ratio, check, pixels",
    [
        ("gemini-2.5-flash-image", "1920x1080", "16:9", SizeCheck.ASPECT, (1344, 768)),
        ("gemini-2.5-flash-image", "1024x768", "4:3", SizeCheck.ASPECT, (1184, 864)),
        ("gemini-2.5-flash-image", "1000x500", "16:9", SizeCheck.NONE, (1344, 768)),  # no 2:1 on offer
        (IMAGEN, "768x1024", "3:4", SizeCheck.NONE, (896, 1280)),  # Imagen's 3:4 is really 0.7
        (IMAGEN, "512x512", "1:1", SizeCheck.ASPECT, (1024, 1024)),
    ],
)
def test_aspect_ratio_and_size_check(service, model, size, ratio, check, pixels):
    canary = CanaryConfig(id="c", prompt="a lighthouse", size=size, seed=3)
    service = with_(service, model=model)
    ctx = ProbeContext(service, canary, client=None, seed=3)  # type: ignore[arg-type]
    assert GeminiAdapter(service).aspect(ctx) == (ratio, check)
    result = run(service, canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert (result.image_width, result.image_height) == pixels


def test_request_bodies(service, canary):
    ctx = ProbeContext(service, canary, client=None, seed=7)  # type: ignore[arg-type]
    body = GeminiAdapter(with_(service, options={"response_modalities": ["IMAGE"], "image_size": "2K"})).request_body(ctx)
    assert body["contents"][0]["parts"] == [{"text": canary.prompt}]
    assert body["generationConfig"] == {"responseModalities": ["IMAGE"], "seed": 7,
                                        "imageConfig": {"aspectRatio": "1:1", "imageSize": "2K"}}
    imagen = GeminiAdapter(with_(service, model=IMAGEN)).request_body(ctx)
    assert imagen == {"instances": [{"prompt": canary.prompt}],
                      "parameters": {"sampleCount": 1, "includeRaiReason": True, "aspectRatio": "1:1"}}


def test_missing_api_key_is_probe_error(service, canary):
    result = run(with_(service, api_key=None), canary)
    assert result.outcome is Outcome.PROBE_ERROR and "api_key" in result.error_detail


def test_unknown_model_is_client_error(service, canary):
    result = run(with_(service, model="gemini-9-ultra"), canary)
    assert result.outcome is Outcome.CLIENT_ERROR and "NOT_FOUND" in result.error_detail


# -- faults ----------------------------------------------------------------------------------------

TIMED = {fault for fault, outcome in FAULT_OUTCOMES.items() if outcome == "timeout"}


@pytest.mark.parametrize("model", ["gemini-2.5-flash-image", IMAGEN])
@pytest.mark.parametrize("fault", sorted(set(FAULT_OUTCOMES) - TIMED))
def test_fault_outcome(emulator, service, canary, fault, model):
    emulator.faults.set("gemini", fault, service="gemini-test", **({"seconds": 0.2} if fault == "slow" else {}))
    result = run(with_(service, model=model), canary)
    assert result.outcome == FAULT_OUTCOMES[fault], result.error_detail
    assert API_KEY not in (result.error_detail or "")


@pytest.mark.parametrize(
    "fault, text",
    [
        ("rate_limited", "RESOURCE_EXHAUSTED: You exceeded your current quota"),
        ("quota_exhausted", "prepayment credits are depleted"),
        ("invalid_key", "reason: API_KEY_INVALID"),
        ("server_error", "HTTP 500 INTERNAL"),
        ("content_policy", "promptFeedback.blockReason PROHIBITED_CONTENT"),
        ("output_safety", "finishReason IMAGE_SAFETY"),
    ],
)
def test_fault_details(emulator, service, canary, fault, text):
    emulator.faults.set("gemini", fault, service="gemini-test", **({"retry_after": 9} if fault == "rate_limited" else {}))
    result = run(service, canary)
    assert text in result.error_detail
    if fault == "rate_limited":
        assert "Retry-After: 9s" in result.error_detail


def test_imagen_blocks_say_why(emulator, service, canary):
    emulator.faults.set("gemini", "output_safety", service="gemini-test")
    result = run(with_(service, model=IMAGEN), canary)
    assert result.outcome is Outcome.CONTENT_FILTERED and "usage guidelines" in result.error_detail
    emulator.faults.set("gemini", "content_policy", service="gemini-test")
    result = run(with_(service, model=IMAGEN), canary)
    assert result.outcome is Outcome.CONTENT_FILTERED and "Responsible AI" in result.error_detail


def test_echoed_key_is_redacted(emulator, service, canary):
    emulator.faults.set("gemini", "invalid_key", service="gemini-test")
    result = run(service, canary)
    assert result.outcome is Outcome.AUTH_ERROR and "[REDACTED]" in result.error_detail
    assert API_KEY not in result.error_detail


@pytest.mark.parametrize("model", ["gemini-2.5-flash-image", IMAGEN])
def test_hang_times_out_at_the_deadline(emulator, service, canary, model):
    emulator.faults.set("gemini", "hang", service="gemini-test")
    began = time.monotonic()
    result = run(with_(service, model=model, timeout=timedelta(seconds=2)), canary)
    assert result.outcome is Outcome.TIMEOUT, result.error_detail
    assert time.monotonic() - began < 3


@pytest.mark.parametrize("model", ["gemini-2.5-flash-image", IMAGEN])
def test_health_check(emulator, service, model):
    assert run(with_(service, model=model), None, ProbeKind.HEALTH).outcome is Outcome.OK
    emulator.faults.set("gemini", "server_error", service="gemini-test")
    failed = run(with_(service, model=model), None, ProbeKind.HEALTH)
    assert failed.outcome is Outcome.SERVER_ERROR and failed.http_status == 500


def test_health_check_unknown_model(service):
    result = run(with_(service, model="gemini-0-nothing"), None, ProbeKind.HEALTH)
    assert result.outcome is Outcome.CLIENT_ERROR and "is not found" in result.error_detail


# -- answers the emulator never gives --------------------------------------------------------------

PNG = BytesIO()
Image.new("RGB", (64, 64), (200, 30, 30)).save(PNG, "PNG")
PNG_B64 = base64.b64encode(PNG.getvalue()).decode()

ODD = {
    "snake-case": (200, {"candidates": [{"content": {"parts": [{"inline_data": {"mime_type": "image/png", "data": PNG_B64}}]}}],
                         "modelVersion": "gemini-2.5-flash-image-0925"}),
    "thought-first": (200, {"candidates": [{"content": {"parts": [
        {"thought": True, "inlineData": {"mimeType": "image/png", "data": "!!"}},
        {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}]}, "finishReason": "STOP"}]}),
    "text-only": (200, {"candidates": [{"content": {"parts": [{"text": "I can't draw that."}]}, "finishReason": "STOP"}]}),
    "no-image-finish": (200, {"candidates": [{"finishReason": "NO_IMAGE"}]}),
    "empty-object": (200, {}),
    "imagen-empty": (200, {"predictions": []}),
    "billing-zero-quota": (429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded",
                                           "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                                                        "violations": [{"quotaId": "x-FreeTier", "quotaValue": "0"}]}]}}),
    "listed-error": (503, [{"error": {"code": 503, "status": "UNAVAILABLE", "message": "The model is overloaded."}}]),
    "html-502": (502, None),
}


@Request.application
def odd_server(request: Request) -> Response:
    status, body = ODD[request.path.strip("/").split("/")[0]]
    if body is None:
        return Response("<html>bad gateway</html>", status=status, mimetype="text/html")
    return Response(json.dumps(body), status=status, mimetype="application/json")


@pytest.fixture(scope="module")
def odd_url():
    yield from serve(odd_server)


@pytest.mark.parametrize(
    "case, model, outcome, text",
    [
        ("snake-case", "gemini-2.5-flash-image", Outcome.OK, None),
        ("thought-first", "gemini-3-pro-image-preview", Outcome.OK, None),
        ("text-only", "gemini-2.5-flash-image", Outcome.CONTENT_FILTERED, "the model said: \"I can't draw that.\""),
        ("no-image-finish", "gemini-2.5-flash-image", Outcome.CONTENT_FILTERED, "finishReason NO_IMAGE"),
        ("empty-object", "gemini-2.5-flash-image", Outcome.BAD_OUTPUT, "neither 'candidates'"),
        ("imagen-empty", IMAGEN, Outcome.CONTENT_FILTERED, "empty predictions"),
        ("billing-zero-quota", "gemini-2.5-flash-image", Outcome.AUTH_ERROR, "Quota exceeded"),
        ("listed-error", "gemini-2.5-flash-image", Outcome.SERVER_ERROR, "UNAVAILABLE: The model is overloaded"),
        ("html-502", IMAGEN, Outcome.SERVER_ERROR, "HTTP 502: <html>"),
    ],
)
def test_odd_answers(service, canary, odd_url, case, model, outcome, text):
    with make_client(service) as client:
        odd = with_(service, base_url=f"{odd_url}/{case}", model=model)
        result = GeminiAdapter(odd).probe(ProbeContext(odd, canary, client, seed=1))
    assert result.outcome is outcome, result.error_detail
    if text:
        assert text in result.error_detail
    if case == "snake-case":
        assert result.model_version == "gemini-2.5-flash-image-0925"


# -- the official SDK --------------------------------------------------------------------------------


@pytest.fixture
def genai(emulator):
    genai = pytest.importorskip("google.genai")
    return genai, f"{emulator.url}/gemini"


@pytest.mark.sdk
def test_sdk_generate_content_image(genai):
    genai, base = genai
    from google.genai import types

    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=base, api_version="v1beta"))
    response = client.models.generate_content(
        model="gemini-2.5-flash-image", contents="a red apple",
        config=types.GenerateContentConfig(response_modalities=["IMAGE"], image_config=types.ImageConfig(aspect_ratio="16:9")),
    )
    parts = [part for part in response.candidates[0].content.parts if part.inline_data]
    assert len(parts) == 1 and parts[0].inline_data.mime_type == "image/png"
    assert Image.open(BytesIO(parts[0].inline_data.data)).size == (1344, 768)
    assert response.model_version == "gemini-2.5-flash-image"


@pytest.mark.sdk
@pytest.mark.filterwarnings("ignore:The generate_images method is deprecated")
def test_sdk_generate_images_imagen(genai):
    """google-genai 3.x sends Imagen only in its Vertex form (``publishers/google/models/...:predict``)."""
    genai, base = genai
    from google.genai import types

    client = genai.Client(vertexai=True, api_key=API_KEY, http_options=types.HttpOptions(base_url=base, api_version="v1beta"))
    response = client.models.generate_images(
        model=IMAGEN, prompt="a red apple", config=types.GenerateImagesConfig(number_of_images=1, aspect_ratio="16:9"),
    )
    image = response.generated_images[0].image
    assert image.mime_type == "image/png" and Image.open(BytesIO(image.image_bytes)).size == (1408, 768)


@pytest.mark.sdk
@pytest.mark.parametrize("fault, code, status", [("rate_limited", 429, "RESOURCE_EXHAUSTED"),
                                                 ("invalid_key", 400, "INVALID_ARGUMENT")])
def test_sdk_errors(genai, emulator, fault, code, status):
    genai, base = genai
    from google.genai import errors, types

    emulator.faults.set("gemini", fault)
    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(
        base_url=base, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)))
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gemini-2.5-flash-image", contents="a red apple")
    assert (caught.value.code, caught.value.status) == (code, status)


@pytest.mark.sdk
def test_sdk_blocked_prompt(genai, emulator):
    genai, base = genai
    from google.genai import types

    emulator.faults.set("gemini", "content_policy")
    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=base, api_version="v1beta"))
    response = client.models.generate_content(
        model="gemini-2.5-flash-image", contents="a red apple",
        config=types.GenerateContentConfig(response_modalities=["IMAGE"]),
    )
    assert not response.candidates and response.prompt_feedback.block_reason == "PROHIBITED_CONTENT"
