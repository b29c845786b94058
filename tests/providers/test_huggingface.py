"""The Hugging Face adapter against its emulator over loopback HTTP, plus huggingface_hub conformance."""

from __future__ import annotations

import time
from datetime import timedelta
from io import BytesIO

import httpx
import pytest
from PIL import Image

from monitor.config import CanaryConfig, ServiceConfig
from monitor.enums import Outcome, ProbeKind
from monitor.store.record import ResultRecord
from probes.base import ProbeContext
from probes.emulator.huggingface import FAULT_OUTCOMES, SERVICE_DEFAULTS
from probes.http import make_client
from probes.providers.huggingface import HuggingFaceAdapter
from tests.providers.helpers import probe

API_KEY = "hf_testtoken0123456789abcdef"
MODEL = SERVICE_DEFAULTS["model"]


@pytest.fixture
def service(emulator) -> ServiceConfig:
    return ServiceConfig(
        id="hf-test", provider="huggingface", base_url=emulator.base_url("huggingface"), api_key=API_KEY,
        canaries=["still-life"], timeout=timedelta(seconds=5), allow_private_network=True, **SERVICE_DEFAULTS,
    )


def run(service: ServiceConfig, canary: CanaryConfig | None, kind: ProbeKind = ProbeKind.CANARY, seed: int | None = 1234) -> ResultRecord:
    return probe(HuggingFaceAdapter, service, canary, kind, seed)


def test_base_url_is_the_routers_shape(emulator):
    assert emulator.base_url("huggingface").endswith("/huggingface/hf-inference/models")


def test_clean_run(service, canary):
    result = run(service, canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert (result.image_width, result.image_height, result.image_format) == (1024, 1024, "PNG")
    assert result.http_status == 200 and len(result.request_id) == 24
    assert result.model_version == MODEL and result.seed == 1234
    assert result.latency_ms["generation"] > 0 and result.latency_ms["download"] is None


def test_request_body_and_headers(service):
    service = service.model_copy(update={"options": {"num_inference_steps": 4, "guidance_scale": 0.0}})
    canary = CanaryConfig(id="c", prompt="p", size="768x512", negative_prompt="blur")
    adapter = HuggingFaceAdapter(service)
    body = adapter.request_body(ProbeContext(service, canary, client=None, seed=9))  # type: ignore[arg-type]
    assert body == {"inputs": "p", "parameters": {"negative_prompt": "blur", "width": 768, "height": 512, "seed": 9,
                                                  "num_inference_steps": 4, "guidance_scale": 0.0}}
    assert adapter.headers() == {"Authorization": f"Bearer {API_KEY}", "x-use-cache": "false"}
    assert adapter.model_url == f"{service.base_url}/{MODEL}"


def test_same_seed_same_image_other_seed_other_image(service, canary):
    first, again, other = run(service, canary), run(service, canary), run(service, canary, seed=99)
    assert first.image_sha256 == again.image_sha256 != other.image_sha256


def test_the_cache_would_hide_an_outage_but_is_bypassed(emulator, service, canary):
    cached = service.model_copy(update={"options": {"use_cache": True}})
    assert run(cached, canary).outcome is Outcome.OK
    emulator.faults.set("huggingface", "server_error")
    assert run(cached, canary).outcome is Outcome.OK  # same input answered from the cache: outage hidden
    assert run(service, canary).outcome is Outcome.SERVER_ERROR  # x-use-cache: false sees it


DETAILS = {
    "server_error": "currently loading (model loading, estimated_time 20s)",
    "rate_limited": "Retry-After: 7s",
    "quota_exhausted": "HTTP 402: You have exceeded your monthly included credits",
    "invalid_key": "HTTP 401: Invalid credentials",
    "malformed_json": "expected image bytes, got JSON: malformed JSON",
    "truncated_image": "truncated",
    "undecodable_image": "not a PNG",
    "wrong_size": "512x512",
    "bad_request": "HTTP 400: Error in `parameters.num_inference_steps`",
}


@pytest.mark.parametrize("fault", sorted(set(FAULT_OUTCOMES) - {"hang"}))
def test_fault_outcome(emulator, service, canary, fault):
    params = {"retry_after": 7} if fault == "rate_limited" else {"seconds": 0.2} if fault == "slow" else {}
    emulator.faults.set("huggingface", fault, **params)
    result = run(service, canary)
    assert result.outcome == FAULT_OUTCOMES[fault], result.error_detail
    if fault in DETAILS:
        assert DETAILS[fault] in result.error_detail
    assert API_KEY not in (result.error_detail or "") and result.request_id


def test_hang_times_out_within_the_deadline(emulator, service, canary):
    emulator.faults.set("huggingface", "hang")
    began = time.monotonic()
    result = run(service.model_copy(update={"timeout": timedelta(seconds=2)}), canary)
    assert result.outcome is Outcome.TIMEOUT, result.error_detail
    assert time.monotonic() - began < 3


def test_api_key_echoed_by_provider_is_redacted(emulator, service, canary):
    emulator.faults.set("huggingface", "invalid_key")
    result = run(service, canary)
    assert result.outcome is Outcome.AUTH_ERROR and "[REDACTED]" in result.error_detail
    assert API_KEY not in result.error_detail


@pytest.mark.parametrize(
    "change, outcome, text",
    [({"model": "nobody/no-such-model"}, Outcome.CLIENT_ERROR, "does not exist"),
     ({"model": None}, Outcome.PROBE_ERROR, "has no model"),
     ({"api_key": None}, Outcome.PROBE_ERROR, "has no api_key")],
)
def test_configuration_problems(service, canary, change, outcome, text):
    result = run(service.model_copy(update=change), canary)
    assert result.outcome is outcome and text in result.error_detail


def test_size_not_a_multiple_of_8_is_rejected_by_the_service(service):
    result = run(service, CanaryConfig(id="c", prompt="p", size="1001x1001"))
    assert result.outcome is Outcome.CLIENT_ERROR and "multiple of 8" in result.error_detail


# -- health check -------------------------------------------------------------------------------


def test_health_check_ok(service):
    result = run(service, None, ProbeKind.HEALTH)
    assert result.outcome is Outcome.OK and result.error_detail == "model state Loaded" and result.request_id


@pytest.mark.parametrize(
    "fault, outcome, text",
    [("invalid_key", Outcome.AUTH_ERROR, "HTTP 401"), ("server_error", Outcome.SERVER_ERROR, "estimated_time 20s"),
     ("quota_exhausted", Outcome.AUTH_ERROR, "HTTP 402"), ("rate_limited", Outcome.RATE_LIMITED, "HTTP 429")],
)
def test_health_check_faults(emulator, service, fault, outcome, text):
    emulator.faults.set("huggingface", fault)
    result = run(service, None, ProbeKind.HEALTH)
    assert result.outcome is outcome and text in result.error_detail
    assert API_KEY not in result.error_detail


def test_emulator_error_and_auth_forms(emulator):
    url = f"{emulator.base_url('huggingface')}/{MODEL}"
    assert httpx.post(url, json={"inputs": "p"}).json() == {"error": "Invalid username or password."}
    missing = httpx.post(url, json={}, headers={"Authorization": "Bearer hf_x"})
    assert missing.status_code == 400 and isinstance(missing.json()["error"], list)


# -- the official SDK ---------------------------------------------------------------------------


@pytest.fixture
def hf_client(emulator):
    hub = pytest.importorskip("huggingface_hub")
    # A URL as the model sends the request there as-is (hf_inference._prepare_url), with no Hub lookups.
    return hub, hub.InferenceClient(model=f"{emulator.base_url('huggingface')}/{MODEL}", token="hf_sdk_token_0123", timeout=10)


@pytest.mark.sdk
def test_sdk_text_to_image(hf_client):
    _, client = hf_client
    image = client.text_to_image("a red apple", width=512, height=384, seed=3, negative_prompt="blur")
    assert image.format == "PNG" and image.size == (512, 384)


@pytest.mark.sdk
def test_sdk_gets_the_picture_the_adapter_gets(hf_client, service):
    _, client = hf_client
    canary = CanaryConfig(id="c", prompt="a red apple", size="512x384", seed=3)
    with make_client(service) as http:
        ours = HuggingFaceAdapter(service).generate(ProbeContext(service, canary, http, seed=3)).image
    theirs = client.text_to_image("a red apple", width=512, height=384, seed=3)
    assert theirs.tobytes() == Image.open(BytesIO(ours)).tobytes()


@pytest.mark.sdk
@pytest.mark.parametrize("fault, status", [("server_error", 503), ("invalid_key", 401), ("rate_limited", 429), ("quota_exhausted", 402)])
def test_sdk_errors(hf_client, emulator, fault, status):
    hub, client = hf_client
    emulator.faults.set("huggingface", fault)
    with pytest.raises(hub.errors.HfHubHTTPError) as caught:
        client.text_to_image("a red apple", seed=1)
    assert caught.value.response.status_code == status
