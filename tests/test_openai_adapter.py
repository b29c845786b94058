"""The OpenAI adapter against the emulator over real loopback HTTP: every fault -> its outcome."""

from __future__ import annotations

import base64
import json
import socket
import time
from datetime import timedelta
from io import BytesIO

import pytest
from PIL import Image
from werkzeug.wrappers import Request, Response

from monitor.config import CanaryConfig, ConfigError, ServiceConfig, parse_config
from monitor.enums import Outcome, ProbeKind
from probes.base import ProbeContext, ProbeResult
from probes.providers.openai import OpenAIAdapter
from probes.registry import provider_issues
from tests.fixture_emulator import TEST_API_KEY
from tests.providers.helpers import probe, serve, with_


def run(service: ServiceConfig, canary: CanaryConfig | None, kind: ProbeKind = ProbeKind.CANARY) -> ProbeResult:
    return probe(OpenAIAdapter, service, canary, kind, score=False)


def test_clean_dalle3_b64(openai_service, canary):
    result = run(openai_service, canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert Image.open(BytesIO(result.image)).size == (1024, 1024)
    assert result.http_status == 200 and result.request_id.startswith("req_")
    assert result.model_version == "dall-e-3"
    assert result.revised_prompt and canary.prompt in result.revised_prompt
    assert result.latency_ms["generation"] > 0 and result.latency_ms["download"] is None
    assert result.latency_ms["submit"] is None and result.latency_ms["queue"] is None
    assert result.error_detail is None


def test_clean_url_mode_downloads_the_image(openai_service, canary):
    service = with_(openai_service, options={"response_format": "url"})
    result = run(service, canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert result.image.startswith(b"\x89PNG") and result.latency_ms["download"] > 0
    assert result.request_id.startswith("req_")  # the generation's id, not the download's


@pytest.mark.parametrize("model", ["gpt-image-1", "gpt-image-1-mini", "dall-e-2"])
def test_clean_other_models(openai_service, canary, model):
    result = run(with_(openai_service, model=model), canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert result.model_version == model and result.revised_prompt is None


def test_gpt_image_auto_size_and_jpeg(openai_service):
    service = with_(openai_service, model="gpt-image-1", options={"output_format": "jpeg", "quality": "low"})
    result = run(service, CanaryConfig(id="c", prompt="a lighthouse", size="auto"))
    assert result.outcome is Outcome.OK, result.error_detail
    assert result.image.startswith(b"\xff\xd8\xff")


@pytest.mark.parametrize(
    "model, size, expected",
    [("dall-e-3", "auto", None), ("gpt-image-1", "auto", "auto"), ("dall-e-2", "512x512", "512x512")],
)
def test_request_body(openai_service, model, size, expected):
    service = with_(openai_service, model=model, options={"style": "natural"} if model == "dall-e-3" else {})
    ctx = ProbeContext(service, CanaryConfig(id="c", prompt="p", size=size, seed=9), client=None, seed=9)  # type: ignore[arg-type]
    body = OpenAIAdapter(service).request_body(ctx)
    assert body.get("size") == expected
    assert "seed" not in body and body["n"] == 1 and body["prompt"] == "p"
    assert ("response_format" in body) == model.startswith("dall-e")
    if model == "dall-e-3":
        assert body["response_format"] == "b64_json" and body["style"] == "natural"


def test_headers_carry_key_org_project_and_service_headers(openai_service):
    service = with_(openai_service, options={"organization": "org-1", "project": "proj-1"}, headers={"X-Team": "imaging"})
    headers = OpenAIAdapter(service).headers()
    assert headers == {
        "Authorization": f"Bearer {TEST_API_KEY}",
        "OpenAI-Organization": "org-1",
        "OpenAI-Project": "proj-1",
        "X-Team": "imaging",
    }


def test_unknown_option_is_a_config_error():
    text = """
canaries: [{id: c, prompt: p}]
services:
  - {id: s, provider: openai, api_key: sk-x, canaries: [c], options: {qualty: hd}}
"""
    with pytest.raises(ConfigError, match=r"services\[0\]\.options\.qualty: unknown key"):
        parse_config(text, env={}, checks=[provider_issues])


FAULTS = [
    # (fault, params, outcome, text expected in error_detail)
    ("server_error", {}, Outcome.SERVER_ERROR, "HTTP 500"),
    ("rate_limited", {"retry_after": 7}, Outcome.RATE_LIMITED, "Retry-After: 7s"),
    ("quota_exhausted", {}, Outcome.AUTH_ERROR, "insufficient_quota"),
    ("invalid_key", {}, Outcome.AUTH_ERROR, "invalid_api_key"),
    ("content_policy", {}, Outcome.CONTENT_FILTERED, "content_policy_violation"),
    ("bad_request", {}, Outcome.CLIENT_ERROR, "HTTP 400"),
    ("malformed_json", {}, Outcome.BAD_OUTPUT, "malformed JSON"),
    ("truncated_image", {}, Outcome.BAD_OUTPUT, "truncated"),
    ("undecodable_image", {}, Outcome.BAD_OUTPUT, "not a PNG"),
    # decodable but wrong: the adapter hands these to scoring, which judges them
    ("blank_image", {}, Outcome.OK, None),
    ("wrong_size", {}, Outcome.OK, None),
]


@pytest.mark.parametrize("fault, params, outcome, text", FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_outcome(emulator, openai_service, canary, fault, params, outcome, text):
    emulator.faults.set("openai", fault, **params)
    result = run(openai_service, canary)
    assert result.outcome is outcome, result.error_detail
    if text is not None:
        assert text in result.error_detail
        assert result.http_status is not None and result.request_id.startswith("req_")
    assert TEST_API_KEY not in (result.error_detail or "")


def test_wrong_size_image_is_passed_on_for_scoring(emulator, openai_service, canary):
    emulator.faults.set("openai", "wrong_size")
    result = run(openai_service, canary)
    assert Image.open(BytesIO(result.image)).size == (512, 512)


def test_api_key_echoed_by_provider_is_redacted(emulator, openai_service, canary):
    emulator.faults.set("openai", "invalid_key")
    result = run(openai_service, canary)
    assert result.outcome is Outcome.AUTH_ERROR
    assert "Incorrect API key" in result.error_detail and "[REDACTED]" in result.error_detail
    assert TEST_API_KEY not in result.error_detail


def test_gpt_image_moderation_details_in_detail(emulator, openai_service, canary):
    emulator.faults.set("openai", "content_policy")
    result = run(with_(openai_service, model="gpt-image-1"), canary)
    assert result.outcome is Outcome.CONTENT_FILTERED
    assert "moderation_blocked" in result.error_detail and "moderation stage: input" in result.error_detail


def test_expired_url_is_bad_output(emulator, openai_service, canary):
    emulator.faults.set("openai", "expired_url")
    result = run(with_(openai_service, options={"response_format": "url"}), canary)
    assert result.outcome is Outcome.BAD_OUTPUT and "expired or missing" in result.error_detail


def test_fault_count_clears_itself(emulator, openai_service, canary):
    emulator.faults.set("openai", "server_error", count=1)
    assert run(openai_service, canary).outcome is Outcome.SERVER_ERROR
    assert run(openai_service, canary).outcome is Outcome.OK


def test_api_validation_error_is_client_error(openai_service):
    result = run(with_(openai_service, model="gpt-image-1"), CanaryConfig(id="c", prompt="p", size="1792x1024"))
    assert result.outcome is Outcome.CLIENT_ERROR and "invalid_value" in result.error_detail


def test_hang_times_out_at_the_deadline(emulator, openai_service, canary):
    emulator.faults.set("openai", "hang")
    service = with_(openai_service, timeout=timedelta(seconds=2))
    began = time.monotonic()
    result = run(service, canary)
    assert result.outcome is Outcome.TIMEOUT, result.error_detail
    assert time.monotonic() - began < 3


def test_slow_is_ok_and_timed(emulator, openai_service, canary):
    emulator.faults.set("openai", "slow", seconds=1)
    result = run(openai_service, canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert result.latency_ms["generation"] >= 1000


def test_connection_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    service = ServiceConfig(
        id="closed", provider="openai", base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x",
        canaries=["c"], timeout=timedelta(seconds=3),
    )
    result = run(service, CanaryConfig(id="c", prompt="p"))
    assert result.outcome is Outcome.CONNECTION_ERROR


def test_missing_api_key_is_probe_error(openai_service, canary):
    result = run(with_(openai_service, api_key=None), canary)
    assert result.outcome is Outcome.PROBE_ERROR and "api_key" in result.error_detail


def test_health_check_ok(openai_service):
    result = run(openai_service, None, ProbeKind.HEALTH)
    assert result.outcome is Outcome.OK and result.http_status == 200 and result.request_id.startswith("req_")
    assert result.canary is None and result.error_detail is None


@pytest.mark.parametrize(
    "fault, outcome",
    [("invalid_key", Outcome.AUTH_ERROR), ("server_error", Outcome.SERVER_ERROR), ("malformed_json", Outcome.BAD_OUTPUT)],
)
def test_health_check_faults(emulator, openai_service, fault, outcome):
    emulator.faults.set("openai", fault)
    result = run(openai_service, None, ProbeKind.HEALTH)
    assert result.outcome is outcome, result.error_detail
    assert TEST_API_KEY not in (result.error_detail or "")


def test_image_fault_is_not_used_up_by_health_check(emulator, openai_service, canary):
    emulator.faults.set("openai", "content_policy", count=1)
    assert run(openai_service, None, ProbeKind.HEALTH).outcome is Outcome.OK
    assert run(openai_service, canary).outcome is Outcome.CONTENT_FILTERED


# -- answers the emulator never gives: a scripted server, one answer per base path ------------------

ODD_ANSWERS = {
    "proxy-502": (502, "text/html", "<html>" + "bad gateway " * 10000 + "</html>"),
    "empty-error": (429, "application/json", json.dumps({"error": {}})),
    "not-json-error": (500, "text/plain", "upstream exploded"),
    "billing": (400, "application/json", json.dumps({"error": {"message": "Billing hard limit has been reached",
                                                               "type": "invalid_request_error", "code": "billing_hard_limit_reached"}})),
    "moderation-no-code": (400, "application/json", json.dumps({"error": {"message": "blocked", "type": "image_generation_user_error",
                                                                          "moderation_details": {"moderation_stage": "output", "categories": ["x"]}}})),
    "forbidden": (403, "application/json", json.dumps({"error": {"message": "Country not supported", "code": "unsupported_country_region_territory"}})),
    "no-data": (200, "application/json", json.dumps({"created": 1, "data": []})),
    "no-image": (200, "application/json", json.dumps({"created": 1, "data": [{"revised_prompt": "x"}]})),
    "bad-base64": (200, "application/json", json.dumps({"created": 1, "data": [{"b64_json": "!!!"}]})),
    "json-list": (200, "application/json", "[]"),
    "model-reported": (200, "application/json", None),
}


@Request.application
def odd_server(request: Request) -> Response:
    case = request.path.strip("/").split("/")[0]
    status, mimetype, body = ODD_ANSWERS[case]
    if body is None:  # a valid answer that names the model version
        png = Image.new("RGB", (8, 8))
        out = BytesIO()
        png.save(out, "PNG")
        body = json.dumps({"created": 1, "model": "dall-e-3-2025", "data": [{"b64_json": base64.b64encode(out.getvalue()).decode()}]})
    return Response(body, status=status, mimetype=mimetype, headers={"x-request-id": "req_odd"})


@pytest.fixture(scope="module")
def odd_url():
    yield from serve(odd_server)


@pytest.mark.parametrize(
    "case, outcome, text",
    [
        ("proxy-502", Outcome.SERVER_ERROR, "HTTP 502: <html>bad gateway"),
        ("empty-error", Outcome.RATE_LIMITED, "HTTP 429"),
        ("not-json-error", Outcome.SERVER_ERROR, "upstream exploded"),
        ("billing", Outcome.AUTH_ERROR, "Billing hard limit"),
        ("moderation-no-code", Outcome.CONTENT_FILTERED, "moderation stage: output; categories: x"),
        ("forbidden", Outcome.AUTH_ERROR, "Country not supported"),
        ("no-data", Outcome.BAD_OUTPUT, "no images"),
        ("no-image", Outcome.BAD_OUTPUT, "neither 'b64_json' nor 'url'"),
        ("bad-base64", Outcome.BAD_OUTPUT, "not valid base64"),
        ("json-list", Outcome.BAD_OUTPUT, "expected a JSON object"),
    ],
)
def test_odd_answers(openai_service, canary, odd_url, case, outcome, text):
    result = run(with_(openai_service, base_url=f"{odd_url}/{case}"), canary)
    assert result.outcome is outcome, result.error_detail
    assert text in result.error_detail and result.request_id == "req_odd"


def test_model_version_reported_by_the_provider_wins(openai_service, canary, odd_url):
    result = run(with_(openai_service, base_url=f"{odd_url}/model-reported"), canary)
    assert result.outcome is Outcome.OK and result.model_version == "dall-e-3-2025"


@pytest.mark.parametrize(
    "fault, reason",
    [("expired_signature", "answered HTTP 403 AuthenticationFailed: Server failed to authenticate the request."),
     ("expired_signature_s3", "answered HTTP 403 AccessDenied: Request has expired")],
)
def test_expired_signed_url_is_bad_output_not_client_error(emulator, openai_service, canary, fault, reason):
    """The signed blob URL OpenAI returned answers 403 with the store's XML error: the provider's output
    could not be fetched (bad_output), while a 4xx to our own request stays client_error."""
    emulator.faults.set("openai", fault)
    result = run(with_(openai_service, options={"response_format": "url"}), canary)
    assert result.outcome is Outcome.BAD_OUTPUT, result.error_detail
    assert reason in result.error_detail and "signed URL expired" in result.error_detail
    assert result.http_status == 403 and result.latency_ms["download"] is not None
    emulator.faults.set("openai", "bad_request")
    assert run(openai_service, canary).outcome is Outcome.CLIENT_ERROR


def test_signed_url_fault_leaves_base64_answers_alone(emulator, openai_service, canary):
    emulator.faults.set("openai", "expired_signature", count=1)
    assert run(openai_service, canary).outcome is Outcome.OK  # b64_json: no URL to expire, the fault waits
    assert emulator.faults.active("openai") is not None
