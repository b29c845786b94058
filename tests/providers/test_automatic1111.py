"""The AUTOMATIC1111 adapter against its emulator over loopback HTTP: every fault -> its outcome."""

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
from probes.base import ProbeContext
from probes.emulator.automatic1111 import FAULT_OUTCOMES, SERVICE_DEFAULTS
from probes.emulator.images import render_png
from probes.providers.automatic1111 import Automatic1111Adapter
from tests.providers.helpers import probe, serve

PASSWORD = "a1111-password-0123456789"


@pytest.fixture
def service(emulator) -> ServiceConfig:
    return ServiceConfig(
        id="a1111-test", provider="automatic1111", base_url=emulator.base_url("automatic1111"), api_key=PASSWORD,
        canaries=["still-life"], timeout=timedelta(seconds=5), allow_private_network=True, **SERVICE_DEFAULTS,
    )


def run(service: ServiceConfig, canary: CanaryConfig | None, kind: ProbeKind = ProbeKind.CANARY, seed: int | None = 1234) -> ResultRecord:
    return probe(Automatic1111Adapter, service, canary, kind, seed)


def test_clean_run(service, canary):
    result = run(service, canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert (result.image_width, result.image_height, result.image_format) == (1024, 1024, "PNG")
    assert result.model_version == "v1-5-pruned-emaonly [6ce0161689]" and result.seed == 1234
    assert result.http_status == 200 and result.request_id is None  # A1111 has no request ids
    assert result.latency_ms["generation"] > 0


def test_checkpoint_override_and_random_seed(service):
    service = service.model_copy(update={"options": {"checkpoint": "sd_xl_base_1.0", "steps": 4, "sampler_name": "DPM++ 2M"}})
    result = run(service, CanaryConfig(id="c", prompt="a lighthouse", size="512x768"), seed=None)
    assert result.outcome is Outcome.OK, result.error_detail
    assert result.model_version == "sd_xl_base_1.0 [31e35c80fc]"
    assert result.seed is not None and result.seed >= 0  # -1 was sent; the seed drawn comes back in info


def test_request_body(service):
    service = service.model_copy(update={"options": {"checkpoint": "x.safetensors", "cfg_scale": 5}})
    canary = CanaryConfig(id="c", prompt="p", size="640x512", negative_prompt="blur")
    body = Automatic1111Adapter(service).request_body(ProbeContext(service, canary, client=None, seed=None))  # type: ignore[arg-type]
    assert body == {"prompt": "p", "negative_prompt": "blur", "seed": -1, "batch_size": 1, "n_iter": 1, "send_images": True,
                    "save_images": False, "width": 640, "height": 512, "cfg_scale": 5.0,
                    "override_settings": {"sd_model_checkpoint": "x.safetensors"}}


def test_without_username_no_credentials_are_sent(service, canary):
    result = run(service.model_copy(update={"options": {}, "api_key": None}), canary)
    assert result.outcome is Outcome.OK, result.error_detail


def test_username_without_password_is_a_config_problem(service, canary):
    result = run(service.model_copy(update={"api_key": None}), canary)
    assert result.outcome is Outcome.PROBE_ERROR and "api_key" in result.error_detail


DETAILS = {
    "server_error": "HTTP 500: OutOfMemoryError; CUDA out of memory",
    "invalid_key": "HTTP 401: Incorrect username or password (HTTP Basic auth required",
    "malformed_json": "malformed JSON",
    "truncated_image": "truncated",
    "undecodable_image": "not a PNG",
    "wrong_size": "512x512",
    "bad_request": "HTTP 404: HTTPException; Sampler not found",
}


@pytest.mark.parametrize("fault", sorted(set(FAULT_OUTCOMES) - {"hang"}))
def test_fault_outcome(emulator, service, canary, fault):
    emulator.faults.set("automatic1111", fault, **({"seconds": 0.2} if fault == "slow" else {}))
    result = run(service, canary)
    assert result.outcome == FAULT_OUTCOMES[fault], result.error_detail
    if fault in DETAILS:
        assert DETAILS[fault] in result.error_detail
    assert PASSWORD not in (result.error_detail or "")


@pytest.mark.parametrize("fault", ["rate_limited", "quota_exhausted", "content_policy", "output_safety", "expired_url"])
def test_faults_a1111_cannot_show_do_not_apply(emulator, service, canary, fault):
    emulator.faults.set("automatic1111", fault)
    assert run(service, canary).outcome is Outcome.OK


def test_hang_times_out_within_the_deadline(emulator, service, canary):
    emulator.faults.set("automatic1111", "hang")
    began = time.monotonic()
    result = run(service.model_copy(update={"timeout": timedelta(seconds=2)}), canary)
    assert result.outcome is Outcome.TIMEOUT, result.error_detail
    assert time.monotonic() - began < 3


def test_health_check(service):
    result = run(service, None, ProbeKind.HEALTH)
    assert result.outcome is Outcome.OK and result.error_detail == "2 checkpoints installed"
    missing = run(service.model_copy(update={"options": {"username": "u", "checkpoint": "flux1-dev"}}), None, ProbeKind.HEALTH)
    assert missing.outcome is Outcome.OK and "'flux1-dev' is not among the 2 installed" in missing.error_detail


@pytest.mark.parametrize(
    "fault, outcome", [("invalid_key", Outcome.AUTH_ERROR), ("server_error", Outcome.SERVER_ERROR), ("malformed_json", Outcome.BAD_OUTPUT)]
)
def test_health_check_faults(emulator, service, fault, outcome):
    emulator.faults.set("automatic1111", fault)
    result = run(service, None, ProbeKind.HEALTH)
    assert result.outcome is outcome, result.error_detail


def test_emulator_wire_form(emulator):
    base = emulator.base_url("automatic1111")
    answer = httpx.post(f"{base}/sdapi/v1/txt2img", json={"prompt": "p", "seed": 5, "width": 64, "height": 64})
    payload = answer.json()
    assert set(payload) == {"images", "parameters", "info"} and "X-Process-Time" in answer.headers
    assert json.loads(payload["info"])["all_seeds"] == [5]
    bad_auth = httpx.get(f"{base}/sdapi/v1/sd-models", auth=("user", ""))
    assert bad_auth.status_code == 401 and bad_auth.headers["WWW-Authenticate"] == "Basic"
    progress = httpx.get(f"{base}/sdapi/v1/progress", params={"skip_current_image": "true"}).json()
    assert {"progress", "eta_relative", "state", "current_image", "textinfo"} <= set(progress)
    assert httpx.post(f"{base}/sdapi/v1/txt2img", json={"sampler_name": "nope"}).json()["detail"] == "Sampler not found"


# -- answers the emulator never gives: info missing or garbled, a proxy's 429 ---------------------

PNG = base64.b64encode(render_png("p", 1, "m", 64, 64)).decode()
ODD = {
    "no-info": (200, {"images": [PNG], "parameters": {}}),
    "garbled-info": (200, {"images": [PNG], "parameters": {}, "info": "{not json"}),
    "hash-only": (200, {"images": [PNG], "parameters": {}, "info": json.dumps({"sd_model_hash": "abc123", "seed": "x"})}),
    "data-uri": (200, {"images": ["data:image/png;base64," + PNG], "info": "{}"}),
    "no-images": (200, {"images": [], "info": "{}"}),
    "validation": (422, {"detail": [{"loc": ["body", "width"], "msg": "value is not a valid integer"}]}),
    "proxy-429": (429, None),
}


@Request.application
def odd_server(request: Request) -> Response:
    status, body = ODD[request.path.strip("/").split("/")[0]]
    if body is None:
        return Response("Too Many Requests", status=status, headers={"Retry-After": "30"})
    return Response(json.dumps(body), status=status, mimetype="application/json")


@pytest.fixture(scope="module")
def odd_url():
    yield from serve(odd_server)


@pytest.mark.parametrize(
    "case, outcome, version, text",
    [("no-info", Outcome.OK, None, None), ("garbled-info", Outcome.OK, None, None), ("hash-only", Outcome.OK, "abc123", None),
     ("data-uri", Outcome.OK, None, None), ("no-images", Outcome.BAD_OUTPUT, None, "no images"),
     ("validation", Outcome.CLIENT_ERROR, None, "value is not a valid integer"),
     ("proxy-429", Outcome.RATE_LIMITED, None, "Retry-After: 30s")],
)
def test_odd_answers(service, odd_url, case, outcome, version, text):
    result = run(service.model_copy(update={"base_url": f"{odd_url}/{case}"}), CanaryConfig(id="c", prompt="p", size="64x64"))
    assert result.outcome is outcome, result.error_detail
    assert result.model_version == version
    if text:
        assert text in result.error_detail
