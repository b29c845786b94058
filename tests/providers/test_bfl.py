"""The BFL adapter against its emulator over loopback HTTP, and answers the emulator never gives."""

from __future__ import annotations

import json
import socket
import time
from datetime import timedelta

import pytest
from werkzeug.wrappers import Request, Response

from monitor.config import CanaryConfig, ServiceConfig
from monitor.enums import Outcome, ProbeKind
from monitor.store.record import ResultRecord
from probes.base import ProbeContext, ProbeFailure, SizeCheck
from probes.base import Request as ProbeRequest
from probes.emulator.bfl import FAULT_OUTCOMES, SERVICE_DEFAULTS
from probes.providers.bfl import BFLAdapter
from tests.providers.helpers import probe, serve, with_

API_KEY = "bfl-test-key-0123456789abcdef"


@pytest.fixture
def service(emulator) -> ServiceConfig:
    return ServiceConfig(
        id="bfl-test", provider="bfl", base_url=emulator.base_url("bfl"), api_key=API_KEY,
        canaries=["still-life"], timeout=timedelta(seconds=5), allow_private_network=True, **SERVICE_DEFAULTS,
    )


def run(service: ServiceConfig, canary: CanaryConfig | None, kind: ProbeKind = ProbeKind.CANARY) -> ResultRecord:
    return probe(BFLAdapter, service, canary, kind)


# -- clean runs -------------------------------------------------------------------------------


def test_clean_run(service, canary):
    result = run(service, canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert (result.image_width, result.image_height, result.image_format) == (1024, 1024, "JPEG")
    assert result.http_status == 200 and len(result.request_id) == 36
    assert result.model_version == "flux-pro-1.1" and result.seed == 1234
    for phase in ("submit", "queue", "generation", "download"):
        assert result.latency_ms[phase] > 0, phase


def test_same_seed_same_image(service):
    canary = CanaryConfig(id="c", prompt="a red apple", size="512x512", seed=1234)
    assert run(service, canary).image_sha256 == run(service, canary).image_sha256


def test_flux2_generating_status_and_png(service, canary):
    result = run(with_(service, model="flux-2-pro", options={"output_format": "png"}), canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert result.image_format == "PNG" and result.latency_ms["generation"] > 0


def test_ultra_takes_an_aspect_ratio(service):
    service = with_(service, model="flux-pro-1.1-ultra", options={"size_input": "aspect_ratio"})
    result = run(service, CanaryConfig(id="c", prompt="a harbour", size="1344x768"))
    assert result.outcome is Outcome.OK, result.error_detail
    assert result.image_width / result.image_height == pytest.approx(16 / 9, rel=0.03)


def test_request_body(service):
    ctx = ProbeContext(service, CanaryConfig(id="c", prompt="p", size="768x512"), None, seed=9)  # type: ignore[arg-type]
    assert BFLAdapter(service).request_body(ctx) == (
        {"prompt": "p", "safety_tolerance": 2, "seed": 9, "width": 768, "height": 512}, SizeCheck.EXACT)
    custom = with_(service, options={"size_input": "aspect_ratio", "prompt_upsampling": True, "input": {"raw": True}})
    body, check = BFLAdapter(custom).request_body(ProbeContext(custom, ctx.canary, None, seed=None))  # type: ignore[arg-type]
    assert body == {"prompt": "p", "safety_tolerance": 2, "aspect_ratio": "3:2", "prompt_upsampling": True, "raw": True}
    assert check is SizeCheck.ASPECT


def test_polling_url_may_be_a_regional_host_of_the_api(monkeypatch):
    """Only the listed sibling hosts of BFL's API, over https, at public addresses (connection pinned)."""
    def resolving_to(address):
        return lambda *args, **kwargs: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 443))]

    monkeypatch.setattr(socket, "getaddrinfo", resolving_to("34.117.1.1"))
    bfl = ServiceConfig(id="bfl", provider="bfl", base_url="https://api.bfl.ai", api_key="k", canaries=["c"])
    ctx = ProbeContext(bfl, None, None)  # type: ignore[arg-type]
    route = BFLAdapter(bfl).destinations().route
    target, headers, extensions = route(ctx, ProbeRequest("GET", "https://api.us1.bfl.ai/v1/get_result?id=1"))
    assert (target.host, headers, extensions) == ("34.117.1.1", {"Host": "api.us1.bfl.ai"}, {"sni_hostname": "api.us1.bfl.ai"})
    for foreign in ("https://api.bfl.ai.evil.example/v1/get_result", "http://api.eu.bfl.ai/x", "https://api.eu.bfl.ai:8443/x",
                    "https://eu.bfl.ai/x", "https://evil.bfl.ai/x"):
        with pytest.raises(ProbeFailure, match=r"on another origin \(.*\) refused: credentials stay on https://api.bfl.ai"):
            route(ctx, ProbeRequest("GET", foreign))
    monkeypatch.setattr(socket, "getaddrinfo", resolving_to("169.254.169.254"))
    with pytest.raises(ProbeFailure, match="non-public address 169.254.169.254") as refused:
        route(ctx, ProbeRequest("GET", "https://api.eu.bfl.ai/v1/get_result?id=1"))
    assert refused.value.outcome is Outcome.BAD_OUTPUT
    assert BFLAdapter(with_(bfl, base_url="http://127.0.0.1:80")).destinations().allowed == frozenset()  # not BFL's API


# -- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault, outcome", sorted(FAULT_OUTCOMES.items()))
def test_fault_outcome(emulator, service, canary, fault, outcome):
    emulator.faults.set("bfl", fault, **({"seconds": 0.3} if fault == "slow" else {}))
    began = time.monotonic()
    result = run(with_(service, timeout=timedelta(seconds=2)), canary)
    assert result.outcome == outcome, result.error_detail
    assert time.monotonic() - began < 3
    assert API_KEY not in (result.error_detail or "")


@pytest.mark.parametrize(
    "fault, text",
    [("content_policy", "Request Moderated"), ("output_safety", "Content Moderated"), ("job_failure", "Error"),
     ("quota_exhausted", "HTTP 402: Insufficient credits"), ("rate_limited", "Retry-After: 5s")],
)
def test_fault_details(emulator, service, canary, fault, text):
    emulator.faults.set("bfl", fault)
    assert text in run(service, canary).error_detail


def test_api_key_echoed_by_provider_is_redacted(emulator, service, canary):
    emulator.faults.set("bfl", "invalid_key")
    result = run(service, canary)
    assert result.outcome is Outcome.AUTH_ERROR and "[REDACTED]" in result.error_detail
    assert API_KEY not in result.error_detail


def test_invalid_size_is_client_error(service):
    result = run(service, CanaryConfig(id="c", prompt="p", size="1000x1000"))
    assert result.outcome is Outcome.CLIENT_ERROR and "multiple of 32" in result.error_detail


def test_health_check_ok(service):
    result = run(service, None, ProbeKind.HEALTH)
    assert result.outcome is Outcome.OK and result.http_status == 200 and "1000 credits" in result.error_detail


@pytest.mark.parametrize(
    "fault, outcome, text",
    [("quota_exhausted", Outcome.AUTH_ERROR, "no credits left"), ("invalid_key", Outcome.AUTH_ERROR, "HTTP 403"),
     ("server_error", Outcome.SERVER_ERROR, "HTTP 500"), ("malformed_json", Outcome.BAD_OUTPUT, "malformed JSON")],
)
def test_health_check_faults(emulator, service, fault, outcome, text):
    emulator.faults.set("bfl", fault)
    result = run(service, None, ProbeKind.HEALTH)
    assert result.outcome is outcome and text in result.error_detail
    assert API_KEY not in result.error_detail


# -- answers the emulator never gives: a scripted server, one answer per base path --------------

ODD_POLLS = {
    "failed": (200, {"id": "t1", "status": "Failed", "result": None}),
    "ready-without-sample": (200, {"id": "t1", "status": "Ready", "result": {}}),
    "poll-500": (500, {"detail": "Internal Server Error"}),
    "foreign-polling-url": None,
    "no-polling-url": (200, {"id": "t1", "status": "Content Moderated", "result": None}),
}


@Request.application
def odd_server(request: Request) -> Response:
    case = request.path.strip("/").split("/")[0]
    if request.method == "POST":
        polling_url = {"foreign-polling-url": "https://elsewhere.example/v1/get_result?id=t1",
                       "no-polling-url": None}.get(case, f"{request.host_url}{case}/poll?id=t1")
        return Response(json.dumps({"id": "t1", "polling_url": polling_url}), mimetype="application/json")
    if case == "no-polling-url":
        assert request.path.endswith("/v1/get_result") and request.args["id"] == "t1"
    status, body = ODD_POLLS[case]
    return Response(json.dumps(body), status=status, mimetype="application/json")


@pytest.fixture(scope="module")
def odd_url():
    yield from serve(odd_server)


@pytest.mark.parametrize(
    "case, outcome, text",
    [
        ("failed", Outcome.SERVER_ERROR, "task t1: Failed"),
        ("ready-without-sample", Outcome.BAD_OUTPUT, "without result.sample"),
        ("poll-500", Outcome.SERVER_ERROR, "HTTP 500"),
        ("foreign-polling-url", Outcome.BAD_OUTPUT, "on another origin (https://elsewhere.example) refused: credentials stay on http://127.0.0.1"),
        ("no-polling-url", Outcome.CONTENT_FILTERED, "Content Moderated"),
    ],
)
def test_odd_answers(service, odd_url, case, outcome, text):
    result = run(with_(service, base_url=f"{odd_url}/{case}"), CanaryConfig(id="c", prompt="p", size="64x64"))
    assert result.outcome is outcome, result.error_detail
    assert text in result.error_detail and result.request_id == "t1"
