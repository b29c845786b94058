"""The Stability adapter against its emulator over loopback HTTP: v2beta and v1, every fault -> its outcome."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import httpx
import pytest
from werkzeug.wrappers import Request, Response

from monitor.config import CanaryConfig, ServiceConfig
from monitor.enums import Outcome, ProbeKind
from monitor.store.record import ResultRecord
from probes.base import ProbeContext, SizeCheck
from probes.emulator.images import render_png
from probes.emulator.stability import FAULT_OUTCOMES, SERVICE_DEFAULTS
from probes.providers.stability import StabilityAdapter, nearest_aspect_ratio
from tests.providers.helpers import probe, serve

API_KEY = "sk-stability-test-0123456789"


@pytest.fixture
def service(emulator) -> ServiceConfig:
    return ServiceConfig(
        id="stability-test", provider="stability", base_url=emulator.base_url("stability"), api_key=API_KEY,
        canaries=["still-life"], timeout=timedelta(seconds=5), allow_private_network=True, **SERVICE_DEFAULTS,
    )


def v1(service: ServiceConfig, **options) -> ServiceConfig:
    return service.model_copy(update={"model": "stable-diffusion-xl-1024-v1-0", "options": {"api": "v1", **options}})


def run(service: ServiceConfig, canary: CanaryConfig | None, kind: ProbeKind = ProbeKind.CANARY, seed: int | None = 1234) -> ResultRecord:
    return probe(StabilityAdapter, service, canary, kind, seed)


def size_of(result: ResultRecord) -> tuple[int, int]:
    return result.image_width, result.image_height


# -- clean runs -------------------------------------------------------------------------------


def test_clean_v2beta_core_raw_image(service, canary):
    result = run(service, canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert size_of(result) == (1024, 1024) and result.image_format == "PNG"
    assert result.http_status == 200 and len(result.request_id) == 32
    assert result.model_version == "core" and result.seed == 1234
    assert result.latency_ms["generation"] > 0 and result.latency_ms["total"] >= result.latency_ms["generation"]
    assert result.latency_ms["submit"] is result.latency_ms["queue"] is result.latency_ms["download"] is None


def test_same_seed_same_image_and_json_mode_agrees(service, canary):
    raw, again = run(service, canary), run(service, canary)
    as_json = run(service.model_copy(update={"options": {"api": "v2beta", "accept": "json"}}), canary)
    assert as_json.outcome is Outcome.OK, as_json.error_detail
    assert raw.image_sha256 == again.image_sha256 == as_json.image_sha256 and as_json.seed == 1234


def test_sd3_model_and_jpeg(service, canary):
    service = service.model_copy(update={"model": "sd3", "options": {"sd3_model": "sd3.5-medium", "output_format": "jpeg"}})
    result = run(service, canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert result.model_version == "sd3/sd3.5-medium" and result.image_format == "JPEG"


@pytest.mark.parametrize("accept", ["json", "image"])
def test_clean_v1(service, canary, accept):
    result = run(v1(service, accept=accept, steps=30), CanaryConfig(id="c", prompt="a lighthouse", size="1152x896", seed=7), seed=7)
    assert result.outcome is Outcome.OK, result.error_detail
    assert size_of(result) == (1152, 896) and result.model_version == "stable-diffusion-xl-1024-v1-0"
    assert result.seed == 7 and len(result.request_id) == 32


def test_seed_zero_is_never_sent_as_a_fixed_seed(service, canary):
    result = run(service, canary, seed=0)
    assert result.outcome is Outcome.OK and result.seed not in (None, 0)  # the provider drew one and said which


def test_v2beta_sends_multipart_without_files(service):
    canary = CanaryConfig(id="c", prompt="p", size="1920x1080", negative_prompt="blur")
    ctx = ProbeContext(service, canary, client=None, seed=5)  # type: ignore[arg-type]
    check, request = StabilityAdapter(service)._v2beta_request(ctx)
    assert check is SizeCheck.ASPECT and request.url.endswith("/v2beta/stable-image/generate/core")
    assert request.json is None and request.headers["Accept"] == "image/*"
    encoded = httpx.Request(request.method, request.url, files=request.files)
    assert encoded.headers["content-type"].startswith("multipart/form-data")
    assert {name: value for name, (_, value) in request.files.items()} == {
        "prompt": "p", "output_format": "png", "aspect_ratio": "16:9", "negative_prompt": "blur", "seed": "5"}


# -- sizes: v2beta takes an aspect ratio and picks its own resolution -------------------------


@pytest.mark.parametrize(
    "size, ratio, exact",
    [((1024, 1024), "1:1", True), ((1792, 1024), "16:9", True), ((1920, 1080), "16:9", True), ((832, 1216), "2:3", True),
     ((3000, 1000), "21:9", False), ((1024, 768), "5:4", False), ((640, 1536), "9:21", True)],
)
def test_nearest_aspect_ratio(size, ratio, exact):
    assert nearest_aspect_ratio(*size) == (ratio, exact)


@pytest.mark.parametrize("size, returned", [("1792x1024", (1344, 768)), ("1024x768", (1088, 896))])
def test_v2beta_provider_resolution_passes_the_size_check(service, size, returned):
    # 16:9 is checked by aspect ratio only; 4:3 is not a Stability ratio (sent as 5:4), so nothing is checked
    result = run(service, CanaryConfig(id="c", prompt="a lighthouse", size=size))
    assert result.outcome is Outcome.OK, result.error_detail
    assert size_of(result) == returned


def test_v1_size_not_a_multiple_of_64_is_a_config_problem(service):
    result = run(v1(service), CanaryConfig(id="c", prompt="p", size="1000x1000"))
    assert result.outcome is Outcome.PROBE_ERROR and "multiples of 64" in result.error_detail


# -- faults -----------------------------------------------------------------------------------

DETAILS = {
    "server_error": "HTTP 500 internal_error",
    "rate_limited": "Retry-After: 7s",
    "quota_exhausted": "HTTP 402 payment_required",
    "invalid_key": "HTTP 401 unauthorized",
    "content_policy": "HTTP 403 content_moderation",
    "output_safety": "CONTENT_FILTERED",
    "malformed_json": "malformed JSON",
    "truncated_image": "truncated",
    "undecodable_image": "not a PNG",
    "bad_request": "HTTP 400 bad_request",
    "wrong_size": "aspect ratio",
}
TABLE = sorted(set(FAULT_OUTCOMES) - {"hang"})


@pytest.mark.parametrize("fault", TABLE)
def test_fault_outcome_v2beta(emulator, service, canary, fault):
    params = {"retry_after": 7} if fault == "rate_limited" else {"seconds": 0.2} if fault == "slow" else {}
    emulator.faults.set("stability", fault, **params)
    result = run(service, canary)
    assert result.outcome == FAULT_OUTCOMES[fault], result.error_detail
    if fault in DETAILS:
        assert DETAILS[fault] in result.error_detail
    assert API_KEY not in (result.error_detail or "")
    if fault not in ("truncated_image", "undecodable_image", "wrong_size", "blank_image", "black_image", "slow"):
        assert len(result.request_id) == 32  # errors carry the provider's id too


@pytest.mark.parametrize(
    "fault, outcome, text",
    [("content_policy", Outcome.CONTENT_FILTERED, "content_moderation"), ("output_safety", Outcome.CONTENT_FILTERED, "CONTENT_FILTERED"),
     ("quota_exhausted", Outcome.AUTH_ERROR, "credits"), ("wrong_size", Outcome.BAD_OUTPUT, "1024x1024"),
     ("malformed_json", Outcome.BAD_OUTPUT, "malformed JSON"), ("server_error", Outcome.SERVER_ERROR, "HTTP 500")],
)
def test_fault_outcome_v1(emulator, service, canary, fault, outcome, text):
    emulator.faults.set("stability", fault)
    result = run(v1(service, accept="json"), canary)
    assert result.outcome is outcome, result.error_detail
    assert text in result.error_detail


def test_hang_times_out_within_the_deadline(emulator, service, canary):
    emulator.faults.set("stability", "hang")
    began = time.monotonic()
    result = run(service.model_copy(update={"timeout": timedelta(seconds=2)}), canary)
    assert result.outcome is Outcome.TIMEOUT, result.error_detail
    assert time.monotonic() - began < 3


def test_api_key_echoed_by_provider_is_redacted(emulator, service, canary):
    emulator.faults.set("stability", "invalid_key")
    result = run(service, canary)
    assert result.outcome is Outcome.AUTH_ERROR and "[REDACTED]" in result.error_detail
    assert API_KEY not in result.error_detail


def test_missing_api_key_is_probe_error(service, canary):
    result = run(service.model_copy(update={"api_key": None}), canary)
    assert result.outcome is Outcome.PROBE_ERROR and "api_key" in result.error_detail


# -- health check: the balance ------------------------------------------------------------------


def test_health_check_reports_the_balance(service):
    result = run(service, None, ProbeKind.HEALTH)
    assert result.outcome is Outcome.OK and result.error_detail == "42.5 credits" and result.request_id


@pytest.mark.parametrize(
    "fault, outcome, text",
    [("quota_exhausted", Outcome.AUTH_ERROR, "balance 0"), ("invalid_key", Outcome.AUTH_ERROR, "unauthorized"),
     ("server_error", Outcome.SERVER_ERROR, "HTTP 500"), ("malformed_json", Outcome.BAD_OUTPUT, "malformed JSON")],
)
def test_health_check_faults(emulator, service, fault, outcome, text):
    emulator.faults.set("stability", fault)
    result = run(service, None, ProbeKind.HEALTH)
    assert result.outcome is outcome and text in result.error_detail
    assert API_KEY not in result.error_detail


def test_image_fault_is_not_used_up_by_health_check(emulator, service, canary):
    emulator.faults.set("stability", "output_safety", count=1)
    assert run(service, None, ProbeKind.HEALTH).outcome is Outcome.OK
    assert run(service, canary).outcome is Outcome.CONTENT_FILTERED


# -- the emulator speaks the wire protocol ------------------------------------------------------


def test_emulator_v2beta_wire_form(emulator):
    url = f"{emulator.base_url('stability')}/v2beta/stable-image/generate/core"
    auth = {"Authorization": "Bearer sk-x"}
    as_json = httpx.post(url, json={"prompt": "p"}, headers=auth)
    assert as_json.status_code == 400 and set(as_json.json()) == {"id", "name", "errors"}
    raw = httpx.post(url, files={"prompt": (None, "p"), "seed": (None, "3")}, headers=auth | {"Accept": "image/*"})
    assert raw.headers["finish-reason"] == "SUCCESS" and raw.headers["seed"] == "3" and raw.content.startswith(b"\x89PNG")
    assert httpx.post(url, files={"prompt": (None, "p")}).status_code == 401
    body = httpx.post(url, files={"prompt": (None, "p")}, headers=auth | {"Accept": "application/json"}).json()
    assert set(body) == {"image", "finish_reason", "seed"} and body["seed"] > 0


def test_emulator_v1_error_form(emulator):
    url = f"{emulator.base_url('stability')}/v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image"
    response = httpx.post(url, json={"text_prompts": [{"text": "p"}], "width": 1000}, headers={"Authorization": "Bearer sk-x"})
    assert response.status_code == 400 and set(response.json()) == {"id", "name", "message"}


# -- answers the emulator never gives ------------------------------------------------------------


PNG = base64.b64encode(render_png("p", 1, "m", 64, 64)).decode()
ODD = {
    "bare-list": (200, json.dumps([{"base64": PNG, "seed": 1, "finishReason": "SUCCESS"}])),
    "v1-error-finish": (200, json.dumps({"artifacts": [{"base64": PNG, "seed": 1, "finishReason": "ERROR"}]})),
    "no-image": (200, json.dumps({"finish_reason": "SUCCESS"})),
    "proxy-502": (502, "<html>bad gateway</html>"),
    "unauthorized-v1": (401, json.dumps({"id": "abc", "name": "unauthorized", "message": "missing authorization header"})),
}


@Request.application
def odd_server(request: Request) -> Response:
    status, body = ODD[request.path.strip("/").split("/")[0]]
    return Response(body, status=status, mimetype="text/html" if body.startswith("<") else "application/json")


@pytest.fixture(scope="module")
def odd_url():
    yield from serve(odd_server)


@pytest.mark.parametrize(
    "case, outcome, text",
    [("bare-list", Outcome.OK, None), ("v1-error-finish", Outcome.SERVER_ERROR, "finish reason ERROR"),
     ("no-image", Outcome.BAD_OUTPUT, "no image"), ("proxy-502", Outcome.SERVER_ERROR, "HTTP 502: <html>bad gateway"),
     ("unauthorized-v1", Outcome.AUTH_ERROR, "HTTP 401 unauthorized: missing authorization header")],
)
def test_odd_answers(service, odd_url, case, outcome, text):
    api = v1(service, accept="json") if case in ("bare-list", "v1-error-finish") else service.model_copy(update={"options": {"accept": "json"}})
    result = run(api.model_copy(update={"base_url": f"{odd_url}/{case}"}), CanaryConfig(id="c", prompt="p", size="64x64"))
    assert result.outcome is outcome, result.error_detail
    if text:
        assert text in result.error_detail
    if case == "unauthorized-v1":
        assert result.request_id == "abc"  # the body's id when there is no x-request-id header
