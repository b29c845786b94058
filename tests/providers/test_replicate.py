"""The Replicate adapter against its emulator over loopback HTTP, odd answers, and the official SDK."""

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
from probes.emulator.replicate import FAULT_OUTCOMES, SERVICE_DEFAULTS, VERSION_OF
from probes.providers.replicate import ReplicateAdapter, aspect_ratio
from tests.providers.helpers import probe, serve, with_

API_KEY = "r8_replicatetesttoken0123456789"
FLUX = "black-forest-labs/flux-schnell"


@pytest.fixture
def service(emulator) -> ServiceConfig:
    return ServiceConfig(
        id="replicate-test", provider="replicate", base_url=emulator.base_url("replicate"), api_key=API_KEY,
        canaries=["still-life"], timeout=timedelta(seconds=5), allow_private_network=True, **SERVICE_DEFAULTS,
    )


def run(service: ServiceConfig, canary: CanaryConfig | None, kind: ProbeKind = ProbeKind.CANARY) -> ResultRecord:
    return probe(ReplicateAdapter, service, canary, kind)


# -- clean runs -------------------------------------------------------------------------------


def test_clean_run_with_prefer_wait(service, canary):
    result = run(service, canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert (result.image_width, result.image_height, result.image_format) == (1024, 1024, "WEBP")
    assert result.http_status == 201 and len(result.request_id) == 26  # done within the held create request
    assert result.model_version == f"{FLUX}:{VERSION_OF[FLUX]}" and result.seed == 1234
    # the held create request is split by Replicate's own timestamps
    assert result.latency_ms["queue"] == pytest.approx(150, abs=5)
    assert result.latency_ms["generation"] == pytest.approx(300, abs=5)
    assert result.latency_ms["submit"] >= 0 and result.latency_ms["download"] > 0


def test_clean_run_polling_from_the_start(service, canary):
    result = run(with_(service, options={"wait": 0}), canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert result.latency_ms["submit"] < 100
    assert result.latency_ms["queue"] > 0 and result.latency_ms["generation"] > 0


def test_single_url_output_model(service, canary):
    result = run(with_(service, model="black-forest-labs/flux-1.1-pro"), canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert result.model_version.startswith("black-forest-labs/flux-1.1-pro:")


def test_by_version_with_width_and_height(service):
    version = VERSION_OF["stability-ai/sdxl"]
    service = with_(service, model=None, options={"version": version, "size_input": "width_height"})
    result = run(service, CanaryConfig(id="c", prompt="a lighthouse", size="768x512", seed=7))
    assert result.outcome is Outcome.OK, result.error_detail
    assert (result.image_width, result.image_height) == (768, 512)
    assert result.model_version == f"stability-ai/sdxl:{version}"


def test_create_request(service):
    ctx = ProbeContext(service, CanaryConfig(id="c", prompt="p", size="1344x768", negative_prompt="blur"), None, seed=9)  # type: ignore[arg-type]
    request, check = ReplicateAdapter(service).create_request(ctx)
    assert request.method == "POST" and request.url.endswith(f"/v1/models/{FLUX}/predictions") and check is SizeCheck.ASPECT
    assert request.json == {"input": {"prompt": "p", "negative_prompt": "blur", "seed": 9, "aspect_ratio": "16:9"}}
    assert request.headers["Authorization"].startswith("Bearer ")
    service = with_(service, options={"version": "abc", "size_input": "width_height", "input": {"num_outputs": 1, "seed": 3}})
    request, check = ReplicateAdapter(service).create_request(ctx)
    body = request.json
    assert request.url.endswith("/v1/predictions") and body["version"] == "abc" and check is SizeCheck.EXACT
    assert body["input"] == {"prompt": "p", "negative_prompt": "blur", "seed": 3, "width": 1344, "height": 768, "num_outputs": 1}
    ctx = ProbeContext(service, CanaryConfig(id="c", prompt="p", size="auto"), None, seed=None)  # type: ignore[arg-type]
    request, check = ReplicateAdapter(with_(service, options={})).create_request(ctx)
    assert (request.json, check) == ({"input": {"prompt": "p"}}, SizeCheck.NONE)


@pytest.mark.parametrize("size, ratio", [((1024, 1024), "1:1"), ((1344, 768), "16:9"), ((832, 1216), "2:3"), ((1000, 700), "10:7")])
def test_aspect_ratio(size, ratio):
    assert aspect_ratio(*size) == ratio


def test_missing_model_is_probe_error(service, canary):
    result = run(with_(service, model="flux-schnell"), canary)
    assert result.outcome is Outcome.PROBE_ERROR and "owner/name" in result.error_detail


# -- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault, outcome", sorted(FAULT_OUTCOMES.items()))
def test_fault_outcome(emulator, service, canary, fault, outcome):
    emulator.faults.set("replicate", fault, **({"seconds": 0.3} if fault == "slow" else {}))
    began = time.monotonic()
    result = run(with_(service, timeout=timedelta(seconds=2)), canary)
    assert result.outcome == outcome, result.error_detail
    assert time.monotonic() - began < 3
    assert API_KEY not in (result.error_detail or "")
    if fault == "stuck_job":  # abandoned at the deadline: cancelled, with the time spent running
        assert result.latency_ms["generation"] > 0
        prediction = httpx.get(f"{service.base_url}/v1/predictions/{result.request_id}", headers={"Authorization": f"Bearer {API_KEY}"})
        assert prediction.json()["status"] == "canceled"


def test_create_is_never_retried(emulator, service, canary):
    emulator.faults.set("replicate", "server_error", count=1)
    assert run(service, canary).outcome is Outcome.SERVER_ERROR
    assert emulator.faults.active("replicate") is None  # one POST took the one fault


def test_rate_limit_detail_has_retry_after(emulator, service, canary):
    emulator.faults.set("replicate", "rate_limited", retry_after=7)
    result = run(service, canary)
    assert result.outcome is Outcome.RATE_LIMITED and "Retry-After: 7s" in result.error_detail


def test_api_key_echoed_by_provider_is_redacted(emulator, service, canary):
    emulator.faults.set("replicate", "invalid_key")
    result = run(service, canary)
    assert result.outcome is Outcome.AUTH_ERROR and "[REDACTED]" in result.error_detail
    assert API_KEY not in result.error_detail


def test_nsfw_failure_is_content_filtered(emulator, service, canary):
    emulator.faults.set("replicate", "output_safety")
    result = run(service, canary)
    assert result.outcome is Outcome.CONTENT_FILTERED and "NSFW content detected" in result.error_detail


def test_unknown_model_is_client_error(service, canary):
    result = run(with_(service, model="nobody/nothing"), canary)
    assert result.outcome is Outcome.CLIENT_ERROR and result.http_status == 404


def test_health_check_ok(service):
    result = run(service, None, ProbeKind.HEALTH)
    assert result.outcome is Outcome.OK and result.http_status == 200


@pytest.mark.parametrize(
    "fault, outcome",
    [("invalid_key", Outcome.AUTH_ERROR), ("quota_exhausted", Outcome.AUTH_ERROR), ("server_error", Outcome.SERVER_ERROR),
     ("malformed_json", Outcome.BAD_OUTPUT)],
)
def test_health_check_faults(emulator, service, fault, outcome):
    emulator.faults.set("replicate", fault)
    result = run(service, None, ProbeKind.HEALTH)
    assert result.outcome is outcome, result.error_detail
    assert API_KEY not in (result.error_detail or "")


# -- answers the emulator never gives: a scripted server, one answer per base path --------------

PNG = render_png("odd", 1, "m", 64, 64)


def prediction(status: str, **fields) -> dict:
    return {"id": "p1", "model": "o/m", "version": "v1", "status": status, "urls": {}, **fields}


ODD_ANSWERS = {
    "data-uri": (201, prediction("succeeded", output=[f"data:image/png;base64,{base64.b64encode(PNG).decode()}"])),
    "empty-output": (201, prediction("succeeded", output=[])),
    "canceled": (201, prediction("canceled")),
    "failed-plain": (201, prediction("failed", error="Prediction interrupted; please retry (code: PA)")),
    "foreign-poll-url": (201, prediction("starting", urls={"get": "https://evil.example/v1/predictions/p1"})),
    "throttled-body-only": (429, {"detail": "Request was throttled.", "status": 429, "retry_after": 3}),
    "billing": (402, {"title": "Insufficient credit", "detail": "You have insufficient credit", "status": 402}),
}


@Request.application
def odd_server(request: Request) -> Response:
    status, body = ODD_ANSWERS[request.path.strip("/").split("/")[0]]
    return Response(json.dumps(body), status=status, mimetype="application/json")


@pytest.fixture(scope="module")
def odd_url():
    yield from serve(odd_server)


@pytest.mark.parametrize(
    "case, outcome, text",
    [
        ("data-uri", Outcome.OK, None),
        ("empty-output", Outcome.BAD_OUTPUT, "without an image URL"),
        ("canceled", Outcome.SERVER_ERROR, "was canceled"),
        ("failed-plain", Outcome.SERVER_ERROR, "Prediction interrupted"),
        ("foreign-poll-url", Outcome.BAD_OUTPUT, "on another origin (https://evil.example) refused: credentials stay on http://127.0.0.1"),
        ("throttled-body-only", Outcome.RATE_LIMITED, "Retry-After: 3s"),
        ("billing", Outcome.AUTH_ERROR, "Insufficient credit"),
    ],
)
def test_odd_answers(service, odd_url, case, outcome, text):
    result = run(with_(service, base_url=f"{odd_url}/{case}"), CanaryConfig(id="c", prompt="p", size="64x64"))
    assert result.outcome is outcome, result.error_detail
    if text:
        assert text in result.error_detail


# -- the official SDK ---------------------------------------------------------------------------


@pytest.fixture
def sdk(emulator):
    replicate = pytest.importorskip("replicate")
    client = replicate.Client(api_token="r8_sdk-token", base_url=emulator.base_url("replicate"))
    client.poll_interval = 0.05
    return replicate, client


@pytest.mark.sdk
def test_sdk_run_returns_the_output_urls(sdk, emulator):
    _, client = sdk
    output = client.run(FLUX, input={"prompt": "a red apple", "seed": 3, "aspect_ratio": "16:9"})
    assert isinstance(output, list) and len(output) == 1
    image = httpx.get(str(output[0]))
    assert image.status_code == 200 and image.headers["content-type"] == "image/webp"


@pytest.mark.sdk
def test_sdk_create_wait_and_model_version(sdk):
    _, client = sdk
    prediction = client.predictions.create(version=VERSION_OF["stability-ai/sdxl"], input={"prompt": "p", "width": 512, "height": 512})
    assert prediction.status == "starting" and prediction.urls["get"].endswith(prediction.id)
    prediction.wait()
    assert prediction.status == "succeeded" and prediction.model == "stability-ai/sdxl"
    assert prediction.output[0].endswith(".png") and prediction.metrics["predict_time"] > 0


@pytest.mark.sdk
def test_sdk_cancel(sdk, emulator):
    _, client = sdk
    emulator.faults.set("replicate", "stuck_job")
    prediction = client.models.predictions.create(model=FLUX, input={"prompt": "p"})
    prediction.cancel()
    assert prediction.status == "canceled" and prediction.completed_at


@pytest.mark.sdk
def test_sdk_errors(sdk, emulator):
    replicate, client = sdk
    emulator.faults.set("replicate", "job_failure")
    with pytest.raises(replicate.exceptions.ModelError, match="CUDA error"):
        client.run(FLUX, input={"prompt": "p"})
    emulator.faults.set("replicate", "invalid_key")
    with pytest.raises(replicate.exceptions.ReplicateError) as caught:
        client.run(FLUX, input={"prompt": "p"})
    assert caught.value.status == 401 and caught.value.title == "Unauthenticated"


@pytest.mark.sdk
def test_sdk_account(sdk):
    _, client = sdk
    assert client.accounts.current().username == "genstatus"
