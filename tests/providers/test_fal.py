"""The fal adapter against its queue emulator over loopback HTTP, odd answers, and the official fal_client."""

from __future__ import annotations

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
from probes.emulator.fal import FAULT_OUTCOMES, SERVICE_DEFAULTS
from probes.providers.fal import FalAdapter
from tests.providers.helpers import probe, serve, with_

API_KEY = "fal-key-id:0123456789abcdef"
MODEL = "fal-ai/flux/schnell"


@pytest.fixture
def service(emulator) -> ServiceConfig:
    return ServiceConfig(
        id="fal-test", provider="fal", base_url=emulator.base_url("fal"), api_key=API_KEY,
        canaries=["still-life"], timeout=timedelta(seconds=5), allow_private_network=True, **SERVICE_DEFAULTS,
    )


def run(service: ServiceConfig, canary: CanaryConfig | None, kind: ProbeKind = ProbeKind.CANARY) -> ResultRecord:
    return probe(FalAdapter, service, canary, kind)


def status_of(service: ServiceConfig, request_id: str) -> dict:
    url = f"{service.base_url}/fal-ai/flux/requests/{request_id}/status"
    return httpx.get(url, headers={"Authorization": f"Key {API_KEY}"}).json()


# -- clean runs -------------------------------------------------------------------------------


def test_clean_run(service, canary):
    result = run(service, canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert (result.image_width, result.image_height, result.image_format) == (1024, 1024, "JPEG")
    assert result.http_status == 200 and len(result.request_id) == 36
    assert result.model_version == MODEL and result.seed == 1234
    for phase in ("submit", "queue", "generation", "download"):
        assert result.latency_ms[phase] > 0, phase
    assert status_of(service, result.request_id)["status"] == "COMPLETED"


def test_status_urls_drop_the_model_sub_path(emulator, service):
    answer = httpx.post(f"{service.base_url}/{MODEL}", json={"prompt": "p"}, headers={"Authorization": f"Key {API_KEY}"}).json()
    assert answer["status_url"] == f"{service.base_url}/fal-ai/flux/requests/{answer['request_id']}/status"
    assert answer["response_url"].endswith(f"/fal-ai/flux/requests/{answer['request_id']}")


def test_request_body(service):
    canary = CanaryConfig(id="c", prompt="p", size="768x512", negative_prompt="blur")
    ctx = ProbeContext(service, canary, None, seed=9)  # type: ignore[arg-type]
    body, check = FalAdapter(service).request_body(ctx)
    assert body == {"prompt": "p", "num_images": 1, "enable_safety_checker": True, "negative_prompt": "blur", "seed": 9,
                    "image_size": {"width": 768, "height": 512}}
    assert check is SizeCheck.EXACT
    named = with_(service, options={"image_size": "square_hd", "output_format": "png", "input": {"num_images": 2}})
    body, check = FalAdapter(named).request_body(ProbeContext(named, canary, None, seed=None))  # type: ignore[arg-type]
    assert body["image_size"] == "square_hd" and body["output_format"] == "png" and body["num_images"] == 2
    assert "seed" not in body and check is SizeCheck.NONE


def test_named_size_and_png(service, canary):
    result = run(with_(service, options={"image_size": "landscape_16_9", "output_format": "png"}), canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert (result.image_width, result.image_height, result.image_format) == (1024, 576, "PNG")


# -- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault, outcome", sorted(FAULT_OUTCOMES.items()))
def test_fault_outcome(emulator, service, canary, fault, outcome):
    emulator.faults.set("fal", fault, **({"seconds": 0.3} if fault == "slow" else {}))
    began = time.monotonic()
    result = run(with_(service, timeout=timedelta(seconds=2)), canary)
    assert result.outcome == outcome, result.error_detail
    assert time.monotonic() - began < 3
    assert API_KEY not in (result.error_detail or "")
    if fault == "stuck_job":  # abandoned at the deadline: cancelled (PUT cancel_url)
        emulator.faults.clear()
        assert status_of(service, result.request_id)["error_type"] == "request_cancelled"


def test_fault_details(emulator, service, canary):
    emulator.faults.set("fal", "output_safety")
    assert "has_nsfw_concepts=[True]" in run(service, canary).error_detail
    emulator.faults.set("fal", "content_policy")
    assert "content_policy_violation" in run(service, canary).error_detail
    emulator.faults.set("fal", "rate_limited", retry_after=4)
    assert "Retry-After: 4s" in run(service, canary).error_detail


def test_api_key_echoed_by_provider_is_redacted(emulator, service, canary):
    emulator.faults.set("fal", "invalid_key")
    result = run(service, canary)
    assert result.outcome is Outcome.AUTH_ERROR and "[REDACTED]" in result.error_detail
    assert API_KEY not in result.error_detail and "0123456789abcdef" not in result.error_detail


def test_unknown_model_is_client_error(service, canary):
    result = run(with_(service, model="fal-ai/nothing"), canary)
    assert result.outcome is Outcome.CLIENT_ERROR and result.http_status == 404


def test_health_check_ok(service):
    result = run(service, None, ProbeKind.HEALTH)
    assert result.outcome is Outcome.OK and result.http_status == 404  # the queue answered for an unknown request


@pytest.mark.parametrize(
    "fault, outcome",
    [("invalid_key", Outcome.AUTH_ERROR), ("quota_exhausted", Outcome.AUTH_ERROR), ("server_error", Outcome.SERVER_ERROR)],
)
def test_health_check_faults(emulator, service, fault, outcome):
    emulator.faults.set("fal", fault)
    result = run(service, None, ProbeKind.HEALTH)
    assert result.outcome is outcome, result.error_detail
    assert API_KEY not in (result.error_detail or "")


# -- answers the emulator never gives: a scripted server, one answer per base path --------------


def queued(base: str) -> dict:
    return {"request_id": "r1", "status_url": f"{base}/status", "response_url": f"{base}/result", "cancel_url": f"{base}/cancel"}


ODD_CASES = {
    # case -> (status answer, result answer (status, body, headers))
    "request-timeout": ({"status": "COMPLETED"}, (504, {"detail": "Request timed out"}, {"X-Fal-Request-Timeout-Type": "user"})),
    "no-images": ({"status": "COMPLETED"}, (200, {"images": [], "has_nsfw_concepts": []}, {})),
    "plain-error": ({"status": "COMPLETED", "error": "Out of memory", "error_type": "runner_oom"}, None),
    "ingress-502": ({"status": "COMPLETED"}, (502, "<html>nginx bad gateway</html>", {})),
}


@Request.application
def odd_server(request: Request) -> Response:
    case, _, rest = request.path.strip("/").partition("/")
    base = f"{request.host_url}{case}"
    status_answer, result_answer = ODD_CASES.get(case, (None, None))
    if case == "foreign-urls":
        return Response(json.dumps(queued("https://elsewhere.example/q")), mimetype="application/json")
    if request.method == "POST":
        return Response(json.dumps(queued(base)), mimetype="application/json")
    if rest == "status":
        return Response(json.dumps(status_answer), mimetype="application/json")
    status, body, headers = result_answer
    return Response(body if isinstance(body, str) else json.dumps(body), status=status, headers=headers)


@pytest.fixture(scope="module")
def odd_url():
    yield from serve(odd_server)


@pytest.mark.parametrize(
    "case, outcome, text",
    [
        ("request-timeout", Outcome.TIMEOUT, "request timeout fired: user"),
        ("no-images", Outcome.BAD_OUTPUT, "no image URL"),
        ("plain-error", Outcome.SERVER_ERROR, "runner_oom: Out of memory"),
        ("ingress-502", Outcome.SERVER_ERROR, "HTTP 502"),
        ("foreign-urls", Outcome.BAD_OUTPUT, "on another origin (https://elsewhere.example) refused: credentials stay on http://127.0.0.1"),
    ],
)
def test_odd_answers(service, odd_url, case, outcome, text):
    result = run(with_(service, base_url=f"{odd_url}/{case}"), CanaryConfig(id="c", prompt="p", size="64x64"))
    assert result.outcome is outcome, result.error_detail
    assert text in result.error_detail


# -- the official SDK ---------------------------------------------------------------------------


@pytest.fixture
def sdk(emulator, monkeypatch):
    fal_client = pytest.importorskip("fal_client")
    # the client builds queue URLs from a module constant (https://queue.fal.run/ or $FAL_QUEUE_RUN_HOST)
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", emulator.base_url("fal") + "/")
    return fal_client, fal_client.SyncClient(key=API_KEY, default_timeout=10)


@pytest.mark.sdk
def test_sdk_subscribe(sdk):
    fal_client, client = sdk
    updates: list = []
    result = client.subscribe(MODEL, {"prompt": "a red apple", "seed": 5, "image_size": "square"}, with_logs=True,
                              on_queue_update=updates.append)
    assert result["seed"] == 5 and result["has_nsfw_concepts"] == [False]
    assert result["images"][0]["width"] == 512 and httpx.get(result["images"][0]["url"]).status_code == 200
    assert any(isinstance(u, fal_client.InProgress) for u in updates) and isinstance(updates[-1], fal_client.Completed)


@pytest.mark.sdk
def test_sdk_submit_status_get_and_result(sdk):
    fal_client, client = sdk
    handle = client.submit(MODEL, {"prompt": "p"})
    assert isinstance(handle.status(), fal_client.Queued)
    result = handle.get()
    assert result["images"][0]["content_type"] == "image/jpeg"
    assert client.result(MODEL, handle.request_id) == result  # URLs rebuilt by the client from the endpoint id


@pytest.mark.sdk
def test_sdk_cancel_and_errors(sdk, emulator):
    fal_client, client = sdk
    emulator.faults.set("fal", "stuck_job")
    handle = client.submit(MODEL, {"prompt": "p"})
    handle.cancel()
    status = handle.status()
    assert isinstance(status, fal_client.Completed) and status.error_type == "request_cancelled"
    emulator.faults.set("fal", "content_policy")
    with pytest.raises(fal_client.client.FalClientHTTPError) as caught:
        client.subscribe(MODEL, {"prompt": "p"})
    assert caught.value.status_code == 422 and "flagged by a content checker" in str(caught.value.message)
